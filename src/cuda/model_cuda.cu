// The multi-crop pass on the device (model_cuda.h), as src/model.c: each
// resolution group through the backbone once, the CLS rows gathered into
// one crop-major feature matrix (a strided 2-D copy: row i of the group is
// token 0 of sample i), the head once over all of them; backward scatters
// the feature gradient back into the CLS rows of a zeroed token gradient.
#include <cuda_runtime.h>

extern "C" {
#include "common.h"
#include "params.h"
#include "train/loss.h"
}
#include "cuda/cuda_common.cuh"
#include "cuda/model_cuda.h"

extern "C" const float *model_cuda_forward(CudaCtx *ctx, const DinoModel *m, const float *params,
                                           const MultiCropPlan *p, int n_groups,
                                           const VitCudaLayout *vl, const HeadCudaLayout *hl,
                                           float *arena, size_t feat, const float *const *images,
                                           const float *const *drop, cudaStream_t s) {
    DINO_ASSERT(n_groups >= 1 && n_groups <= p->n_groups);
    ViTWeights vw;
    HeadWeights hw;
    model_bind(m, (float *)params, &vw, &hw);
    const int D = m->vit.dim;
    int rows = 0;
    for (int g = 0; g < n_groups; g++) {
        const VitCudaLayout *l = &vl[g];
        DINO_ASSERT(l->B == p->rows[g] && l->H == p->size[g]);
        vit_cuda_forward(ctx, &m->vit, &vw, l, arena, images[g], drop ? drop[g] : NULL, s);
        // features[row0 + i, :] = tokens[i, 0, :]
        CUDA_CHECK(cudaMemcpy2DAsync(arena + feat + (size_t)p->row0[g] * D, (size_t)D * sizeof(float),
                                    arena + l->out, (size_t)l->T * D * sizeof(float),
                                    (size_t)D * sizeof(float), (size_t)l->B,
                                    cudaMemcpyDeviceToDevice, s));
        rows += l->B;
    }
    if (!m->has_head) return arena + feat;
    DINO_ASSERT(hl->N == rows);
    head_cuda_forward(ctx, &m->head, &hw, hl, arena, arena + feat, s);
    return arena + hl->logits;
}

extern "C" void model_cuda_backward(CudaCtx *ctx, const DinoModel *m, const float *params,
                                    float *grads, const MultiCropPlan *p, const VitCudaLayout *vl,
                                    const VitCudaScratch *sc, const HeadCudaLayout *hl,
                                    float *arena, size_t feat, size_t dfeat, const float *dlogits,
                                    const float *const *drop, cudaStream_t s) {
    ViTWeights vw, gw;
    HeadWeights hw, ghw;
    model_bind(m, (float *)params, &vw, &hw);
    model_bind(m, grads, &gw, &ghw);
    const int D = m->vit.dim;
    float *df = arena + dfeat;
    if (m->has_head)
        head_cuda_backward(ctx, &m->head, &hw, &ghw, hl, arena, arena + feat, dlogits, df, s);
    else
        CUDA_CHECK(cudaMemcpyAsync(df, dlogits, (size_t)p->total_rows * D * sizeof(float),
                                  cudaMemcpyDeviceToDevice, s));
    float *dt = arena + sc->dtokens;
    for (int g = 0; g < p->n_groups; g++) {
        const VitCudaLayout *l = &vl[g];
        // Only the CLS rows carry gradient; the patch rows stay zero.
        CUDA_CHECK(cudaMemsetAsync(dt, 0, l->btd * sizeof(float), s));
        CUDA_CHECK(cudaMemcpy2DAsync(dt, (size_t)l->T * D * sizeof(float),
                                    df + (size_t)p->row0[g] * D, (size_t)D * sizeof(float),
                                    (size_t)D * sizeof(float), (size_t)l->B,
                                    cudaMemcpyDeviceToDevice, s));
        vit_cuda_backward(ctx, &m->vit, &vw, &gw, l, sc, arena, dt, drop ? drop[g] : NULL, s);
    }
}
