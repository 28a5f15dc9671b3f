// oneDNN's matmul primitive behind src/gemm.h (internal to the GEMM seam).
#ifndef DINO_GEMM_ONEDNN_H
#define DINO_GEMM_ONEDNN_H

#include <dnnl.h>
#include <stddef.h>
#include <stdint.h>

// 0 when oneDNN's CPU engine works here; -1 with the reason otherwise.
int onednn_ready(char *err, size_t n);
// The process's CPU engine (valid once onednn_ready returned 0); the
// convolutions of conv_onednn.c share it.
dnnl_engine_t onednn_engine(void);
// Runs prim on this thread's stream and waits: argument i is of kind arg[i],
// described by md[i], at ptr[i]. A DNNL_ARG_SCRATCHPAD argument gets this
// thread's scratchpad (ptr ignored; skipped when md is empty). Every
// primitive of the process shares that scratchpad and the stream, so create
// primitives with dnnl_scratchpad_mode_user. Returns 0 or -1.
#define ONEDNN_MAX_ARGS 8
int onednn_execute(dnnl_primitive_t prim, int n, const int *arg, const dnnl_memory_desc_t *md,
                   void *const *ptr);
// oneDNN's effective CPU instruction set: its enum value and a name.
unsigned onednn_isa(void);
const char *onednn_isa_str(void);
// 1 when the effective ISA includes AVX512-BF16 (AMX implies it).
int onednn_has_bf16(void);

// C = alpha·op(A)·op(B) + beta·C as in gemm.h. bf16: A and B hold bf16
// (uint16_t) elements with the given leading dims, C stays fp32. Returns 0,
// or -1 when oneDNN has no implementation for it (the caller falls back).
int onednn_matmul(int bf16, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                  int lda, const void *B, int ldb, float beta, float *C, int ldc);
// Batched: C[i][j] (M,N) = alpha·A[i][j] (M,K) · B[i][j] (K,N) for i < nb0,
// j < nb1, each operand described by its four strides (batch i, batch j,
// row, column) in elements; C is overwritten. Returns 0 or -1 as above.
int onednn_batched_matmul(int bf16, int nb0, int nb1, int M, int N, int K, float alpha,
                          const void *A, const int64_t a_str[4], const void *B,
                          const int64_t b_str[4], float *C, const int64_t c_str[4]);
// The implementation oneDNN picks for a packed M×K · K×N (B transposed, as a
// Linear) matmul, or -1.
int onednn_impl_name(int bf16, int M, int N, int K, char *buf, size_t n);
// A Linear with its epilogue in one primitive (created once per shape and
// post-op set): C (M,N) = A (M,K) · Wᵀ (W stored N×K, ldw) + bias (N, or
// NULL), then GELU (erf) when gelu, or + res (M,N, leading dim ldc; may be
// C itself) when res; not both. fp32. Returns 0, or -1 when oneDNN has no
// implementation for it or the cache of these primitives is full.
int onednn_linear(int M, int N, int K, const float *A, int lda, const float *W, int ldw, float *C,
                  int ldc, const float *bias, int gelu, const float *res);

#endif
