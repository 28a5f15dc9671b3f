// Multi-head attention twins (ops.h) and the row softmax: q, k, v are copied
// head-major ((b,h) contiguous (T,hd) blocks), the scores and the products
// with V are cuBLASLt strided-batched GEMMs over (sample, head), and a fused
// kernel (one warp per row) applies hd^-0.5, the max-subtracted exp and the
// normalisation. Scores live in scratch with rows padded to a multiple of 4
// floats (16-byte aligned rows for the GEMMs); the probabilities go to the
// caller's att (B,NH,T,T) when given, and the backward copies them back into
// padded scratch before its GEMM with them. Samples are processed in chunks
// (cuda_attention_plan) so scratch stays bounded. The T×T matrix is
// materialised per chunk: simple and exact, at O(T²) memory per head.
#include <math.h>
#include <string.h>

#include "cuda/cuda_elem.h"
#include "cuda/gemm_internal.cuh"

// ---------------------------------------------------------------- softmax

// Row i of a (rows, C) matrix with row strides ldi (input) and ldo (output):
// out = softmax(alpha·in). in may equal out (same ld). att2 (dense, C per
// row), when not NULL, receives a second copy.
__global__ void softmax_rows_kernel(float *out, int ldo, float *att2, const float *inp, int ldi,
                                    int rows, int C, float alpha) {
    int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= rows) return;
    const float *x = inp + (size_t)row * ldi;
    float mx = -INFINITY;
    for (int j = lane; j < C; j += WARP) mx = fmaxf(mx, alpha * x[j]);
    mx = warp_max(mx);
    float s = 0.0f;
    for (int j = lane; j < C; j += WARP) s += expf(alpha * x[j] - mx);
    s = warp_sum(s);
    float inv = 1.0f / s;
    float *y = out + (size_t)row * ldo;
    float *a = att2 ? att2 + (size_t)row * C : NULL;
    for (int j = lane; j < C; j += WARP) {
        float p = expf(alpha * x[j] - mx) * inv;  // x read before y written (same j)
        y[j] = p;
        if (a) a[j] = p;
    }
}

// g (rows, C, ld ldg) ← p ⊙ (g − Σ_j p·g), p with row stride ldp.
__global__ void softmax_bwd_rows_kernel(float *dst, int ldd, const float *g, int ldg,
                                        const float *p, int ldp, int rows, int C) {
    int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= rows) return;
    const float *pr = p + (size_t)row * ldp, *gr = g + (size_t)row * ldg;
    float d = 0.0f;
    for (int j = lane; j < C; j += WARP) d += pr[j] * gr[j];
    d = warp_sum(d);
    float *o = dst + (size_t)row * ldd;
    for (int j = lane; j < C; j += WARP) o[j] = pr[j] * (gr[j] - d);
}

static void softmax_rows(float *out, int ldo, float *att2, const float *inp, int ldi, int rows,
                         int C, float alpha, cudaStream_t stream) {
    if (rows == 0) return;
    const int wpb = 8;
    softmax_rows_kernel<<<(rows + wpb - 1) / wpb, wpb * WARP, 0, stream>>>(out, ldo, att2, inp, ldi,
                                                                          rows, C, alpha);
    CUDA_CHECK_LAUNCH();
}

static void softmax_bwd_rows(float *dst, int ldd, const float *g, int ldg, const float *p, int ldp,
                             int rows, int C, cudaStream_t stream) {
    if (rows == 0) return;
    const int wpb = 8;
    softmax_bwd_rows_kernel<<<(rows + wpb - 1) / wpb, wpb * WARP, 0, stream>>>(dst, ldd, g, ldg, p,
                                                                              ldp, rows, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void softmax_forward_cuda(float *out, const float *inp, int N, int C, float alpha,
                                     cudaStream_t stream) {
    softmax_rows(out, C, NULL, inp, C, N, C, alpha, stream);
}

extern "C" void softmax_backward_cuda(float *dinp, const float *dout, const float *p, int N, int C,
                                      cudaStream_t stream) {
    softmax_bwd_rows(dinp, C, dout, C, p, C, N, C, stream);
}

// ---------------------------------------------------------------- layouts

// Token-major (Bc,T,ld) with part `part` of width D at column part·D, head h
// at columns h·hd → head-major dst (Bc,NH,T,hd). One thread per element,
// consecutive threads along hd (coalesced on both sides for hd >= 32).
__global__ void to_heads_kernel(float *dst, const float *src, int ld, int part, int Bc, int T,
                                int D, int NH) {
    size_t total = (size_t)Bc * T * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[el_head_offset(i, ld, part, T, D, NH)];
}

// The inverse: head-major src (Bc,NH,T,hd) → token-major dst part `part`.
__global__ void from_heads_kernel(float *dst, int ld, int part, const float *src, int Bc, int T,
                                  int D, int NH) {
    size_t total = (size_t)Bc * T * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        dst[el_head_offset(i, ld, part, T, D, NH)] = src[i];
}

static void to_heads(float *dst, const float *src, int ld, int part, int Bc, int T, int D, int NH,
                     cudaStream_t stream) {
    size_t n = (size_t)Bc * T * D;
    to_heads_kernel<<<grid_for(n, 256), 256, 0, stream>>>(dst, src, ld, part, Bc, T, D, NH);
    CUDA_CHECK_LAUNCH();
}

static void from_heads(float *dst, int ld, int part, const float *src, int Bc, int T, int D, int NH,
                       cudaStream_t stream) {
    size_t n = (size_t)Bc * T * D;
    from_heads_kernel<<<grid_for(n, 256), 256, 0, stream>>>(dst, ld, part, src, Bc, T, D, NH);
    CUDA_CHECK_LAUNCH();
}

// q, k and v of Bc samples of qkv (Bc,T,3D) into three head-major buffers.
static void qkv_to_heads(float *q, float *k, float *v, const float *qkv, int Bc, int T, int D, int NH,
                         cudaStream_t stream) {
    to_heads(q, qkv, 3 * D, 0, Bc, T, D, NH, stream);
    to_heads(k, qkv, 3 * D, 1, Bc, T, D, NH, stream);
    to_heads(v, qkv, 3 * D, 2, Bc, T, D, NH, stream);
}

// ---------------------------------------------------------------- batched GEMMs

// The three products per (sample, head), shapes from cuda_plan.c.
static void gemm_xyt(CudaCtx *ctx, float *S, int lds, long long ss, const float *X, const float *Y,
                     int T, int hd, int batch, float alpha, cudaStream_t stream) {
    GemmShape g = cuda_gemm_attn_xyt(T, hd, lds, ss, batch);  // S = X·Yᵀ
    cuda_gemm(ctx, &g, alpha, Y, X, 0.0f, NULL, S, NULL, stream);
}

static void gemm_pv(CudaCtx *ctx, float *Z, const float *P, int ldp, long long sp, const float *V,
                    int T, int hd, int batch, float alpha, cudaStream_t stream) {
    GemmShape g = cuda_gemm_attn_pv(T, hd, ldp, sp, batch);  // Z = P·V
    cuda_gemm(ctx, &g, alpha, V, P, 0.0f, NULL, Z, NULL, stream);
}

static void gemm_ptx(CudaCtx *ctx, float *Z, const float *P, int ldp, long long sp, const float *X,
                     int T, int hd, int batch, float alpha, cudaStream_t stream) {
    GemmShape g = cuda_gemm_attn_ptx(T, hd, ldp, sp, batch);  // Z = Pᵀ·X
    cuda_gemm(ctx, &g, alpha, X, P, 0.0f, NULL, Z, NULL, stream);
}

// ---------------------------------------------------------------- forward / backward

extern "C" void attention_forward_cuda(CudaCtx *ctx, float *out, float *att, const float *qkv,
                                       int B, int T, int D, int NH, cudaStream_t stream) {
    if (B == 0) return;
    // The scores always go through padded scratch (aligned rows for the GEMMs).
    CudaAttnPlan pl = cuda_attention_plan(B, T, D, NH, CUDA_ATTN_SCRATCH_CAP);
    const int hd = D / NH, Tp = pl.ld;
    const float scale = 1.0f / sqrtf((float)hd);
    size_t tok = (size_t)pl.chunk * T * D;
    float *q = (float *)cuda_scratch(pl.fwd_scratch * sizeof(float), stream);
    float *k = q + tok, *v = k + tok, *y = v + tok, *S = y + tok;
    for (int b0 = 0; b0 < B; b0 += pl.chunk) {
        int Bc = B - b0 < pl.chunk ? B - b0 : pl.chunk;
        qkv_to_heads(q, k, v, qkv + (size_t)b0 * T * 3 * D, Bc, T, D, NH, stream);
        int nb = Bc * NH;
        gemm_xyt(ctx, S, Tp, (long long)T * Tp, q, k, T, hd, nb, 1.0f, stream);
        // As the CPU: scores scaled by hd^-0.5, then softmax.
        float *a = att ? att + (size_t)b0 * NH * T * T : NULL;
        softmax_rows(S, Tp, a, S, Tp, nb * T, T, scale, stream);
        gemm_pv(ctx, y, S, Tp, (long long)T * Tp, v, T, hd, nb, 1.0f, stream);
        from_heads(out + (size_t)b0 * T * D, D, 0, y, Bc, T, D, NH, stream);
    }
    cuda_scratch_free(q, stream);
}

extern "C" void attention_backward_cuda(CudaCtx *ctx, float *dqkv, const float *dout,
                                        const float *qkv, const float *att, int B, int T, int D,
                                        int NH, cudaStream_t stream) {
    if (B == 0) return;
    CudaAttnPlan pl = cuda_attention_plan(B, T, D, NH, CUDA_ATTN_SCRATCH_CAP);
    const int hd = D / NH, Tp = pl.ld;
    const float scale = 1.0f / sqrtf((float)hd);
    size_t tok = (size_t)pl.chunk * T * D;
    float *q = (float *)cuda_scratch(pl.bwd_scratch * sizeof(float), stream);
    float *k = q + tok, *v = k + tok, *dy = v + tok, *dq = dy + tok, *dk = dq + tok, *dv = dk + tok;
    float *dS = dv + tok;
    for (int b0 = 0; b0 < B; b0 += pl.chunk) {
        int Bc = B - b0 < pl.chunk ? B - b0 : pl.chunk;
        const float *P = att + (size_t)b0 * NH * T * T;  // dense rows (ld T)
        qkv_to_heads(q, k, v, qkv + (size_t)b0 * T * 3 * D, Bc, T, D, NH, stream);
        to_heads(dy, dout + (size_t)b0 * T * D, D, 0, Bc, T, D, NH, stream);
        int nb = Bc * NH;
        // P copied into the padded scratch first: att's rows (T floats) are
        // only 4-byte aligned, which rules out the tensor-core kernels.
        CUDA_CHECK(cudaMemcpy2DAsync(dS, (size_t)Tp * sizeof(float), P, (size_t)T * sizeof(float),
                                     (size_t)T * sizeof(float), (size_t)nb * T,
                                     cudaMemcpyDeviceToDevice, stream));
        gemm_ptx(ctx, dv, dS, Tp, (long long)T * Tp, dy, T, hd, nb, 1.0f, stream);  // dV = Pᵀ·dY
        gemm_xyt(ctx, dS, Tp, (long long)T * Tp, dy, v, T, hd, nb, 1.0f, stream);  // dP = dY·Vᵀ
        softmax_bwd_rows(dS, Tp, dS, Tp, P, T, nb * T, T, stream);               // dS
        gemm_pv(ctx, dq, dS, Tp, (long long)T * Tp, k, T, hd, nb, scale, stream);  // dQ = s·dS·K
        gemm_ptx(ctx, dk, dS, Tp, (long long)T * Tp, q, T, hd, nb, scale, stream); // dK = s·dSᵀ·Q
        float *dst = dqkv + (size_t)b0 * T * 3 * D;
        from_heads(dst, 3 * D, 0, dq, Bc, T, D, NH, stream);
        from_heads(dst, 3 * D, 1, dk, Bc, T, D, NH, stream);
        from_heads(dst, 3 * D, 2, dv, Bc, T, D, NH, stream);
    }
    cuda_scratch_free(q, stream);
}
