// bf16 mode on a loaded model (docs/ENGINE.md, "bf16 mode"): the emulated
// backend (the same numerics as oneDNN's bf16 matmul, on any CPU) against
// the model's own fp32 pass. The mode must be on (the tokens differ from
// fp32's) and keep each image's CLS token at cosine >= 0.999 to fp32, the
// bound docs/ENGINE.md states for features.
#ifndef DINO_TESTS_BF16_CHECK_H
#define DINO_TESTS_BF16_CHECK_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "testlib.h"
#include "vit.h"

static void bf16_check_model(const char *name, const ViTConfig *cfg, const ViTWeights *w,
                             const float *params, size_t nparams, const float *x, int B, int H, int W) {
    ViTActs *a = vit_acts_create(cfg, B, H, W, 0);
    vit_forward(cfg, w, a, x, B, NULL);
    int T = vit_acts_tokens(a), D = cfg->dim;
    size_t n = (size_t)B * T * D;
    float *f32 = malloc(n * sizeof(float));
    memcpy(f32, vit_output(a), n * sizeof(float));
    char err[256];
    GemmBf16Backend before = gemm_bf16_backend();
    if (gemm_set_bf16_backend(GEMM_BF16_EMULATED, err, sizeof err) != 0) {
        CHECK(0, "%s: emulated bf16 selectable: %s", name, err);
        free(f32), vit_acts_free(a);
        return;
    }
    gemm_set_autocast_bf16(1);
    gemm_bf16_weights_add(params, nparams);
    vit_forward(cfg, w, a, x, B, NULL);
    const float *bf = vit_output(a);
    double worst = 1;
    for (int b = 0; b < B; b++) {
        const float *p = f32 + (size_t)b * T * D, *q = bf + (size_t)b * T * D;
        double pq = 0, pp = 0, qq = 0;
        for (int j = 0; j < D; j++) {
            pq += (double)p[j] * q[j];
            pp += (double)p[j] * p[j];
            qq += (double)q[j] * q[j];
        }
        double c = pq / sqrt(pp * qq);
        if (c < worst) worst = c;
    }
    CHECK(memcmp(f32, bf, n * sizeof(float)) != 0 && worst >= 0.999,
          "%s: --use_bf16 (emulated) changes the tokens and keeps CLS at cosine >= 0.999 to fp32 (%.6f)",
          name, worst);
    gemm_bf16_weights_remove(params);
    gemm_set_autocast_bf16(0);
    gemm_set_bf16_backend(before, NULL, 0);
    free(f32);
    vit_acts_free(a);
}

#endif
