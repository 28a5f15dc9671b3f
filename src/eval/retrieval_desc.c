#include "eval/retrieval_desc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "eval/features.h"
#include "eval/retrieval.h"
#include "eval/retrieval_input.h"

void retrieval_l2_normalize(float *x, int64_t n, int d) {
    for (int64_t i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)r[k] * r[k];
        float nrm = (float)sqrt(s);
        if (nrm < 1e-12f) nrm = 1e-12f;
        for (int k = 0; k < d; k++) r[k] /= nrm;
    }
}

// One image's feature: (ctx, image (3, H, W)) -> out (D); 0 or -1 with err.
typedef int (*OneFeatureFn)(const void *ctx, const float *x, int H, int W, float *out, char *err,
                            size_t errlen);

typedef struct {
    const ViTConfig *cfg;
    const ViTWeights *w;
} VitCtx;

// The final-norm CLS token of one image (3, H, W) into out (D).
static int cls_of(const void *ctx, const float *x, int H, int W, float *out, char *err,
                  size_t errlen) {
    const ViTConfig *cfg = ((const VitCtx *)ctx)->cfg;
    const ViTWeights *w = ((const VitCtx *)ctx)->w;
    if (H < cfg->patch || W < cfg->patch)
        return dino_errf(err, errlen, "an image of %dx%d pixels is smaller than one %d-pixel patch",
                         W, H, cfg->patch);
    double bytes = (double)vit_acts_bytes(cfg, 1, H, W, VIT_ACTS_INFER);
    if (bytes > FEATURES_MAX_PASS_BYTES)
        return dino_errf(err, errlen, "a forward pass at %dx%d pixels needs %.1f GiB, above the %.0f GiB "
                         "limit; use a smaller --imsize", W, H, bytes / (1 << 30), FEATURES_MAX_PASS_BYTES / (1 << 30));
    struct ViTActs *a = vit_acts_create(cfg, 1, H, W, 0);
    vit_forward(cfg, w, a, x, 1, NULL);
    memcpy(out, vit_output(a), sizeof(float) * (size_t)cfg->dim);
    vit_acts_free(a);
    return 0;
}

typedef struct {
    const ResNetConfig *cfg;
    ResNetWeights *w;
} ResNetCtx;

// A ResNet's pooled feature of one image in evaluation mode.
static int pooled_of(const void *ctx, const float *x, int H, int W, float *out, char *err,
                     size_t errlen) {
    const ResNetCtx *r = ctx;
    if (H < 8 || W < 8)
        return dino_errf(err, errlen, "an image of %dx%d pixels is too small for a ResNet", W, H);
    double bytes = 4.0 * 3 * 40 * H * W;  // a bound before the exact count
    if (bytes <= FEATURES_MAX_PASS_BYTES) bytes = (double)resnet_acts_bytes(r->cfg, 1, H, W, 0);
    if (bytes > FEATURES_MAX_PASS_BYTES)
        return dino_errf(err, errlen, "a forward pass at %dx%d pixels needs %.1f GiB, above the %.0f GiB "
                         "limit; use a smaller --imsize", W, H, bytes / (1 << 30), FEATURES_MAX_PASS_BYTES / (1 << 30));
    ResNetActs *a = resnet_acts_create(r->cfg, 1, H, W, 0);
    resnet_forward(r->cfg, r->w, a, x, 1, 0);
    memcpy(out, resnet_output(a), sizeof(float) * (size_t)resnet_out_dim(r->cfg));
    resnet_acts_free(a);
    return 0;
}

// The feature at scale 1 (and the mean with scales 1/√2 and 1/2 when
// multiscale), L2-normalised.
static int descriptor(OneFeatureFn one, const void *ctx, int D, const float *x, int H, int W,
                      int multiscale, float *out, char *err, size_t errlen) {
    if (one(ctx, x, H, W, out, err, errlen)) return -1;
    if (multiscale) {
        const double scales[2] = {1.0 / sqrt(2.0), 0.5};
        float *f = mallocCheck(sizeof(float) * (size_t)D);
        for (int s = 0; s < 2; s++) {
            int oh, ow;
            float *y = retrieval_rescale(x, 3, H, W, scales[s], &oh, &ow);
            int rc = y ? one(ctx, y, oh, ow, f, err, errlen)
                       : dino_errf(err, errlen, "an image of %dx%d pixels vanishes at scale %g", W, H,
                                   scales[s]);
            free(y);
            if (rc) {
                free(f);
                return -1;
            }
            for (int k = 0; k < D; k++) out[k] += f[k];
        }
        free(f);
        for (int k = 0; k < D; k++) out[k] /= 3.0f;
    }
    retrieval_l2_normalize(out, 1, D);
    return 0;
}

int retrieval_cls_descriptor(const ViTConfig *cfg, const ViTWeights *w, const float *x, int H,
                             int W, int multiscale, float *out, char *err, size_t errlen) {
    VitCtx c = {cfg, w};
    return descriptor(cls_of, &c, cfg->dim, x, H, W, multiscale, out, err, errlen);
}

int retrieval_resnet_descriptor(const ResNetConfig *cfg, ResNetWeights *w, const float *x, int H,
                                int W, int multiscale, float *out, char *err, size_t errlen) {
    ResNetCtx c = {cfg, w};
    return descriptor(pooled_of, &c, resnet_out_dim(cfg), x, H, W, multiscale, out, err, errlen);
}

void retrieval_copy_descriptors(const ViTConfig *cfg, const ViTWeights *w, struct ViTActs *acts,
                                const float *x, int B, float *out) {
    vit_forward(cfg, w, acts, x, B, NULL);
    int D = cfg->dim, T = vit_acts_tokens(acts);
    const float *tok = vit_output(acts);
    for (int b = 0; b < B; b++) {
        const float *t = tok + (size_t)b * T * D;
        float *o = out + (size_t)b * 2 * D;
        memcpy(o, t, sizeof(float) * (size_t)D);
        retrieval_gem(t + D, T - 1, D, 4.0f, 1e-6f, o + D);
    }
}
