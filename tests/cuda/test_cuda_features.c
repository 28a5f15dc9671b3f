// Inference on the GPU for `dino features --device cuda` (make CUDA=1
// cuda-test; exit 77 without a device): the final-norm tokens of the last
// n blocks from cuda_features_tokens against vit_forward + vit_intermediate on
// the CPU, for ViT-S/16 at 224 px (no position interpolation) and at 160 px
// (interpolated), n = 1 and 4, a full batch and a smaller last batch, as
// normalised errors ||gpu − cpu||₂ / ||cpu||₂ (fp32 GEMMs: 1e-4; tf32: 5e-3);
// a rerun is bit-identical.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testlib.h"
#include "cuda_testutil.h"
#include "common.h"
#include "cuda/features_cuda.h"
#include "cuda/ops_cuda.h"
#include "rng.h"
#include "vit.h"

static void run(const char *gemm, double bound, int size, int n, int batch, int B) {
    ViTConfig cfg;
    vit_config_preset(&cfg, "vit_small", 16);
    ParamTable t;
    param_table_init(&t);
    vit_param_table(&cfg, &t, "");
    float *params = mallocCheck(t.total * sizeof(float));
    ViTWeights w;
    vit_weights_bind(&w, &cfg, params);
    vit_init(&cfg, &w, 3);
    size_t nimg = (size_t)B * 3 * size * size;
    float *img = mallocCheck(nimg * sizeof(float));
    fixture_fill(img, nimg, 40 + (uint64_t)size, -2.0f, 2.0f);
    ViTActs *a = vit_acts_create(&cfg, batch, size, size, 0);
    vit_forward(&cfg, &w, a, img, B, NULL);
    int T = vit_acts_tokens(a);
    size_t per = (size_t)B * T * cfg.dim;
    float *want = mallocCheck((size_t)n * per * sizeof(float));
    if (n == 1) memcpy(want, vit_output(a), per * sizeof(float));
    else vit_intermediate(&cfg, &w, a, n, want);
    char err[256];
    CudaFeatures *f = cuda_features_create(&cfg, &w, batch, size, n, gemm, err, sizeof err);
    CHECK(f != NULL, "cuda_features_create: %s", f ? "ok" : err);
    if (!f) return;
    float *got = mallocCheck((size_t)n * per * sizeof(float)), *again = mallocCheck((size_t)n * per * sizeof(float));
    cuda_features_tokens(f, img, B, got);
    double e = rel_l2(got, want, (size_t)n * per);
    CHECK(e <= bound, "%s %d px, last %d blocks, %d of %d images: tokens normalised error %.3e (bound %.0e)", gemm,
          size, n, B, batch, e, bound);
    double ec = 0;
    for (int b = 0; b < B; b++) {  // the CLS rows of the last block alone (what k-NN uses)
        const float *g = got + (size_t)(n - 1) * per + (size_t)b * T * cfg.dim;
        const float *r = want + (size_t)(n - 1) * per + (size_t)b * T * cfg.dim;
        double x = rel_l2(g, r, (size_t)cfg.dim);
        if (x > ec) ec = x;
    }
    CHECK(ec <= bound, "%s %d px: worst CLS feature normalised error %.3e", gemm, size, ec);
    cuda_features_tokens(f, img, B, again);
    CHECK(!memcmp(got, again, (size_t)n * per * sizeof(float)), "%s %d px: rerun bit-identical", gemm, size);
    cuda_features_free(f);
    vit_acts_free(a);
    free(got);
    free(again);
    free(want);
    free(img);
    free(params);
    param_table_free(&t);
}

int main(void) {
    if (cuda_device_count() <= 0) {
        printf("test_cuda_features: no CUDA device found; skipped (exit 77)\n");
        return 77;
    }
    dino_set_threads(0);
    run("fp32", 1e-4, 224, 1, 4, 4);
    run("fp32", 1e-4, 224, 4, 4, 3);
    run("fp32", 1e-4, 160, 1, 5, 2);
    run("tf32", 5e-3, 224, 1, 4, 4);
    return test_finish();
}
