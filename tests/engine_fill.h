// Shared by the engine tests: regenerates the weights, inputs and loss weights
// of tools/make_engine_fixtures.py with fixture_fill (same seeds, same ranges),
// and compares tensors with a tolerance relative to the tensor's scale.
#ifndef DINO_TESTS_ENGINE_FILL_H
#define DINO_TESTS_ENGINE_FILL_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"
#include "params.h"
#include "rng.h"
#include "testlib.h"
#include "train/trainer.h"

#define ENGINE_PARAM_SEED 1000
#define ENGINE_IMG_SEED 5000
#define ENGINE_R_SEED 7000
#define ENGINE_RT_SEED 8000

static int engine_ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

// param_range() of the fixture script.
static void engine_param_range(const ParamInfo *p, float *lo, float *hi) {
    if (engine_ends_with(p->name, "weight_g") || (p->ndim == 1 && !engine_ends_with(p->name, ".bias"))) {
        *lo = 0.5f, *hi = 1.5f;
    } else if (engine_ends_with(p->name, ".bias")) {
        *lo = -0.1f, *hi = 0.1f;
    } else if (engine_ends_with(p->name, "cls_token") || engine_ends_with(p->name, "pos_embed")) {
        *lo = -0.5f, *hi = 0.5f;
    } else {
        size_t fan_in = p->numel / (size_t)p->shape[0];
        float a = (float)(1.0 / sqrt((double)fan_in));
        *lo = -a, *hi = a;
    }
}

// The ResNet fixture scripts' param_range(): running statistics, biases,
// 1-D weights (BatchNorm's; weight norm's g too, or g at 1 when g_one, as
// tools/make_resnet_train_fixtures.py), He-uniform convolutions and Linears;
// parameter i = fill(shape, ENGINE_PARAM_SEED + i, lo, hi).
static inline void engine_fill_resnet_params(const ParamTable *t, float *buf, int g_one) {
    for (int i = 0; i < t->n; i++) {
        const ParamInfo *p = &t->p[i];
        float lo, hi;
        if (engine_ends_with(p->name, "running_mean")) lo = -0.3f, hi = 0.3f;
        else if (engine_ends_with(p->name, "running_var")) lo = 0.5f, hi = 2.0f;
        else if (g_one && engine_ends_with(p->name, "weight_g")) lo = 1.0f, hi = 1.0f;
        else if (engine_ends_with(p->name, ".bias")) lo = -0.2f, hi = 0.2f;
        else if (p->ndim == 1) lo = 0.5f, hi = 1.5f;
        else {
            size_t fan_in = p->numel / (size_t)p->shape[0];
            hi = (float)sqrt(6.0 / (double)fan_in), lo = -hi;
        }
        fixture_fill(buf + p->offset, p->numel, ENGINE_PARAM_SEED + (uint64_t)i, lo, hi);
    }
}

// A fixture's doubles, each stored as three floats (hi, mid, lo) in three
// blocks of numel / 3: element i summed back in double.
static inline double engine_fixture_double(const FixtureTensor *t, size_t i) {
    size_t n = t->numel / 3;
    return (double)t->data[i] + (double)t->data[n + i] + (double)t->data[2 * n + i];
}

// The schedule both train-step fixture scripts write as "cfg.d" (lr, min_lr,
// weight decay and its end, teacher momentum, warm-up and final teacher
// temperature) and the clipping threshold "clip", into c.
static inline void engine_fixture_schedules(TrainConfig *c, const Fixture *fx) {
    const FixtureTensor *cd = fixture_get(fx, "cfg.d");
    c->lr = engine_fixture_double(cd, 0);
    c->min_lr = engine_fixture_double(cd, 1);
    c->weight_decay = engine_fixture_double(cd, 2);
    c->weight_decay_end = engine_fixture_double(cd, 3);
    c->momentum_teacher = engine_fixture_double(cd, 4);
    c->warmup_teacher_temp = engine_fixture_double(cd, 5);
    c->teacher_temp = engine_fixture_double(cd, 6);
    c->clip_grad = fixture_scalar(fx, "clip");
}

// Parameter i of the table = fill(shape, ENGINE_PARAM_SEED + i, lo, hi).
static inline void engine_fill_params(const ParamTable *t, float *buf) {
    for (int i = 0; i < t->n; i++) {
        float lo, hi;
        engine_param_range(&t->p[i], &lo, &hi);
        fixture_fill(buf + t->p[i].offset, t->p[i].numel, ENGINE_PARAM_SEED + (uint64_t)i, lo, hi);
    }
}

// |got - want| <= rel·(max|want| + |want|): a tolerance relative to the
// tensor's scale, so near-zero elements of a large tensor are not held to a
// relative bound they cannot meet in fp32.
static inline int engine_close(const char *what, const float *got, const float *want, size_t n,
                        double rel) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    return test_close(what, got, want, n, rel * (mx > 0 ? mx : 1.0), rel);
}

// The bound of engine_close, quietly: 1 when every element is within it; the
// worst error as a fraction of the tensor's scale raises *worst, and a
// failure prints one line naming `what`.
static inline int engine_close_worst(const char *what, const float *got, const float *want, size_t n,
                                     double rel, double *worst) {
    double mx = 0, e = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= rel * (mx > 0 ? mx : 1) + rel * fabs(want[i]))) ok = 0;
        e = fmax(e, d / (mx > 0 ? mx : 1));
    }
    if (e > *worst) *worst = e;
    if (!ok) printf("  %s: max error %.3g of the tensor's scale %.3g\n", what, e, mx);
    return ok;
}

// Gradients that BatchNorm in the head makes exactly zero: the bias of a
// Linear that a BatchNorm follows (the normalisation cancels any shift), and
// the ViT's final norm bias under a head whose first Linear a BatchNorm
// follows (the gradient reaching the features sums to zero over the batch).
// Both sides hold rounding only, so a comparison relative to their own scale
// means nothing. Returns the table index of the weight whose gradient gives
// the scale (the Linear's; the norm's) when p is such a bias, else -1.
static inline int engine_bias_before_bn(const ParamTable *t, const ParamInfo *p) {
    int k;
    char name[PARAM_NAME_MAX];
    if (!strcmp(p->name, "backbone.norm.bias"))
        return param_table_find(t, "head.mlp.1.running_mean") < 0 ? -1 : param_table_find(t, "backbone.norm.weight");
    if (!engine_ends_with(p->name, ".bias") || sscanf(p->name, "head.mlp.%d.", &k) != 1) return -1;
    snprintf(name, sizeof name, "head.mlp.%d.running_mean", k + 1);
    if (param_table_find(t, name) < 0) return -1;
    snprintf(name, sizeof name, "head.mlp.%d.weight", k);
    return param_table_find(t, name);
}

// Such a gradient against zero: max(|got|, |want|) within rel of `scale`
// (the gradient engine_bias_before_bn names); the worst fraction raises *worst.
static inline int engine_zero_close(const char *what, const float *got, const float *want, size_t n,
                                    const float *scale_of, size_t n_scale, double rel, double *worst) {
    double scale = 0, e = 0;
    for (size_t i = 0; i < n_scale; i++) scale = fmax(scale, fabs(scale_of[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fmax(fabs(got[i]), fabs(want[i])) / scale);
    if (e > *worst) *worst = e;
    if (!(e <= rel)) printf("  %s: %.3g of the weight gradient's scale, not zero\n", what, e);
    return e <= rel;
}

// DINOv2's linear-eval rows (create_linear_input), written from final-norm
// tokens: for each of B images, the CLS tokens of blocks[0..n-1] (each
// (B, T, D)), then the mean of the last block's T − 1 patch tokens.
static inline void engine_avgpool_concat_ref(float *want, const float *const *blocks, int n, int B,
                                             int T, int D) {
    const float *last = blocks[n - 1];
    for (int b = 0; b < B; b++) {
        float *o = want + (size_t)b * (n + 1) * D;
        for (int k = 0; k < n; k++)
            memcpy(o + (size_t)k * D, blocks[k] + (size_t)b * T * D, (size_t)D * sizeof(float));
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int t = 1; t < T; t++) s += last[((size_t)b * T + t) * D + j];
            o[(size_t)n * D + j] = (float)(s / (T - 1));
        }
    }
}

#endif
