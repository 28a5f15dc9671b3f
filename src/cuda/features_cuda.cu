// Inference for feature extraction on the device (features_cuda.h). One
// CudaCtx and stream, one arena in vit_cuda_layout's inference layout (its
// residual slots keep the last blocks' outputs, like the CPU's), weights
// uploaded once. The host waits for each batch: the data loader's threads
// prepare the next ones meanwhile.
#include <cuda_runtime.h>

#include <stdlib.h>
#include <string.h>

extern "C" {
#include "common.h"
#include "params.h"
#include "train/loss.h"
}
#include "cuda/features_cuda.h"
#include "cuda/cuda_common.cuh"
#include "cuda/model_cuda.h"

struct CudaFeatures {
    CudaCtx ctx;
    cudaStream_t stream;
    ViTConfig cfg;
    ViTWeights w;          // bound to params (device)
    float *params;         // device, vit_param_table layout
    VitCudaLayout l;
    float *arena;          // activations, the images, the n normalised token sets
    size_t images, inter;  // arena offsets
    int n;
};

extern "C" CudaFeatures *cuda_features_create(const ViTConfig *cfg, const ViTWeights *w, int batch,
                                              int crop, int n_last_blocks,
                                              const char *cuda_gemm, char *err, size_t errlen) {
    if (cuda_require_device(err, errlen) < 0) return NULL;
    if (!vit_config_is_plain(cfg)) {
        dino_errf(err, errlen, "--device cuda runs DINO's ViT only; this model's DINOv2/DINOv3 options "
                  "(registers, LayerScale, SwiGLU, position-embedding resize, RoPE) run on the CPU");
        return NULL;
    }
    int keep = cfg->depth < VIT_CUDA_KEEP_LAST ? cfg->depth : VIT_CUDA_KEEP_LAST;
    if (n_last_blocks < 1 || n_last_blocks > keep) {
        dino_errf(err, errlen, "--device cuda keeps the last %d blocks, %d were asked for", keep, n_last_blocks);
        return NULL;
    }
    CudaGemmMode mode;
    if (cuda_gemm_mode_choose(cuda_gemm, &mode, err, errlen)) return NULL;
    CudaFeatures *f = (CudaFeatures *)callocCheck(1, sizeof *f);
    f->cfg = *cfg;
    f->n = n_last_blocks;
    if (cuda_ctx_init(&f->ctx, 0, mode, err, errlen)) {  // before anything else is made
        free(f);
        return NULL;
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&f->stream, cudaStreamNonBlocking));
    ParamTable t;
    param_table_init(&t);
    vit_param_table(cfg, &t, "");
    // One copy: the host weights must be one vit_weights_bind buffer
    // (cls_token first, norm_b last), as model_bind and the loaders make them.
    DINO_ASSERT(w->norm_b + cfg->dim == w->cls_token + t.total);
    f->params = (float *)cuda_malloc(t.total * sizeof(float));
    cuda_upload(f->params, w->cls_token, t.total * sizeof(float));
    param_table_free(&t);
    vit_weights_bind(&f->w, cfg, f->params);
    Arena a;
    arena_init(&a, NULL, ARENA_ALIGN_FLOATS);
    vit_cuda_layout(&f->l, &a, cfg, batch, crop, crop, 0, 0);
    f->images = arena_take(&a, (size_t)batch * cfg->in_chans * crop * crop);
    f->inter = arena_take(&a, (size_t)n_last_blocks * f->l.btd);
    f->arena = (float *)cuda_malloc(a.total * sizeof(float));
    CUDA_CHECK(cudaDeviceSynchronize());
    return f;
}

extern "C" void cuda_features_free(CudaFeatures *f) {
    if (!f) return;
    cudaStreamSynchronize(f->stream);
    cuda_free(f->arena);
    cuda_free(f->params);
    cudaStreamDestroy(f->stream);
    cuda_ctx_free(&f->ctx);
    free(f);
}

extern "C" void cuda_features_tokens(CudaFeatures *f, const float *images, int B, float *tokens) {
    const VitCudaLayout *l0 = &f->l;
    DINO_ASSERT(B >= 1 && B <= l0->B);
    // A smaller last batch runs with a layout view of B images (same offsets).
    VitCudaLayout l = *l0;
    l.B = B;
    l.btd = (size_t)B * l.T * l.D;
    const int D = l.D, L = f->cfg.depth;
    const size_t BT = (size_t)B * l.T;
    float *img = f->arena + f->images;
    CUDA_CHECK(cudaMemcpyAsync(img, images, (size_t)B * f->cfg.in_chans * l.H * l.W * sizeof(float),
                              cudaMemcpyHostToDevice, f->stream));
    vit_cuda_forward(&f->ctx, &f->cfg, &f->w, &l, f->arena, img, NULL, f->stream);
    if (f->n == 1) {
        CUDA_CHECK(cudaMemcpyAsync(tokens, f->arena + l.out, BT * D * sizeof(float), cudaMemcpyDeviceToHost,
                                  f->stream));
    } else {
        // The output of block j - 1 is residual slot j, at the view's
        // stride (the forward used l.btd).
        for (int k = 0; k < f->n; k++) {
            int j = L - f->n + k + 1;
            const float *x = f->arena + vit_cuda_res_slot(&l, j);
            float *o = f->arena + f->inter + (size_t)k * BT * D;
            layernorm_forward_cuda(o, NULL, NULL, x, f->w.norm_w, f->w.norm_b, (int)BT, D, f->cfg.ln_eps,
                                   f->stream);
        }
        CUDA_CHECK(cudaMemcpyAsync(tokens, f->arena + f->inter, (size_t)f->n * BT * D * sizeof(float),
                                  cudaMemcpyDeviceToHost, f->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(f->stream));
}
