// The one GEMM entry every CUDA layer function uses (gemm.cu): a cuBLASLt
// column-major (strided-batched) matmul D = alpha·op(A)·op(B) + beta·C
// (+ bias per row of D), with the descriptors and the chosen algorithm cached
// per shape, alignment and mode. The layer functions do the row-major to
// column-major bookkeeping themselves, each with a comment.
#ifndef DINO_CUDA_GEMM_INTERNAL_CUH
#define DINO_CUDA_GEMM_INTERNAL_CUH

#include <cublasLt.h>

#include "cuda/cuda_common.cuh"

#define CUBLAS_CHECK(call)                                                                 \
    do {                                                                                   \
        cublasStatus_t st_ = (call);                                                       \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                  \
            dino_fatal_at(__FILE__, __LINE__, "cuBLAS error %s (%s) in %s",                \
                          cublasLtGetStatusName(st_), cublasLtGetStatusString(st_), #call); \
    } while (0)

// GemmShape and its builders: cuda_plan.h.

// D = alpha·op(A)·op(B) + beta·C (+ bias[i] added to row i of D when bias is
// not NULL; batch must be 1 then). C may equal D; C may be NULL when beta == 0.
void cuda_gemm(CudaCtx *ctx, const GemmShape *s, float alpha, const float *A, const float *B,
               float beta, const float *C, float *D, const float *bias, cudaStream_t stream);
void gemm_cache_clear(CudaCtx *ctx);

#endif
