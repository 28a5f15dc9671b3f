// The DINO loss against PyTorch (tools/make_train_fixtures.py loss): loss
// value, gradient with respect to the student logits, teacher distributions,
// centre update, teacher temperature and the teacher entropies, for a small
// case inside the temperature warm-up, one with large logits (numerical
// stability) and one with DINOv2's Sinkhorn-Knopp teacher. Also
// a finite-difference check of the gradient in float64-free form, and that
// the result does not depend on the thread count nor on splitting the student
// rows into chunks; and the KoLeo regulariser where its distances vanish.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "rng.h"
#include "testlib.h"
#include "train/koleo.h"
#include "train/loss.h"

static void run_case(const Fixture *fx, const char *name) {
    char key[64];
#define K_(s) (snprintf(key, sizeof key, "%s.%s", name, s), key)
    const float *dims = fixture_get(fx, K_("dims"))->data;
    const float *par = fixture_get(fx, K_("params"))->data;
    int K = (int)dims[0], B = (int)dims[1], nc = (int)dims[2], epoch = (int)dims[3];
    int we = (int)dims[4], sk = (int)dims[6];
    float sc = par[0];
    DinoLoss L;
    dino_loss_init(&L, K, nc, par[1], par[2], we);
    L.sinkhorn_iters = sk;
    fixture_fill(L.center, K, (uint64_t)par[3], -0.5f, 0.5f);
    float *s = malloc(sizeof(float) * nc * B * K), *t = malloc(sizeof(float) * 2 * B * K);
    float *ds = malloc(sizeof(float) * nc * B * K);
    fixture_fill(s, (size_t)nc * B * K, 11, -sc, sc);
    fixture_fill(t, (size_t)2 * B * K, 12, -sc, sc);
    LossStats st = dino_loss_forward_backward(&L, ds, s, t, B, epoch);
    float loss = (float)st.loss;
    printf("%s: loss %.8f (torch %.8f), temp %.6f\n", name, st.loss, fixture_scalar(fx, K_("loss")), st.teacher_temp);
    char what[96];
    snprintf(what, sizeof what, "%s loss", name);
    test_close(what, &loss, fixture_get(fx, K_("loss"))->data, 1, 0, 2e-6);
    snprintf(what, sizeof what, "%s temp", name);
    float tt = (float)st.teacher_temp;
    test_close(what, &tt, fixture_get(fx, K_("temp"))->data, 1, 0, 1e-7);
    snprintf(what, sizeof what, "%s dstudent", name);
    const FixtureTensor *g = fixture_get(fx, K_("dstudent"));
    // gradient magnitude ~ 1/(terms·B·0.1·K): absolute tolerance relative to its scale
    float gmax = 0;
    for (size_t i = 0; i < g->numel; i++) gmax = fmaxf(gmax, fabsf(g->data[i]));
    test_close(what, ds, g->data, g->numel, 2e-6 * gmax, 1e-4);
    snprintf(what, sizeof what, "%s teacher probabilities", name);
    test_close(what, L.tprob, fixture_get(fx, K_("tprob"))->data, (size_t)2 * B * K, 1e-9, 2e-5);
    float ent[2] = {(float)st.teacher_entropy, (float)st.teacher_mean_entropy};
    snprintf(what, sizeof what, "%s teacher entropies", name);
    test_close(what, ent, fixture_get(fx, K_("entropy"))->data, 2, 1e-6, 1e-5);

    // thread-count independence: same bytes with 1 thread
    float *ds1 = malloc(sizeof(float) * nc * B * K);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    LossStats st1 = dino_loss_forward_backward(&L, ds1, s, t, B, epoch);
    omp_set_num_threads(nt);
    CHECK(st1.loss == st.loss && !memcmp(ds, ds1, sizeof(float) * nc * B * K),
          "%s: loss and gradient identical with 1 and %d threads", name, nt);

    // in pieces: uneven chunks of student rows give the same bits
    memset(ds1, 0, sizeof(float) * nc * B * K);
    LossStats st2 = dino_loss_teacher(&L, t, B, epoch);
    for (int r0 = 0, n = 1; r0 < nc * B; r0 += n, n = n % 3 + 1) {
        if (r0 + n > nc * B) n = nc * B - r0;
        dino_loss_student(&L, ds1 + (size_t)r0 * K, s + (size_t)r0 * K, r0, n);
    }
    st2.loss = dino_loss_total(&L);
    CHECK(st2.loss == st.loss && st2.teacher_entropy == st.teacher_entropy &&
              st2.teacher_mean_entropy == st.teacher_mean_entropy && !memcmp(ds, ds1, sizeof(float) * nc * B * K),
          "%s: loss, statistics and gradient identical when the student rows come in chunks of 1-3", name);

    float *sum = malloc(sizeof(float) * K);
    dino_center_batch_sum(sum, t, 2 * B, K);
    dino_center_update(&L, sum, 2 * B);
    snprintf(what, sizeof what, "%s center update", name);
    test_close(what, L.center, fixture_get(fx, K_("center_new"))->data, K, 1e-7, 1e-6);
    free(sum);
    free(ds1);
    free(s);
    free(t);
    free(ds);
    dino_loss_free(&L);
#undef K_
}

// Central differences on a tiny case: the analytic gradient is the derivative.
static void finite_difference(void) {
    const int K = 17, B = 2, nc = 3;
    DinoLoss L;
    dino_loss_init(&L, K, nc, 0.04, 0.04, 0);
    fixture_fill(L.center, K, 5, -0.2f, 0.2f);
    float s[3 * 2 * 17], t[2 * 2 * 17], ds[3 * 2 * 17];
    fixture_fill(s, sizeof s / 4, 6, -0.3f, 0.3f);
    fixture_fill(t, sizeof t / 4, 7, -0.3f, 0.3f);
    dino_loss_forward_backward(&L, ds, s, t, B, 0);
    double maxerr = 0, maxg = 0;
    for (int i = 0; i < nc * B * K; i += 3) {
        float keep = s[i];
        const float h = 1e-3f;
        s[i] = keep + h;
        double lp = dino_loss_forward_backward(&L, NULL, s, t, B, 0).loss;
        s[i] = keep - h;
        double lm = dino_loss_forward_backward(&L, NULL, s, t, B, 0).loss;
        s[i] = keep;
        double fd = (lp - lm) / (2.0 * ((double)(keep + h) - (double)keep));
        maxerr = fmax(maxerr, fabs(fd - ds[i]));
        maxg = fmax(maxg, fabs(ds[i]));
    }
    CHECK(maxerr < 2e-3 * maxg, "finite differences: max error %.3g (max |grad| %.3g)", maxerr, maxg);
    dino_loss_free(&L);
}

// Sinkhorn-Knopp: a constant added to every teacher logit cancels (the code
// shifts by the batch maximum, so logits that would overflow exp work too),
// rows sum to one, and prototypes that the plain softmax favours for every
// row are evened out over the batch.
static void sinkhorn_properties(void) {
    const int K = 64, B = 4, nc = 2, TR = 2 * B;
    DinoLoss L;
    dino_loss_init(&L, K, nc, 0.04, 0.04, 0);
    L.sinkhorn_iters = 3;
    float t[2 * 4 * 64], q[2 * 4 * 64];
    fixture_fill(t, sizeof t / 4, 21, -0.2f, 0.2f);
    for (int r = 0; r < TR; r++) t[r * K + 5] += 1.0f;  // one prototype wins every row
    dino_loss_teacher(&L, t, B, 0);
    memcpy(q, L.tprob, sizeof q);
    for (size_t i = 0; i < sizeof t / 4; i++) t[i] += 100.0f;  // exp(2500) without the shift
    dino_loss_teacher(&L, t, B, 0);
    // t + 100 and (t + 100)/τ are rounded at 2500, so q moves by ~1e-4 relative.
    double maxdiff = 0, maxrow = 0, qmax = 0;
    for (int i = 0; i < TR * K; i++) {
        maxdiff = fmax(maxdiff, fabs(q[i] - L.tprob[i]));
        qmax = fmax(qmax, q[i]);
    }
    for (int r = 0; r < TR; r++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += q[r * K + k];
        maxrow = fmax(maxrow, fabs(s - 1.0));
    }
    CHECK(maxdiff < 1e-3 * qmax && maxrow < 1e-5,
          "sinkhorn: shift-invariant (max diff %.3g of max %.3g), rows sum to 1 (max error %.3g)", maxdiff, qmax, maxrow);
    double col5 = 0, colmean = 0;
    for (int r = 0; r < TR; r++) col5 += q[r * K + 5];
    for (int i = 0; i < TR * K; i++) colmean += q[i];
    colmean /= K;
    L.sinkhorn_iters = 0;  // the plain softmax (centre zero) for comparison
    dino_loss_teacher(&L, t, B, 0);
    double soft5 = 0;
    for (int r = 0; r < TR; r++) soft5 += L.tprob[r * K + 5];
    CHECK(soft5 > 0.9 * TR && col5 < 1.1 * colmean,
          "sinkhorn: the favoured prototype's mass %.3f (softmax %.3f) is near the mean %.3f", col5, soft5, colmean);
    dino_loss_free(&L);
}

// At a low temperature exp((t − max)/τ) of cosine logits reaches the float
// denormals; a column made only of those has a mass whose reciprocal
// overflows a float, which once turned its rows into inf · 0 = NaN.
static void sinkhorn_low_temperature(void) {
    const int K = 64, B = 4, TR = 2 * B;
    const float temp = 0.002f;
    DinoLoss L;
    dino_loss_init(&L, K, 2, temp, temp, 0);
    L.sinkhorn_iters = 3;
    float t[2 * 4 * 64];
    fixture_fill(t, sizeof t / 4, 22, -1.0f, 0.5f);
    for (int r = 0; r < TR; r++) t[r * K + r] = 1.0f;  // every row reaches the batch maximum
    // Column 40 holds only exp(-95) ≈ 5e-42: a denormal column mass.
    for (int r = 0; r < TR; r++) t[r * K + 40] = 1.0f - 95.0f * temp;
    dino_loss_teacher(&L, t, B, 0);
    int finite = 1;
    double maxrow = 0;
    for (int r = 0; r < TR; r++) {
        double s = 0;
        for (int k = 0; k < K; k++) {
            finite &= isfinite(L.tprob[r * K + k]);
            s += L.tprob[r * K + k];
        }
        maxrow = fmax(maxrow, fabs(s - 1.0));
    }
    CHECK(finite && maxrow < 1e-5, "sinkhorn at temperature %g: finite (%d), rows sum to 1 (max error %.3g)",
          (double)temp, finite, maxrow);
    dino_loss_free(&L);
}

static void teacher_temp_schedule(void) {
    DinoLoss L;
    dino_loss_init(&L, 4, 4, 0.04, 0.07, 30);
    CHECK(dino_teacher_temp(&L, 0) == 0.04, "teacher temp starts at warmup value");
    CHECK(dino_teacher_temp(&L, 29) == 0.07 && dino_teacher_temp(&L, 99) == 0.07,
          "teacher temp reaches the final value at epoch warmup-1 and stays");
    CHECK(fabs(dino_teacher_temp(&L, 15) - (0.04 + 15 * 0.03 / 29)) < 1e-17, "teacher temp mid-warmup");
    dino_loss_free(&L);
    dino_loss_init(&L, 4, 4, 0.04, 0.04, 0);
    CHECK(dino_teacher_temp(&L, 0) == 0.04, "no warmup: constant");
    dino_loss_free(&L);
}

// KoLeo where its distances vanish: identical rows are at distance
// ‖ε·1‖ = ε·sqrt(D) (PairwiseDistance's ε), a zero row normalises to zero;
// the loss and gradient stay finite. (Its values on a training batch are
// checked against PyTorch by test_train_step.)
static void koleo_degenerate(void) {
    enum { n = 3, D = 4 };
    float x[n * D] = {1, 2, 3, 4, 1, 2, 3, 4, 0, 0, 0, 0}, dx[n * D] = {0};
    double loss = koleo_loss(x, n, D, 0.1f, dx);
    // rows 0 and 1 are each other's neighbours; row 2 (zero) has every dot
    // product 0 and takes row 0, at distance ‖u_0 − ε‖.
    double u0[D], n0 = sqrt(30.0), d2 = 0;
    for (int k = 0; k < D; k++) u0[k] = x[k] / n0, d2 += (0 - u0[k] + 1e-8) * (0 - u0[k] + 1e-8);
    double want = -(2 * log(1e-8 * sqrt((double)D) + 1e-8) + log(sqrt(d2) + 1e-8)) / n;
    int finite = 1;
    for (int i = 0; i < n * D; i++) finite &= isfinite(dx[i]);
    CHECK(fabs(loss - want) < 1e-9 * fabs(want), "KoLeo of two equal rows and a zero row: %.12g (want %.12g)", loss, want);
    CHECK(finite, "KoLeo gradient finite for equal and zero rows");
}

int main(void) {
    Fixture fx = fixture_load("train_loss.bin");
    run_case(&fx, "a");
    run_case(&fx, "b");
    run_case(&fx, "c");
    fixture_free(&fx);
    finite_difference();
    sinkhorn_properties();
    sinkhorn_low_temperature();
    teacher_temp_schedule();
    koleo_degenerate();
    return test_finish();
}
