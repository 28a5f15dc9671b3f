// AdamW, SGD and LARS against PyTorch (tools/make_train_fixtures.py optim):
// six steps on four tensors in two parameter groups with changing lr and
// weight decay, gradients of three magnitudes, and the last tensor skipped
// (grad None, as the frozen last layer) in steps 1 and 2. Parameters and
// moments must match to 1 ulp (AdamW, SGD) after every step; LARS, whose
// trust ratio depends on norm reductions, to a few ulp. Also per-tensor
// gradient clipping and the teacher EMA. PyTorch's sqrt on this build (MKL VML)
// is not always correctly rounded, so AdamW parameters may differ by 1 ulp;
// LARS momenta are compared in units of the tensor's largest value because
// PyTorch's float norms round differently from ours.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "params.h"
#include "rng.h"
#include "testlib.h"
#include "train/optim.h"

static const char *NAMES[4] = {"w", "bias", "ln", "last_layer"};
static const int64_t SHAPES[4][3] = {{37, 5, 0}, {11, 0, 0}, {7, 0, 0}, {4, 3, 2}};
static const int NDIM[4] = {2, 1, 1, 3};
#define STEPS 6
static const float CLIP_SCALE[4] = {1.0f, 0.5f, 3.0f, 0.2f};

// Doubles are stored as three floats (hi, mid, lo rows) that add up exactly.
static double dbl(const Fixture *fx, const char *name, int i) {
    const FixtureTensor *t = fixture_get(fx, name);
    size_t n = t->numel / 3;
    return (double)t->data[i] + (double)t->data[n + i] + (double)t->data[2 * n + i];
}

// Largest difference in units of float32 spacing at the reference value.
// scaled = 1: in units of the spacing at the tensor's largest magnitude instead
// (for values that are differences of nearly equal numbers, e.g. LARS momenta).
static long n_differ, n_compared;
static double max_ulp_mode(const float *a, const float *b, size_t n, int scaled) {
    double worst = 0;
    float big = 0;
    for (size_t i = 0; i < n; i++) big = fmaxf(big, fabsf(b[i]));
    n_compared += (long)n;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i]) continue;
        n_differ++;
        float at = scaled ? big : fabsf(b[i]);
        double u = fabs((double)nextafterf(at, INFINITY) - (double)at);
        worst = fmax(worst, fabs((double)a[i] - b[i]) / u);
    }
    return worst;
}
static double max_ulp(const float *a, const float *b, size_t n) { return max_ulp_mode(a, b, n, 0); }

static void run_kind(const Fixture *fx, const char *kname, OptimKind kind, double ulp_tol) {
    ParamTable t;
    param_table_init(&t);
    for (int i = 0; i < 4; i++) param_table_add(&t, "x.", NAMES[i], NDIM[i], SHAPES[i]);
    CHECK(!t.p[0].no_decay && t.p[1].no_decay && t.p[2].no_decay && !t.p[3].no_decay,
          "%s: parameter groups from the no_decay rule", kname);
    float *p = malloc(t.total * sizeof(float)), *g = malloc(t.total * sizeof(float));
    for (int i = 0; i < 4; i++) fixture_fill(p + t.p[i].offset, t.p[i].numel, 100 + i, -1, 1);
    Optimizer o;
    optim_init(&o, kind, &t);
    double worst_p = 0, worst_m = 0;
    n_differ = n_compared = 0;
    int ok_all = 1;
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < 4; i++) {
            fixture_fill(g + t.p[i].offset, t.p[i].numel, 1000 + 10 * s + i, -1, 1);
            // the fixture multiplies by 10^((s%3)-1) in float32 numpy arithmetic
            float f = (float)pow(10.0, (s % 3) - 1);
            for (size_t k = 0; k < t.p[i].numel; k++) g[t.p[i].offset + k] *= f;
        }
        uint8_t skip[4] = {0, 0, 0, (uint8_t)(s == 1 || s == 2)};
        optim_step(&o, p, g, dbl(fx, "lr", s), dbl(fx, "wd", s), skip);
        for (int i = 0; i < 4; i++) {
            char k[96];
            snprintf(k, sizeof k, "%s.%d.%s", kname, s, NAMES[i]);
            const FixtureTensor *ref = fixture_get(fx, k);
            double e = max_ulp(p + t.p[i].offset, ref->data, ref->numel);
            worst_p = fmax(worst_p, e);
            if (e > ulp_tol) {
                ok_all = 0;
                printf("  %s: %.1f ulp\n", k, e);
            }
            snprintf(k, sizeof k, "%s.%d.%s.m", kname, s, NAMES[i]);
            const FixtureTensor *rm = fixture_find(fx, k);
            if (rm) {
                double em = max_ulp_mode(o.m + t.p[i].offset, rm->data, rm->numel, kind == OPTIM_LARS);
                worst_m = fmax(worst_m, em);
                if (em > ulp_tol) ok_all = 0, printf("  %s: %.1f ulp\n", k, em);
            }
            snprintf(k, sizeof k, "%s.%d.%s.v", kname, s, NAMES[i]);
            const FixtureTensor *rv = fixture_find(fx, k);
            if (rv) {
                double ev = max_ulp(o.v + t.p[i].offset, rv->data, rv->numel);
                worst_m = fmax(worst_m, ev);
                if (ev > ulp_tol) ok_all = 0, printf("  %s: %.1f ulp\n", k, ev);
            }
            snprintf(k, sizeof k, "%s.%d.%s.step", kname, s, NAMES[i]);
            const FixtureTensor *rs = fixture_find(fx, k);
            if (rs && (double)o.step[i] != rs->data[0]) {
                ok_all = 0;
                printf("  %s: step %lld, torch %g\n", k, (long long)o.step[i], rs->data[0]);
            }
        }
    }
    CHECK(ok_all, "%s: %d steps, params max %.1f ulp, moments max %.1f ulp (tolerance %.0f ulp); %ld of %ld values not bit-identical",
          kname, STEPS, worst_p, worst_m, ulp_tol, n_differ, n_compared);
    optim_free(&o);
    free(p);
    free(g);
    param_table_free(&t);
}

static void clip_and_ema(const Fixture *fx) {
    ParamTable t;
    param_table_init(&t);
    for (int i = 0; i < 4; i++) param_table_add(&t, "x.", NAMES[i], NDIM[i], SHAPES[i]);
    float *g = malloc(t.total * sizeof(float));
    for (int i = 0; i < 4; i++) {
        float *gi = g + t.p[i].offset;
        fixture_fill(gi, t.p[i].numel, 2000 + i, -1, 1);
        for (size_t k = 0; k < t.p[i].numel; k++) gi[k] *= CLIP_SCALE[i];
    }
    float norms[4];
    clip_gradients(&t, g, 3.0f, NULL, norms);
    int clipped = 0;
    for (int i = 0; i < 4; i++) clipped += norms[i] > 3.0f;
    CHECK(clipped >= 2 && clipped < 4, "clip: %d of 4 tensors above the threshold (both cases covered)", clipped);
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        char k[64];
        snprintf(k, sizeof k, "clip.%s", NAMES[i]);
        worst = fmax(worst, max_ulp(g + t.p[i].offset, fixture_get(fx, k)->data, t.p[i].numel));
    }
    CHECK(worst <= 2, "clip_gradients matches torch: max %.1f ulp", worst);
    free(g);
    param_table_free(&t);

    worst = 0;
    for (int j = 0; j < 3; j++) {
        float te[257], st[257];
        fixture_fill(te, 257, 3000 + j, -1, 1);
        fixture_fill(st, 257, 3100 + j, -1, 1);
        ema_update(te, st, 257, dbl(fx, "ema.m", j));
        char k[32];
        snprintf(k, sizeof k, "ema.%d", j);
        worst = fmax(worst, max_ulp(te, fixture_get(fx, k)->data, 257));
    }
    CHECK(worst == 0, "teacher EMA bit-identical to torch (max %.1f ulp)", worst);
}

// A tensor of many norm blocks: its norm (summed block by block in parallel)
// is the same with one thread and with three, and within float rounding of a
// plain double sum.
static void clip_threads(void) {
    ParamTable t;
    param_table_init(&t);
    int64_t shape[2] = {300, 1001};
    param_table_add(&t, "x.", "w", 2, shape);
    float *g = malloc(t.total * sizeof(float)), *h = malloc(t.total * sizeof(float));
    fixture_fill(g, t.total, 4000, -1, 1);
    memcpy(h, g, t.total * sizeof(float));
    double plain = 0;
    for (size_t i = 0; i < t.total; i++) plain += (double)g[i] * g[i];
    float n1, n3;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    clip_gradients(&t, g, 1.0f, NULL, &n1);
    omp_set_num_threads(3);
    clip_gradients(&t, h, 1.0f, NULL, &n3);
    omp_set_num_threads(saved);
    CHECK(n1 == n3 && !memcmp(g, h, t.total * sizeof(float)) && fabs(n1 - sqrt(plain)) <= 1e-6 * sqrt(plain),
          "clip_gradients over %zu floats: 1 and 3 threads give the same norm (%.9g, %.9g) and gradients; plain sum %.9g",
          t.total, n1, n3, sqrt(plain));
    free(g);
    free(h);
    param_table_free(&t);
}

int main(void) {
    Fixture fx = fixture_load("train_optim.bin");
    clip_threads();
    run_kind(&fx, "adamw", OPTIM_ADAMW, 1);
    run_kind(&fx, "sgd", OPTIM_SGD, 1);
    run_kind(&fx, "lars", OPTIM_LARS, 2);
    clip_and_ema(&fx);
    fixture_free(&fx);
    return test_finish();
}
