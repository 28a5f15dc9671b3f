// GEMMs through cuBLASLt (the cuda_gemm entry of gemm_internal.cuh) and the
// linear layer twins of ops.h on top of it. The mode of the context picks the
// compute type (ops_cuda.h); a mode or bias epilogue for which cuBLASLt offers
// no algorithm falls back to plain fp32 / a separate bias pass, once, with a
// warning. Bias gradients are a deterministic two-stage column sum (fixed row
// chunks, partial sums added in chunk order), not the BGRAD epilogue, since
// the twins accumulate into db.
#include <stdlib.h>
#include <string.h>

#include "cuda/gemm_internal.cuh"

struct CudaGemmCacheEntry {
    GemmShape s;
    int mode, has_bias;
    unsigned align[5];  // A, B, C, D, bias: alignment the algorithm was chosen for
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    int bias_epilogue;  // 0: bias added by bias_rows_kernel afterwards
};

static cublasComputeType_t compute_type(int mode) {
    switch (mode) {
    case CUDA_GEMM_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case CUDA_GEMM_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    default: return CUBLAS_COMPUTE_32F;
    }
}

static cublasLtMatrixLayout_t make_layout(int rows, int cols, int ld, int batch, long long stride) {
    cublasLtMatrixLayout_t l;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
        int32_t bc = batch;
        int64_t st = stride;
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc,
                                                      sizeof bc));
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
            l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &st, sizeof st));
    }
    return l;
}

// Tries to find an algorithm for e in compute mode `mode`, with or without the
// bias epilogue. Returns 1 and fills e on success.
static int try_plan(CudaCtx *ctx, CudaGemmCacheEntry *e, int mode, int bias_epilogue,
                    const float *bias) {
    const GemmShape *s = &e->s;
    cublasLtMatmulDesc_t desc;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, compute_type(mode), CUDA_R_32F));
    cublasOperation_t ta = s->transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = s->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (bias_epilogue) {
        // The bias has D's type (fp32) by default.
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                    sizeof bias));
    }
    cublasLtMatrixLayout_t la = make_layout(s->transa ? s->k : s->m, s->transa ? s->m : s->k,
                                            s->lda, s->batch, s->sa);
    cublasLtMatrixLayout_t lb = make_layout(s->transb ? s->n : s->k, s->transb ? s->k : s->n,
                                            s->ldb, s->batch, s->sb);
    cublasLtMatrixLayout_t lc = make_layout(s->m, s->n, s->ldc, s->batch, s->sc);
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = ctx->workspace_bytes;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    const cublasLtMatmulPreferenceAttributes_t al[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++) {
        uint32_t a = e->align[i];
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, al[i], &a, sizeof a));
    }
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic((cublasLtHandle_t)ctx->lt, desc, la, lb, lc,
                                                       lc, pref, 1, &res, &nres);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st != CUBLAS_STATUS_SUCCESS || nres < 1 || res.state != CUBLAS_STATUS_SUCCESS) {
        CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lc));
        return 0;
    }
    e->desc = desc;
    e->la = la, e->lb = lb, e->lc = lc;
    e->algo = res.algo;
    e->bias_epilogue = bias_epilogue;
    return 1;
}

static CudaGemmCacheEntry *lookup(CudaCtx *ctx, const GemmShape *s, int has_bias,
                                  const unsigned align[5], const float *bias) {
    for (int i = 0; i < ctx->ncache; i++) {
        CudaGemmCacheEntry *e = &ctx->cache[i];
        if (e->mode == (int)ctx->mode && e->has_bias == has_bias && !memcmp(&e->s, s, sizeof *s) &&
            !memcmp(e->align, align, sizeof e->align))
            return e;
    }
    if (ctx->ncache == ctx->cache_cap) {
        ctx->cache_cap = ctx->cache_cap ? 2 * ctx->cache_cap : 64;
        ctx->cache = (CudaGemmCacheEntry *)reallocCheck(ctx->cache,
                                                        (size_t)ctx->cache_cap * sizeof *ctx->cache);
    }
    CudaGemmCacheEntry *e = &ctx->cache[ctx->ncache];
    memset(e, 0, sizeof *e);
    e->s = *s;  // s is memset-initialised by callers (padding compared with memcmp)
    e->mode = (int)ctx->mode;
    e->has_bias = has_bias;
    memcpy(e->align, align, sizeof e->align);
    // The BIAS epilogue reads the bias vector with vector loads: other
    // libraries built on cuBLASLt see misaligned-address failures for bias
    // pointers under 16 bytes of alignment, and the heuristic query takes no
    // bias alignment, so such a bias is added by bias_rows_kernel instead.
    int ok = (has_bias && align[4] >= 16 && try_plan(ctx, e, ctx->mode, 1, bias)) ||
             try_plan(ctx, e, ctx->mode, 0, NULL);
    if (!ok && ctx->mode != CUDA_GEMM_FP32) {
        dino_warn("cuBLASLt has no %s algorithm for a %dx%dx%d GEMM; using fp32 for it",
                  cuda_gemm_mode_name(ctx->mode), s->m, s->n, s->k);
        ok = try_plan(ctx, e, CUDA_GEMM_FP32, 0, NULL);
    }
    if (!ok)
        dino_fatal_at(__FILE__, __LINE__, "cuBLASLt found no algorithm for a %dx%dx%d GEMM (batch %d)",
                      s->m, s->n, s->k, s->batch);
    ctx->ncache++;
    return e;
}

void gemm_cache_clear(CudaCtx *ctx) {
    for (int i = 0; i < ctx->ncache; i++) {
        CudaGemmCacheEntry *e = &ctx->cache[i];
        CUBLAS_CHECK(cublasLtMatmulDescDestroy(e->desc));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->la));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->lb));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->lc));
    }
    free(ctx->cache);
    ctx->cache = NULL;
    ctx->ncache = ctx->cache_cap = 0;
}

// D (column-major m×n, ld) += bias[row]: the fallback when the epilogue is not offered.
__global__ void bias_rows_kernel(float *D, const float *bias, int m, int n, int ld) {
    size_t total = (size_t)m * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(i % m);
        size_t c = i / m;
        D[c * ld + r] += bias[r];
    }
}

void cuda_gemm(CudaCtx *ctx, const GemmShape *s, float alpha, const float *A, const float *B,
               float beta, const float *C, float *D, const float *bias, cudaStream_t stream) {
    DINO_ASSERT(ctx && ctx->lt && s->m > 0 && s->n > 0 && s->batch >= 1);
    DINO_ASSERT(!bias || s->batch == 1);
    if (s->k == 0) {  // cuBLASLt does not take k = 0; D = beta·C (only used with beta 0 or 1)
        DINO_ASSERT(s->batch == 1 && (beta == 0.0f || beta == 1.0f));
        if (beta == 0.0f)
            CUDA_CHECK(cudaMemset2DAsync(D, (size_t)s->ldc * 4, 0, (size_t)s->m * 4, s->n, stream));
        else if (C != D)
            CUDA_CHECK(cudaMemcpy2DAsync(D, (size_t)s->ldc * 4, C, (size_t)s->ldc * 4,
                                         (size_t)s->m * 4, s->n, cudaMemcpyDeviceToDevice, stream));
        if (bias) {
            bias_rows_kernel<<<grid_for((size_t)s->m * s->n, 256), 256, 0, stream>>>(D, bias, s->m,
                                                                                     s->n, s->ldc);
            CUDA_CHECK_LAUNCH();
        }
        return;
    }
    if (!C) C = D;
    unsigned align[5] = {cuda_gemm_align(A, s->lda, s->sa), cuda_gemm_align(B, s->ldb, s->sb),
                         cuda_gemm_align(C, s->ldc, s->sc), cuda_gemm_align(D, s->ldc, s->sc),
                         bias ? cuda_gemm_align(bias, 0, 0) : 0};
    CudaGemmCacheEntry *e = lookup(ctx, s, bias != NULL, align, bias);
    if (e->bias_epilogue)  // the pointer changes from call to call
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    CUBLAS_CHECK(cublasLtMatmul((cublasLtHandle_t)ctx->lt, e->desc, &alpha, A, e->la, B, e->lb,
                                &beta, C, e->lc, D, e->lc, &e->algo, ctx->workspace,
                                ctx->workspace_bytes, stream));
    if (bias && !e->bias_epilogue) {
        bias_rows_kernel<<<grid_for((size_t)s->m * s->n, 256), 256, 0, stream>>>(D, bias, s->m, s->n,
                                                                                 s->ldc);
        CUDA_CHECK_LAUNCH();
    }
}

// ---------------------------------------------------------------- linear layers

// The row-major/column-major bookkeeping of each product: cuda_plan.c.

extern "C" void linear_forward_cuda(CudaCtx *ctx, float *out, const float *inp, const float *w,
                                    const float *b, int N, int C, int OC, cudaStream_t stream) {
    if (N == 0) return;
    GemmShape s = cuda_gemm_linear_fwd(N, C, OC);
    cuda_gemm(ctx, &s, 1.0f, w, inp, 0.0f, NULL, out, b, stream);
}

// db partial sums: block (32, 8) covers 32 columns of one CUDA_COLSUM_ROWS-row
// chunk; the 8 row lanes are added in a fixed order.
__global__ void colsum_partial_kernel(float *part, const float *x, int N, int OC) {
    __shared__ float sh[8][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * CUDA_COLSUM_ROWS;
    int r1 = min(r0 + CUDA_COLSUM_ROWS, N);
    float acc = 0.0f;
    if (j < OC)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) acc += x[(size_t)r * OC + j];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < OC) {
        float s = 0.0f;
        for (int y = 0; y < 8; y++) s += sh[y][threadIdx.x];
        part[(size_t)blockIdx.y * OC + j] = s;
    }
}

__global__ void colsum_finish_kernel(float *db, const float *part, int chunks, int OC) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= OC) return;
    float s = 0.0f;
    for (int c = 0; c < chunks; c++) s += part[(size_t)c * OC + j];
    db[j] += s;
}

extern "C" void linear_backward_cuda(CudaCtx *ctx, float *dinp, float *dw, float *db,
                                     const float *dout, const float *inp, const float *w, int N,
                                     int C, int OC, cudaStream_t stream) {
    if (N == 0) return;
    if (dinp) {
        GemmShape s = cuda_gemm_linear_dinp(N, C, OC);
        cuda_gemm(ctx, &s, 1.0f, w, dout, 0.0f, NULL, dinp, NULL, stream);
    }
    if (dw) {
        GemmShape s = cuda_gemm_linear_dw(N, C, OC);
        cuda_gemm(ctx, &s, 1.0f, inp, dout, 1.0f, dw, dw, NULL, stream);
    }
    if (db) {
        CudaReducePlan p = cuda_colsum_plan(N, OC);
        DINO_ASSERT(p.blocks <= 65535);  // grid.y limit: N up to 16.7M rows
        float *part = (float *)cuda_scratch(p.scratch_floats * sizeof(float), stream);
        dim3 grid((unsigned)((OC + 31) / 32), (unsigned)p.blocks);
        colsum_partial_kernel<<<grid, dim3(32, 8), 0, stream>>>(part, dout, N, OC);
        CUDA_CHECK_LAUNCH();
        colsum_finish_kernel<<<(OC + 255) / 256, 256, 0, stream>>>(db, part, p.blocks, OC);
        CUDA_CHECK_LAUNCH();
        cuda_scratch_free(part, stream);
    }
}

// out = res + scale[row / T]·branch (the CPU's drop-path arithmetic; branch may equal out).
__global__ void residual_scale_kernel(float *out, const float *res, const float *branch,
                                      const float *scale, size_t rows_per_sample_x_oc, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float s = scale[i / rows_per_sample_x_oc];
        out[i] = __fadd_rn(res[i], __fmul_rn(branch[i], s));
    }
}

extern "C" void linear_residual_forward_cuda(CudaCtx *ctx, float *out, const float *res,
                                             const float *inp, const float *w, const float *b,
                                             const float *scale, int B, int T, int C, int OC,
                                             cudaStream_t stream) {
    size_t rows = (size_t)B * T, n = rows * OC;
    if (rows == 0) return;
    DINO_ASSERT(rows <= INT32_MAX);
    GemmShape s = cuda_gemm_linear_fwd((int)rows, C, OC);
    if (!scale) {
        // out = inp·wᵀ + res (+ b): C = res, D = out (in place when equal).
        cuda_gemm(ctx, &s, 1.0f, w, inp, 1.0f, res, out, b, stream);
        return;
    }
    // Stochastic depth: the branch into scratch (or straight into out when
    // out does not alias res), then out = res + s·branch.
    float *branch = out != res ? out : (float *)cuda_scratch(n * sizeof(float), stream);
    cuda_gemm(ctx, &s, 1.0f, w, inp, 0.0f, NULL, branch, b, stream);
    residual_scale_kernel<<<grid_for(n, 256), 256, 0, stream>>>(out, res, branch, scale,
                                                                (size_t)T * OC, n);
    CUDA_CHECK_LAUNCH();
    if (branch != out) cuda_scratch_free(branch, stream);
}
