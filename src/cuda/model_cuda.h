// The ViT backbone, the DINO head and the multi-crop pass on a CUDA device,
// mirroring src/vit.c, src/head.c and src/model.c call for call with the
// CUDA twins of src/ops.h (src/cuda/ops_cuda.h). Weights and gradients are
// the CPU structs (ViTWeights, HeadWeights) bound to flat DEVICE buffers laid
// out as the host ParamTable (vit_weights_bind and model_bind only do pointer
// arithmetic). Activations live in one device arena whose layout is planned
// on the host (src/cuda/train_plan.h); `arena` below is its base pointer.
// Everything is queued on `stream`; nothing synchronises.
#ifndef DINO_CUDA_MODEL_CUDA_H
#define DINO_CUDA_MODEL_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include "cuda/ops_cuda.h"
#include "cuda/train_plan.h"
#include "head.h"
#include "model.h"
#include "vit.h"

// Backbone forward over l->B images (B, C, H, W) on the device. drop: device
// drop-path factors laid out as vit_forward's drop_scale, or NULL.
void vit_cuda_forward(CudaCtx *ctx, const ViTConfig *cfg, const ViTWeights *w,
                      const VitCudaLayout *l, float *arena, const float *images,
                      const float *drop, cudaStream_t stream);
// Backward from dout (B, T, D) = dLoss/d(final-norm tokens); accumulates into
// the gradients g. The forward must have run with the same layout (train).
void vit_cuda_backward(CudaCtx *ctx, const ViTConfig *cfg, const ViTWeights *w, ViTWeights *g,
                       const VitCudaLayout *l, const VitCudaScratch *sc, float *arena,
                       const float *dout, const float *drop, cudaStream_t stream);

// Head forward over N rows of `in` (device); logits at arena + l->logits.
void head_cuda_forward(CudaCtx *ctx, const HeadConfig *cfg, const HeadWeights *w,
                       const HeadCudaLayout *l, float *arena, const float *in,
                       cudaStream_t stream);
// Accumulates into g (weight_g only when trainable); writes din (N, in_dim).
void head_cuda_backward(CudaCtx *ctx, const HeadConfig *cfg, const HeadWeights *w,
                        HeadWeights *g, const HeadCudaLayout *l, float *arena, const float *in,
                        const float *dout, float *din, cudaStream_t stream);

// The multi-crop pass over groups 0..n_groups-1 of plan p: images[g] and
// drop[g] (device, drop may be NULL) per group, the CLS features gathered
// crop-major at arena + feat, the head over all of them. Returns the
// logits (device).
const float *model_cuda_forward(CudaCtx *ctx, const DinoModel *m, const float *params,
                                const MultiCropPlan *p, int n_groups, const VitCudaLayout *vl,
                                const HeadCudaLayout *hl, float *arena, size_t feat,
                                const float *const *images, const float *const *drop,
                                cudaStream_t stream);
// Backward from dlogits (device); accumulates into grads (device, flat).
void model_cuda_backward(CudaCtx *ctx, const DinoModel *m, const float *params, float *grads,
                         const MultiCropPlan *p, const VitCudaLayout *vl, const VitCudaScratch *sc,
                         const HeadCudaLayout *hl, float *arena, size_t feat, size_t dfeat,
                         const float *dlogits, const float *const *drop, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
