// The CUDA entry points (trainer, features) in a build without CUDA (no -DDINO_CUDA):
// creating one refuses with the sentence the command line also prints, and
// the others are unreachable because no CUDA engine can exist. With
// make CUDA=1 this file compiles to nothing and src/cuda/train_cuda.cu
// provides the real functions.
#ifndef DINO_CUDA
#include "cuda/features_cuda.h"
#include "cuda/train_cuda.h"

#include "common.h"

CudaFeatures *cuda_features_create(const ViTConfig *cfg, const ViTWeights *w, int batch, int crop,
                                   int n_last_blocks, const char *cuda_gemm, char *err, size_t errlen) {
    (void)cfg, (void)w, (void)batch, (void)crop, (void)n_last_blocks, (void)cuda_gemm;
    dino_errf(err, errlen, "--device cuda: this build has no CUDA; rebuild with make CUDA=1");
    return NULL;
}

void cuda_features_free(CudaFeatures *f) { DINO_ASSERT(f == NULL); }

void cuda_features_tokens(CudaFeatures *f, const float *images, int B, float *tokens) {
    (void)images, (void)B, (void)tokens;
    DINO_ASSERT(f != NULL && 0);  // no CudaFeatures exists in this build
}

TrainEngine *train_engine_cuda_create(TrainState *state, const EngineOptions *o, char *err,
                                      size_t errlen) {
    (void)state, (void)o;
    dino_errf(err, errlen, "--device cuda: this build has no CUDA; rebuild with make CUDA=1");
    return NULL;
}

size_t cuda_engine_fetch(TrainEngine *e, CudaTrainerTensor which, float *host, size_t n) {
    (void)e, (void)which, (void)host, (void)n;
    DINO_ASSERT(0);  // no CUDA engine exists in this build
    return 0;
}
#else
typedef int dino_cuda_stub_unused;  // ISO C wants a non-empty translation unit
#endif
