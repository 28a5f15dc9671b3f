// The DINO head on the device (model_cuda.h): src/head.c's MLP (Linear,
// GELU, ..., Linear to the bottleneck), F.normalize and the weight-normalised
// last layer, op for op on the arena laid out by head_cuda_layout. The last
// layer's weight gradient dW = doutᵀ·z is written through linear_backward's
// accumulating dw into a zeroed buffer (the CPU writes it with beta 0).
#include <cuda_runtime.h>

extern "C" {
#include "common.h"
#include "params.h"
#include "train/loss.h"
}
#include "cuda/model_cuda.h"

#define L2_EPS 1e-12f

static void layer_dims(const HeadConfig *cfg, int i, int *in, int *out) {
    *in = i == 0 ? cfg->in_dim : cfg->hidden;
    *out = i == cfg->nlayers - 1 ? cfg->bottleneck : cfg->hidden;
}

extern "C" void head_cuda_forward(CudaCtx *ctx, const HeadConfig *cfg, const HeadWeights *w,
                                  const HeadCudaLayout *l, float *arena, const float *in,
                                  cudaStream_t s) {
    const int N = l->N;
    const float *x = in;
    for (int i = 0; i < cfg->nlayers; i++) {
        int ci, co;
        layer_dims(cfg, i, &ci, &co);
        float *h = arena + l->h[i];
        linear_forward_cuda(ctx, h, x, w->mlp_w[i], w->mlp_b[i], N, ci, co, s);
        if (i < cfg->nlayers - 1) {
            gelu_forward_cuda(arena + l->gel[i], h, (size_t)N * co, s);
            x = arena + l->gel[i];
        } else {
            x = h;
        }
    }
    float *z = arena + l->z, *W = arena + l->W;
    l2norm_forward_cuda(z, arena + l->znorm, x, N, cfg->bottleneck, L2_EPS, s);
    weightnorm_forward_cuda(W, arena + l->vnorm, w->weight_g, w->weight_v, cfg->out_dim,
                            cfg->bottleneck, s);
    linear_forward_cuda(ctx, arena + l->logits, z, W, NULL, N, cfg->bottleneck, cfg->out_dim, s);
}

extern "C" void head_cuda_backward(CudaCtx *ctx, const HeadConfig *cfg, const HeadWeights *w,
                                   HeadWeights *g, const HeadCudaLayout *l, float *arena,
                                   const float *in, const float *dout, float *din,
                                   cudaStream_t s) {
    DINO_ASSERT(l->train);
    const int N = l->N, O = cfg->out_dim, K = cfg->bottleneck;
    float *d0 = arena + l->d0, *d1 = arena + l->d1, *dW = arena + l->dW;
    const float *z = arena + l->z, *W = arena + l->W;
    // d1 = dL/dz and dW = doutᵀ·z in one call (dW zeroed: it accumulates).
    cuda_memset0(dW, (size_t)O * K * sizeof(float), s);
    linear_backward_cuda(ctx, d1, dW, NULL, dout, z, W, N, K, O, s);
    weightnorm_backward_cuda(cfg->norm_last_layer ? NULL : g->weight_g, g->weight_v, dW,
                             w->weight_g, w->weight_v, arena + l->vnorm, O, K, s);
    float *dh = d0, *dnext = d1;
    l2norm_backward_cuda(dh, d1, z, arena + l->znorm, N, K, L2_EPS, s);
    for (int i = cfg->nlayers - 1; i >= 0; i--) {
        int ci, co;
        layer_dims(cfg, i, &ci, &co);
        if (i == 0) {
            linear_backward_cuda(ctx, din, g->mlp_w[0], g->mlp_b[0], dh, in, w->mlp_w[0], N, ci, co,
                                 s);
            break;
        }
        linear_backward_cuda(ctx, dnext, g->mlp_w[i], g->mlp_b[i], dh, arena + l->gel[i - 1],
                             w->mlp_w[i], N, ci, co, s);
        gelu_backward_cuda(dnext, arena + l->h[i - 1], dnext, (size_t)N * ci, s);
        float *t = dh;
        dh = dnext;
        dnext = t;
    }
}
