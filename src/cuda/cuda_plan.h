// Host-side planning for the CUDA kernels, in plain C so every build compiles
// it and `make check` tests it without a GPU: the chunk table that lets one
// kernel launch walk every trainable tensor of the flat parameter buffer, the
// per-tensor AdamW coefficients (the CPU optimizer's double arithmetic, done
// once per tensor on the host), the fixed partitions that make the
// reductions deterministic (layernorm weight gradients, bias gradients), the
// attention scratch chunking, and the element arithmetic that the optimizer
// kernels share with their CPU simulation (cuda_elem.h).
#ifndef DINO_CUDA_PLAN_H
#define DINO_CUDA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "params.h"

// ---------------------------------------------------------------- flat-buffer chunks

// At most this many floats per chunk: one thread block per chunk.
#define CUDA_OPTIM_CHUNK 16384

// A piece of one tensor: floats [offset, offset + n) of the flat buffer.
typedef struct {
    uint64_t offset;
    uint32_t n;
    int32_t tensor;  // index in the ParamTable
} CudaChunk;

typedef struct {
    CudaChunk *chunks;  // every trainable tensor, in table order, cut into chunks
    int nchunks;
    int ntensors;       // = table->n
    int *first_chunk;   // (ntensors + 1): chunks of tensor i are [first_chunk[i], first_chunk[i+1])
    int max_chunks_per_tensor;
    size_t total;       // table->total
    uint8_t *no_decay;  // (ntensors) copy of ParamInfo.no_decay
    uint8_t *trainable; // (ntensors)
} CudaOptimPlan;

// Builds the chunk table for t with chunks of at most `chunk` floats
// (CUDA_OPTIM_CHUNK in the kernels; tests use small values). Tensors that are
// not trainable or have no elements get no chunks.
void cuda_optim_plan_build(CudaOptimPlan *p, const ParamTable *t, uint32_t chunk);
void cuda_optim_plan_free(CudaOptimPlan *p);

// Per-tensor scalars of one optimizer call, computed on the host.
typedef struct {
    float neg_ss;  // −lr / (1 − β1^step) as float
    float bc2s;    // sqrt(1 − β2^step) as float (Python's ** 0.5)
    float decay;   // 1 − lr·wd as float (1 when no decay)
    int32_t flags; // CUDA_COEF_ACTIVE | CUDA_COEF_DECAY
} CudaTensorCoef;
#define CUDA_COEF_ACTIVE 1
#define CUDA_COEF_DECAY 2

// One AdamW step's coefficients: for every trainable tensor not marked in
// skip (host flags, may be NULL) increments step[i] and fills coef[i] exactly
// as optim.c's adamw_tensor computes its scalars; other tensors get flags 0
// and keep their step.
void cuda_adamw_coefs(CudaTensorCoef *coef, int64_t *step, const CudaOptimPlan *p, double lr,
                      double wd, double beta1, double beta2, const uint8_t *skip);
// Flags only (ACTIVE for trainable, not skipped tensors): for clipping.
void cuda_active_coefs(CudaTensorCoef *coef, const CudaOptimPlan *p, const uint8_t *skip);

// CPU simulation of the GPU passes, chunk by chunk with the kernels' element
// arithmetic (cuda_elem.h): the tests compare them with optim.c, which checks
// the plan, the coefficients and the arithmetic without a device.
void cuda_adamw_simulate(const CudaOptimPlan *p, const CudaTensorCoef *coef, float *params,
                         const float *grads, float *m, float *v, double beta1, double beta2,
                         double eps);
// norms (ntensors): the GPU's per-tensor norm (per-chunk double sums of
// squares added in chunk order, sqrt in double, cast to float); then scales.
void cuda_clip_simulate(const CudaOptimPlan *p, const CudaTensorCoef *coef, float *grads,
                        float clip, float *norms);

// ---------------------------------------------------------------- reductions

// Rows per block of the layernorm backward's weight-gradient partial sums;
// the partition depends only on N, so results are the same on every GPU.
#define CUDA_LN_ROWS_PER_BLOCK 32
// Rows per chunk of the bias-gradient column sums (linear_backward db).
#define CUDA_COLSUM_ROWS 256

typedef struct {
    int blocks;          // thread blocks (one per row group)
    size_t scratch_floats;
} CudaReducePlan;

CudaReducePlan cuda_layernorm_bwd_plan(int N, int C);
CudaReducePlan cuda_colsum_plan(int N, int OC);

// ---------------------------------------------------------------- attention

// Default cap on the attention scratch (floats) for scores/probability
// gradients (B_chunk·NH·T·T); 64 Mi floats = 256 MiB.
#define CUDA_ATTN_SCRATCH_CAP ((size_t)64 << 20)

typedef struct {
    int chunk;               // samples per pass (>= 1)
    int passes;              // ceil(B / chunk)
    int ld;                  // row stride of the score scratch: T rounded up to 4
    size_t fwd_scratch;      // floats of scratch the forward allocates
    size_t bwd_scratch;      // floats of scratch the backward allocates
} CudaAttnPlan;

// Chunking so that chunk·NH·T·ld <= cap (at least one sample per pass). The
// forward keeps q, k, v, y head-major and the padded scores; the backward
// q, k, v, dy, dq, dk, dv and the padded dP/dS. DINO_ASSERT on invalid sizes.
CudaAttnPlan cuda_attention_plan(int B, int T, int D, int NH, size_t cap);

// ---------------------------------------------------------------- GEMM shapes

// A column-major (strided-batched) GEMM as cuBLASLt sees it:
// D = alpha·op(A)·op(B) + beta·C (+ bias[i] on row i of D). op(A) is m×k,
// op(B) k×n, C and D m×n with leading dimension ldc; A is stored k×m when
// transa (else m×k), B n×k when transb (else k×n). Strides are in floats
// between batch items. Our tensors are row-major: a row-major (R,Cc) array
// is the column-major (Cc,R) matrix with leading dimension Cc, which is how
// the builders below turn each product into one of these.
typedef struct {
    int transa, transb;
    int m, n, k;
    int lda, ldb, ldc;
    long long sa, sb, sc;
    int batch;
} GemmShape;

// linear_forward: out (N,OC) = inp (N,C)·w (OC,C)ᵀ; A = w, B = inp, D = out.
GemmShape cuda_gemm_linear_fwd(int N, int C, int OC);
// linear_backward: dinp (N,C) = dout (N,OC)·w; A = w, B = dout, D = dinp.
GemmShape cuda_gemm_linear_dinp(int N, int C, int OC);
// linear_backward: dw (OC,C) += dout (N,OC)ᵀ·inp (N,C); A = inp, B = dout, D = dw.
GemmShape cuda_gemm_linear_dw(int N, int C, int OC);
// Per batch item, on head-major (T,hd) blocks of T·hd floats:
// S (T,T, row stride lds, batch stride ss) = X·Yᵀ; A = Y, B = X, D = S.
GemmShape cuda_gemm_attn_xyt(int T, int hd, int lds, long long ss, int batch);
// Z (T,hd) = P·V, P (T,T, row stride ldp, batch stride sp); A = V, B = P, D = Z.
GemmShape cuda_gemm_attn_pv(int T, int hd, int ldp, long long sp, int batch);
// Z (T,hd) = Pᵀ·X; A = X, B = P, D = Z.
GemmShape cuda_gemm_attn_ptx(int T, int hd, int ldp, long long sp, int batch);

// The alignment (bytes) every row and batch item of a float operand at p
// with leading dimension ld and batch stride `stride` (floats) has: the
// largest power of two up to 256 dividing the address and both byte sizes.
// What cuda_gemm tells cuBLASLt's heuristic, and keys its cache on.
unsigned cuda_gemm_align(const void *p, int ld, long long stride);

// The reference semantics of a GemmShape, a plain triple loop in double (for
// the tests: it checks the builders' bookkeeping against the CPU layers).
void cuda_gemm_ref(const GemmShape *s, float alpha, const float *A, const float *B, float beta,
                   const float *C, float *D, const float *bias);

// ---------------------------------------------------------------- launch helpers

// Blocks for n items at `per_block` items per block, capped at max_blocks
// (grid-stride loops cover the rest); at least 1.
int cuda_blocks_for(size_t n, int per_block, int max_blocks);

#ifdef __cplusplus
}
#endif

#endif
