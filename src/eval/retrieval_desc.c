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

// The final-norm CLS token of one image (3, H, W) into out (D).
static int cls_of(const ViTConfig *cfg, const ViTWeights *w, const float *x, int H, int W,
                  float *out, char *err, size_t errlen) {
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

int retrieval_cls_descriptor(const ViTConfig *cfg, const ViTWeights *w, const float *x, int H,
                             int W, int multiscale, float *out, char *err, size_t errlen) {
    int D = cfg->dim;
    if (cls_of(cfg, w, x, H, W, out, err, errlen)) return -1;
    if (multiscale) {
        const double scales[2] = {1.0 / sqrt(2.0), 0.5};
        float *f = mallocCheck(sizeof(float) * (size_t)D);
        for (int s = 0; s < 2; s++) {
            int oh, ow;
            float *y = retrieval_rescale(x, 3, H, W, scales[s], &oh, &ow);
            int rc = y ? cls_of(cfg, w, y, oh, ow, f, err, errlen)
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
