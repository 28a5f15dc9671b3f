// CUDA twins of the CPU layer functions (src/ops.h), the DINO loss
// (src/train/loss.h) and the flat-buffer optimizer passes (src/train/optim.h).
// A plain C header: every function is `<cpu name>_cuda` with the CPU
// function's arguments (all tensors are device pointers, sizes and scalars are
// host values) and a trailing cudaStream_t; the functions that call cuBLASLt
// take a CudaCtx first. Semantics (write vs accumulate, shapes, NULL rules)
// are exactly those of the CPU function; only the summation order differs,
// except where a function says it is bit-identical to the CPU. Nothing here
// synchronises the stream unless it says so. Scratch memory comes from the
// stream-ordered allocator (cudaMallocAsync on the device's default pool,
// which cuda_ctx_init tells to keep its memory), so the twins need no
// workspace arguments. Built only with `make CUDA=1` (defines DINO_CUDA).
#ifndef DINO_CUDA_OPS_CUDA_H
#define DINO_CUDA_OPS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "cuda/cuda_plan.h"

#ifdef __cplusplus
extern "C" {
#endif

// C headers of the CPU side (C linkage also when a .cu file includes this).
#include "params.h"
#include "train/loss.h"

// The runtime's own handle types, declared as the runtime declares them so a C
// file can use this header without the CUDA include path.
typedef struct CUstream_st *cudaStream_t;

// ---------------------------------------------------------------- context

// How a GEMM treats its fp32 operands (weights stay fp32 master copies in
// every mode; outputs and accumulation are always fp32):
//   CUDA_GEMM_FP32: IEEE fp32 multiply-add on the CUDA cores
//                   (CUBLAS_COMPUTE_32F, no tensor cores). The reference mode.
//   CUDA_GEMM_TF32: tensor cores; cuBLAS rounds A and B to TF32 (10-bit
//                   mantissa) and accumulates in fp32 (CUBLAS_COMPUTE_32F_FAST_TF32),
//                   what PyTorch does with allow_tf32.
//   CUDA_GEMM_BF16: tensor cores; cuBLAS rounds A and B to bf16 (8-bit
//                   mantissa) and accumulates in fp32 (CUBLAS_COMPUTE_32F_FAST_16BF),
//                   i.e. bf16 inputs with fp32 accumulation, no bf16 copies in memory.
typedef enum { CUDA_GEMM_FP32 = 0, CUDA_GEMM_TF32 = 1, CUDA_GEMM_BF16 = 2 } CudaGemmMode;

// "fp32", "tf32", "bf16" -> mode; -1 for an unknown name (plain C, cuda_plan.c).
int cuda_gemm_mode_parse(const char *name, CudaGemmMode *mode);
const char *cuda_gemm_mode_name(CudaGemmMode mode);
// The mode the engines use for a name the command line passes on
// (DINO_CUDA_GEMM): NULL or "" gives tf32. Returns 0, or -1 with err naming
// the bad value (plain C, cuda_plan.c).
int cuda_gemm_mode_choose(const char *name, CudaGemmMode *mode, char *err, size_t errlen);

typedef struct CudaGemmCacheEntry CudaGemmCacheEntry;  // gemm.cu: cached heuristics

// One context per stream: its GEMMs share one cuBLASLt workspace.
typedef struct {
    int device;
    CudaGemmMode mode;  // may be changed between calls (the cache keys on it)
    void *lt;            // cublasLtHandle_t
    void *workspace;     // cuBLASLt workspace (device)
    size_t workspace_bytes;
    CudaGemmCacheEntry *cache;  // algorithm per GEMM shape (filled on first use)
    int ncache, cache_cap;
} CudaCtx;

// Number of CUDA devices, 0 when there is no driver or no device (never exits).
int cuda_device_count(void);
// The count, or -1 with err holding the sentence every --device cuda engine
// refuses with when no device is visible.
int cuda_require_device(char *err, size_t errlen);
// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB" into buf (for logs).
void cuda_device_describe(int device, char *buf, size_t n);
// Selects `device`, creates the cuBLASLt handle and workspace, makes the
// default memory pool keep freed memory. Returns 0, or -1 with err saying
// that no device or no such device exists.
int cuda_ctx_init(CudaCtx *ctx, int device, CudaGemmMode mode, char *err, size_t errlen);
void cuda_ctx_free(CudaCtx *ctx);
// Device memory helpers that exit with file:line on failure.
void *cuda_malloc(size_t bytes);
void cuda_free(void *p);
void cuda_upload(void *dst_dev, const void *src_host, size_t bytes);    // synchronous
void cuda_download(void *dst_host, const void *src_dev, size_t bytes);  // synchronous
void cuda_memset0(void *dst_dev, size_t bytes, cudaStream_t stream);
void cuda_sync(cudaStream_t stream);

// ---------------------------------------------------------------- linear (cuBLASLt)

// out (N,OC) = inp (N,C)·wᵀ (OC,C) + b (OC, may be NULL); the bias is the
// cuBLASLt BIAS epilogue.
void linear_forward_cuda(CudaCtx *ctx, float *out, const float *inp, const float *w,
                         const float *b, int N, int C, int OC, cudaStream_t stream);
// dinp (N,C) written (skipped when NULL); dw (OC,C) accumulates (beta = 1);
// db (OC) accumulates through a deterministic two-stage column sum.
void linear_backward_cuda(CudaCtx *ctx, float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, int N, int C, int OC,
                          cudaStream_t stream);
// out[b] = res[b] + scale[b]·(inp[b]·wᵀ + bias), scale (B) a DEVICE array or
// NULL (= 1). out may equal res. With scale: one GEMM into scratch and a fused
// residual pass (the CPU's drop-path arithmetic); without: one GEMM with C = res.
void linear_residual_forward_cuda(CudaCtx *ctx, float *out, const float *res, const float *inp,
                                  const float *w, const float *b, const float *scale, int B,
                                  int T, int C, int OC, cudaStream_t stream);

// ---------------------------------------------------------------- patches

void patch_unfold_cuda(float *cols, const float *img, int B, int C, int H, int W, int p,
                       cudaStream_t stream);
void patch_fold_cuda(float *dimg, const float *dcols, int B, int C, int H, int W, int p,
                     cudaStream_t stream);

// ---------------------------------------------------------------- layernorm

void layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                            const float *w, const float *b, int N, int C, float eps,
                            cudaStream_t stream);
// dinp accumulates; dw, db accumulate (deterministic: per-block partial sums
// reduced in a fixed order, see cuda_plan.h).
void layernorm_backward_cuda(float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w, const float *mean,
                             const float *rstd, int N, int C, cudaStream_t stream);

// ---------------------------------------------------------------- GELU (erff, exact form)

void gelu_forward_cuda(float *out, const float *inp, size_t n, cudaStream_t stream);
void gelu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n,
                        cudaStream_t stream);

// ---------------------------------------------------------------- attention

// cuBLASLt strided-batched GEMMs over (sample, head) on head-major copies of
// q, k, v, and a fused scale+softmax kernel (one warp per row). att
// (B,NH,T,T) receives the probabilities when not NULL (training needs them for
// the backward, the attention maps read them); the scores always live in
// padded scratch, a chunk of samples at a time (cuda_attention_plan). Any T
// and any head_dim (ViT-S/8 at 224: T = 785, hd = 64; tiny models hd = 32).
// Not flash attention: training keeps att (B·NH·T² floats per block, as the
// CPU engine does), e.g. 0.95 GB per block for 64 crops of ViT-S/8 at 224.
void attention_forward_cuda(CudaCtx *ctx, float *out, float *att, const float *qkv, int B, int T,
                            int D, int NH, cudaStream_t stream);
// dqkv (B,T,3D) written; att the forward's probabilities.
void attention_backward_cuda(CudaCtx *ctx, float *dqkv, const float *dout, const float *qkv,
                             const float *att, int B, int T, int D, int NH, cudaStream_t stream);

// ---------------------------------------------------------------- drop path, softmax

// scale (B) is a DEVICE array or NULL.
void scale_rows_forward_cuda(float *out, const float *inp, const float *scale, int B, size_t n,
                             cudaStream_t stream);
// out (N,C) = softmax(alpha·inp) along rows (in place allowed): the attention
// kernel, exposed for tests and for callers with their own scores.
void softmax_forward_cuda(float *out, const float *inp, int N, int C, float alpha,
                          cudaStream_t stream);
// dinp (N,C) = p ⊙ (dout − Σ_j p·dout) (written; may equal dout).
void softmax_backward_cuda(float *dinp, const float *dout, const float *p, int N, int C,
                           cudaStream_t stream);

// ---------------------------------------------------------------- L2 norm, weight norm

void l2norm_forward_cuda(float *out, float *norm, const float *inp, int N, int C, float eps,
                         cudaStream_t stream);
void l2norm_backward_cuda(float *dinp, const float *dout, const float *out, const float *norm,
                          int N, int C, float eps, cudaStream_t stream);
void weightnorm_forward_cuda(float *w, float *vnorm, const float *g, const float *v, int O,
                             int In, cudaStream_t stream);
void weightnorm_backward_cuda(float *dg, float *dv, const float *dw, const float *g,
                              const float *v, const float *vnorm, int O, int In,
                              cudaStream_t stream);

// ---------------------------------------------------------------- bicubic (pos-embed)

// Bit-identical to the CPU (same float operations, no contraction).
void bicubic_forward_cuda(float *out, const float *in, int IH, int IW, int OH, int OW, int C,
                          float scale_h, float scale_w, cudaStream_t stream);
// din accumulates; a gather (each input cell loops over the outputs in the
// CPU's order), so it is deterministic and bit-identical to the CPU.
void bicubic_backward_cuda(float *din, const float *dout, int IH, int IW, int OH, int OW, int C,
                           float scale_h, float scale_w, cudaStream_t stream);

// ---------------------------------------------------------------- DINO loss

// The device side of a DinoLoss: its configuration (host copy, center NULL),
// the centre and workspaces on the device.
typedef struct {
    DinoLoss cfg;        // out_dim, ncrops, temperatures, momentum; cfg.center == NULL
    float *center;       // device (K)
    float *tprob;        // device (2B, K) teacher probabilities
    double *rows;        // device per-row results (see loss.cu)
    double *stats;       // device (4): loss, teacher_entropy, teacher_mean_entropy, teacher_temp
    size_t cap_rows;     // capacity of tprob in rows
} DinoLossCuda;

// Copies L's configuration and current centre to the device.
void dino_loss_cuda_init(DinoLossCuda *G, const DinoLoss *L);
void dino_loss_cuda_free(DinoLossCuda *G);
// student (ncrops·B, K), teacher (2B, K): device. dstudent (device) written
// (may be NULL). The statistics stay on the device (G->stats) so the step
// need not synchronise; dino_loss_cuda_stats copies them (synchronising).
// The first call for a larger batch synchronises once to grow the workspaces.
void dino_loss_forward_backward_cuda(DinoLossCuda *G, float *dstudent, const float *student,
                                     const float *teacher, int B, int epoch,
                                     cudaStream_t stream);
LossStats dino_loss_cuda_stats(const DinoLossCuda *G, cudaStream_t stream);
// sum (K, device) = column sums of teacher (rows, K) in double, in row order
// (bit-identical to the CPU's dino_center_batch_sum).
void dino_center_batch_sum_cuda(float *sum, const float *teacher, int rows, int K,
                                cudaStream_t stream);
// center ← m·center + (1−m)·sum/count, bit-identical to the CPU.
void dino_center_update_cuda(DinoLossCuda *G, const float *sum, int64_t count,
                             cudaStream_t stream);
// Copies the device centre into L->center (synchronising), e.g. for a checkpoint.
void dino_loss_cuda_download_center(const DinoLossCuda *G, DinoLoss *L, cudaStream_t stream);

// ---------------------------------------------------------------- optimizer passes

// The flat-buffer plan on the device: the chunk table of CudaOptimPlan
// (cuda_plan.h) uploaded once, per-tensor step counts on the host.
typedef struct {
    CudaOptimPlan plan;     // host copy
    double beta1, beta2, eps;  // AdamW: 0.9, 0.999, 1e-8 (optim_init's defaults)
    CudaChunk *chunks;      // device copy of plan.chunks
    int *first_chunk;       // device copy of plan.first_chunk
    CudaTensorCoef *coef;   // device (plan.ntensors), refilled each call (stream-ordered)
    // Two pinned staging copies of coef, used in turn: a call waits only for
    // the upload from the same copy two calls back, never for the one just
    // queued (with one copy, AdamW would wait for clipping's upload, i.e. for
    // the whole backward pass queued before it).
    CudaTensorCoef *coef_host[2];
    void *coef_uploaded[2];  // cudaEvent_t: the last upload from coef_host[i] has run
    int coef_next;           // the staging copy the next call fills
    double *partial;        // device (plan.nchunks): per-chunk sums of squares
    float *norms;           // device (plan.ntensors)
    float *clip_scale;      // device (plan.ntensors)
    int64_t *step;          // host (ntensors): AdamW step per tensor (as Optimizer.step)
    float *m, *v;           // device moments (table->total), zeroed
} CudaOptim;

void cuda_optim_init(CudaOptim *o, const ParamTable *t);
void cuda_optim_free(CudaOptim *o);
// AdamW step over every trainable, not skipped tensor (skip: HOST array of
// t->n flags, or NULL), bit-identical to optim_step(OPTIM_ADAMW) on the CPU.
void adamw_step_cuda(CudaOptim *o, float *params, const float *grads, double lr, double wd,
                     const uint8_t *skip, cudaStream_t stream);
// clip_gradients per tensor; norms_host (t->n, may be NULL) receives each
// tensor's norm (synchronising only when norms_host is not NULL). The norm is
// a double sum of squares per chunk, chunks added in order.
void clip_gradients_cuda(CudaOptim *o, float *grads, float clip, const uint8_t *skip,
                         float *norms_host, cudaStream_t stream);
// θ_t ← m·θ_t + (1−m)·θ_s over n floats, bit-identical to ema_update.
void ema_update_cuda(float *teacher, const float *student, size_t n, double m,
                     cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
