// The ResNet's evaluation forward on oneDNN, where BatchNorm is folded into
// the convolutions and the bottlenecks run in oneDNN's layout from the first
// block to the last (conv.h's slots, residuals as sum post-ops), against the
// same forward under OpenBLAS, which runs the layers one by one: equal up to
// fp32 rounding, within 1e-5 of the features' scale (engine_close). The
// model is resnet50's shape at 1/8 of its widths (every width a multiple of
// oneDNN's 8-channel blocks, so the slots chain), blocks [2,1,1,1], with a
// full batch and a smaller one on the same activations.
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "engine_fill.h"
#include "gemm.h"
#include "gemm_onednn.h"
#include "resnet.h"
#include "testlib.h"

#define TOL_FUSED 1e-5

// Features of the first b images under backend be.
static void features(GemmF32Backend be, const ResNetConfig *cfg, ResNetWeights *w, ResNetActs *a,
                     const float *img, int b, float *out) {
    char err[200] = "";
    CHECK(gemm_set_f32_backend(be, err, sizeof err) == 0, "backend %d: %s", (int)be, err);
    resnet_forward(cfg, w, a, img, b, 0);
    memcpy(out, resnet_output(a), (size_t)b * resnet_out_dim(cfg) * sizeof(float));
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    char err[200] = "";
    if (onednn_ready(err, sizeof err)) {
        printf("note: oneDNN not available (%s): nothing to compare\n", err);
        CHECK(1, "skipped");
        return test_finish();
    }
    ResNetConfig cfg;
    resnet_config_preset(&cfg, "resnet50");
    for (int s = 0; s < RESNET_STAGES; s++) cfg.planes[s] /= 8;
    static const int blocks[] = {2, 1, 1, 1};
    memcpy(cfg.blocks, blocks, sizeof blocks);
    ParamTable t;
    param_table_init(&t);
    resnet_param_table(&cfg, &t, "");
    float *params = mallocCheck(t.total * sizeof(float));
    for (int i = 0; i < t.n; i++) {  // BatchNorm statistics away from the identity
        const ParamInfo *p = &t.p[i];
        int var = engine_ends_with(p->name, "running_var"), one = p->ndim == 1;
        float hi = one ? (var ? 2.0f : 0.5f) : 0.2f, lo = one ? (var ? 0.5f : -0.3f) : -0.2f;
        if (one && engine_ends_with(p->name, ".weight")) lo = 0.5f, hi = 1.5f;
        fixture_fill(params + p->offset, p->numel, 900 + (uint64_t)i, lo, hi);
    }
    ResNetWeights w;
    resnet_weights_bind(&w, &cfg, params);
    const int B = 2, S = 40, D = resnet_out_dim(&cfg);
    float *img = mallocCheck((size_t)B * 3 * S * S * sizeof(float));
    fixture_fill(img, (size_t)B * 3 * S * S, 77, -2.0f, 2.0f);
    float *want = mallocCheck((size_t)B * D * sizeof(float)), *got = mallocCheck((size_t)B * D * sizeof(float));
    ResNetActs *a = resnet_acts_create(&cfg, B, S, S, 0);
    GemmF32Backend was = gemm_f32_backend();
    for (int b = B; b >= 1; b--) {
        features(GEMM_OPENBLAS, &cfg, &w, a, img, b, want);
        features(GEMM_ONEDNN, &cfg, &w, a, img, b, got);
        char name[96];
        snprintf(name, sizeof name, "resnet50/8 eval, %d of %d images: oneDNN slots vs layers", b, B);
        engine_close(name, got, want, (size_t)b * D, TOL_FUSED);
    }
    gemm_set_f32_backend(was, NULL, 0);
    resnet_acts_free(a);
    free(params), free(img), free(want), free(got);
    param_table_free(&t);
    return test_finish();
}
