// Tests of the linear probe (src/eval/linear.c):
// 1. Three epochs of the reference's loop in PyTorch (tests/fixtures/
//    eval_linear.bin: SGD momentum 0.9, lr·batch/256, CosineAnnealingLR per
//    epoch, CE loss, a smaller last batch): our weights, biases, per-epoch
//    learning rates and mean losses after each epoch match (atol 5e-7 on
//    weights of size ~0.1-1, i.e. float rounding only).
// 2. The cosine schedule's closed form at a few epochs.
// 3. On synthetic linearly separable features the full probe reaches 100%.
// 4. The initial weight has the reference's N(0, 0.01) statistics.
// 5. Out-of-range labels are refused with a message.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "eval/linear.h"
#include "fixture.h"
#include "rng.h"
#include "testlib.h"

static void test_fixture(void) {
    Fixture fx = fixture_load("eval_linear.bin");
    const float *m = fixture_get(&fx, "meta")->data;
    int n = (int)m[0], nv = (int)m[1], d = (int)m[2], c = (int)m[3], batch = (int)m[4],
        epochs = (int)m[5];
    float lr = m[6];
    float *x = mallocCheck((size_t)n * d * sizeof(float)), *xv = mallocCheck((size_t)nv * d * sizeof(float));
    fixture_fill(x, (size_t)n * d, 201, -1, 1);
    fixture_fill(xv, (size_t)nv * d, 203, -1, 1);
    int64_t *y = mallocCheck(n * sizeof(int64_t)), *yv = mallocCheck(nv * sizeof(int64_t));
    for (int i = 0; i < n; i++) y[i] = (int64_t)fixture_get(&fx, "y")->data[i];
    for (int i = 0; i < nv; i++) yv[i] = (int64_t)fixture_get(&fx, "yv")->data[i];
    LinearClassifier lc;
    linear_init(&lc, d, c, 0);
    fixture_fill(lc.w, (size_t)c * d, 202, -0.05f, 0.05f);
    memset(lc.b, 0, c * sizeof(float));
    LinearSgd opt;
    linear_sgd_init(&opt, &lc);
    double base = (double)lr * batch / 256.0;
    for (int e = 0; e < epochs; e++) {
        char name[32];
        float elr = (float)linear_lr_at(base, e, epochs);
        snprintf(name, sizeof name, "lr%d", e);
        CHECK(fabsf(elr - fixture_scalar(&fx, name)) <= 1e-7f * fixture_scalar(&fx, name),
              "epoch %d learning rate %.8g equals CosineAnnealingLR's %.8g", e, elr,
              fixture_scalar(&fx, name));
        double loss = linear_train_epoch(&lc, &opt, x, y, n, NULL, batch, elr, 0.9f, 0.0f);
        snprintf(name, sizeof name, "loss%d", e);
        CHECK(fabs(loss - fixture_scalar(&fx, name)) < 1e-5, "epoch %d mean loss %.6f (PyTorch %.6f)",
              e, loss, fixture_scalar(&fx, name));
        snprintf(name, sizeof name, "w%d", e);
        char what[64];
        snprintf(what, sizeof what, "weights after epoch %d", e);
        test_close(what, lc.w, fixture_get(&fx, name)->data, (size_t)c * d, 5e-7, 1e-6);
        snprintf(name, sizeof name, "b%d", e);
        snprintf(what, sizeof what, "biases after epoch %d", e);
        test_close(what, lc.b, fixture_get(&fx, name)->data, (size_t)c, 5e-7, 1e-6);
        double t1, t5, vl;
        linear_evaluate(&lc, xv, yv, nv, &t1, &t5, &vl);
        snprintf(name, sizeof name, "top1_%d", e);
        CHECK(fabs(t1 - fixture_scalar(&fx, name)) < 1e-4, "epoch %d val top-1 %.2f (PyTorch %.2f)",
              e, t1, fixture_scalar(&fx, name));
    }
    linear_sgd_free(&opt);
    linear_free(&lc);
    free(x); free(xv); free(y); free(yv);
    fixture_free(&fx);
}

static void test_schedule(void) {
    CHECK(fabs(linear_lr_at(0.5, 0, 100) - 0.5) < 1e-15, "cosine schedule starts at the base lr");
    CHECK(fabs(linear_lr_at(0.5, 50, 100) - 0.25) < 1e-12, "cosine schedule is half way at T/2");
    CHECK(fabs(linear_lr_at(0.5, 99, 100) - 0.5 * 0.5 * (1 + cos(M_PI * 0.99))) < 1e-15,
          "cosine schedule at the last epoch is ~1.2e-4 of base, not 0");
}

static void test_separable(void) {
    const int n = 2000, nv = 500, d = 32, c = 10;
    float *x = mallocCheck((size_t)n * d * sizeof(float)), *xv = mallocCheck((size_t)nv * d * sizeof(float));
    int64_t *y = mallocCheck(n * sizeof(int64_t)), *yv = mallocCheck(nv * sizeof(int64_t));
    fixture_fill(x, (size_t)n * d, 301, -1, 1);
    fixture_fill(xv, (size_t)nv * d, 302, -1, 1);
    // Class = argmax over the first c coordinates after a margin is added there.
    for (int i = 0; i < n; i++) { y[i] = i % c; x[(size_t)i * d + y[i]] += 2.5f; }
    for (int i = 0; i < nv; i++) { yv[i] = (i * 7) % c; xv[(size_t)i * d + yv[i]] += 2.5f; }
    LinearConfig cfg;
    linear_config_default(&cfg);
    cfg.epochs = 20;
    cfg.lr = 1.0f;
    cfg.batch_size = 64;
    LinearResult res;
    char err[256];
    int rc = linear_probe(&cfg, x, y, n, xv, yv, nv, d, c, NULL, &res, err, sizeof err);
    CHECK(rc == 0 && res.best_top1 == 100.0, "separable features: best val top-1 %.2f%% (want 100), loss %.4f",
          res.best_top1, res.last_train_loss);
    CHECK(res.best_top5 == 100.0, "separable features: top-5 %.2f%%", res.best_top5);
    // The same with a bad label.
    y[5] = c;
    rc = linear_probe(&cfg, x, y, n, xv, yv, nv, d, c, NULL, &res, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "label"), "label >= classes refused: %s", err);
    free(x); free(xv); free(y); free(yv);
}

static void test_init(void) {
    LinearClassifier lc;
    linear_init(&lc, 384, 100, 3);
    double s = 0, ss = 0;
    size_t n = 384 * 100;
    for (size_t i = 0; i < n; i++) { s += lc.w[i]; ss += (double)lc.w[i] * lc.w[i]; }
    double mean = s / n, sd = sqrt(ss / n - mean * mean);
    int zero_bias = 1;
    for (int i = 0; i < 100; i++) zero_bias &= lc.b[i] == 0;
    CHECK(fabs(mean) < 3e-4 && fabs(sd - 0.01) < 3e-4 && zero_bias,
          "init weight mean %.2g std %.5f (want 0, 0.01 within 3e-4), bias 0", mean, sd);
    linear_free(&lc);
}

int main(void) {
    dino_set_threads(2);
    test_fixture();
    test_schedule();
    test_separable();
    test_init();
    return test_finish();
}
