// The cosine schedules against numpy (tools/make_train_fixtures.py schedule):
// every iteration of five schedules (lr with warm-up, weight decay, teacher
// momentum, a short one, a constant one) and the teacher-temperature
// linspace; plus the reference formulas at the ends and warm-up boundaries.
#include <math.h>
#include <stdio.h>

#include "fixture.h"
#include "testlib.h"
#include "train/schedule.h"

static double dbl(const FixtureTensor *t, size_t i) {
    size_t n = t->numel / 3;
    return (double)t->data[i] + (double)t->data[n + i] + (double)t->data[2 * n + i];
}

int main(void) {
    Fixture fx = fixture_load("train_schedule.bin");
    for (int c = 0; c < 5; c++) {
        char k[32];
        snprintf(k, sizeof k, "s%d.args", c);
        const float *a = fixture_get(&fx, k)->data;
        snprintf(k, sizeof k, "s%d", c);
        const FixtureTensor *ref = fixture_get(&fx, k);
        // base/final were Python doubles: rebuild them the way the fixture did
        static const double BASE[5] = {0.0005 * 512 / 256, 0.04, 0.996, 0.0005 * 64 / 256, 0.03};
        static const double FINAL[5] = {1e-6, 0.4, 1.0, 1e-6, 0.03};
        CHECK((float)BASE[c] == a[0] && (float)FINAL[c] == a[1], "case %d arguments agree with the fixture", c);
        int epochs = (int)a[2], niter = (int)a[3], warm = (int)a[4];
        CosineSchedule s;
        cosine_schedule_init(&s, BASE[c], FINAL[c], epochs, niter, warm, 0.0);
        size_t n = ref->numel / 3;
        CHECK(n == (size_t)s.total_iters, "case %d: %zu iterations", c, n);
        double worst = 0;
        int f32_equal = 1;
        for (size_t i = 0; i < n; i++) {
            double got = cosine_schedule_at(&s, (int64_t)i), want = dbl(ref, i);
            worst = fmax(worst, fabs(got - want) / fmax(fabs(want), 1e-300));
            if ((float)got != (float)want) f32_equal = 0;
        }
        CHECK(worst <= 4e-16 && f32_equal,
              "case %d (base %g final %g, %d epochs x %d, warmup %d): max rel error %.2g vs numpy, float32 values identical",
              c, BASE[c], FINAL[c], epochs, niter, warm, worst);
        // Reference formulas at the boundaries.
        int64_t wi = (int64_t)warm * niter, L = s.total_iters - wi;
        if (warm > 0) {
            CHECK(cosine_schedule_at(&s, 0) == 0.0, "case %d: warm-up starts at 0", c);
            CHECK(cosine_schedule_at(&s, wi - 1) == BASE[c], "case %d: warm-up ends exactly at base", c);
            if (wi > 2) {
                double mid = cosine_schedule_at(&s, 1);
                CHECK(fabs(mid - BASE[c] / (double)(wi - 1)) <= 1e-18, "case %d: warm-up step base/(n-1)", c);
            }
        }
        double first = cosine_schedule_at(&s, wi);
        double last = cosine_schedule_at(&s, s.total_iters - 1);
        double want_last = FINAL[c] + 0.5 * (BASE[c] - FINAL[c]) * (1 + cos(M_PI * (double)(L - 1) / (double)L));
        CHECK(fabs(first - BASE[c]) <= 1e-15 * fabs(BASE[c]), "case %d: cosine starts at base (rel. err %.2g)", c, fabs(first - BASE[c]) / BASE[c]);
        CHECK(last == want_last && (BASE[c] == FINAL[c] || last != FINAL[c]),
              "case %d: last value %.17g is final + ½(b−f)(1+cos(π(L−1)/L)), not exactly final", c, last);
    }
    const FixtureTensor *tt = fixture_get(&fx, "ttemp");
    double worst = 0;
    for (int e = 0; e < 100; e++) {
        double got = e < 30 ? np_linspace_at(0.04, 0.07, 30, e) : 0.07;
        worst = fmax(worst, fabs(got - dbl(tt, e)));
    }
    CHECK(worst == 0, "teacher temperature linspace(0.04, 0.07, 30) bit-identical to numpy (max err %.2g)", worst);
    CHECK(np_linspace_at(0.3, 0.3, 5, 2) == 0.3 && np_linspace_at(1.0, 2.0, 1, 0) == 1.0,
          "linspace corner cases: zero step, one element");
    fixture_free(&fx);
    return test_finish();
}
