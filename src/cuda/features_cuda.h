// Frozen-backbone inference on a CUDA device for src/eval/features.c
// (`dino features --device cuda`): the backbone's weights are copied to the
// device once; each batch of evaluation images is uploaded, run through the
// backbone in inference layout (src/cuda/vit_cuda.cu), and the final-norm
// tokens of the last n blocks come back to the host, where features.c turns
// them into rows exactly as for the CPU pass. In a build without CUDA,
// create refuses with one sentence (src/cuda/train_cuda_stub.c).
#ifndef DINO_CUDA_FEATURES_CUDA_H
#define DINO_CUDA_FEATURES_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>

#include "vit.h"

typedef struct CudaFeatures CudaFeatures;

// For batches of up to `batch` images of crop x crop and the last
// n_last_blocks blocks (1..4). w: host weights bound by vit_weights_bind.
// cuda_gemm: fp32, tf32 or bf16 (NULL or "": tf32; docs/GPU.md).
// NULL with err filled when there is no device or this build has no CUDA.
CudaFeatures *cuda_features_create(const ViTConfig *cfg, const ViTWeights *w, int batch, int crop,
                                   int n_last_blocks, const char *cuda_gemm, char *err, size_t errlen);
void cuda_features_free(CudaFeatures *f);
// images (B, 3, crop, crop) on the host -> tokens (n_last_blocks, B, T, D) on
// the host: block (depth − n + k) through the final norm for k = 0..n−1 (the
// last one is the model's output), as vit_intermediate.
void cuda_features_tokens(CudaFeatures *f, const float *images, int B, float *tokens);

#ifdef __cplusplus
}
#endif

#endif
