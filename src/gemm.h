// The one GEMM seam of the library (docs/ENGINE.md, "GEMM backends"): every
// dense matrix product outside the attention kernel goes through gemm_f32 or
// gemm_bf16, row-major with cblas_sgemm's meaning:
//   C (M,N) = alpha · op(A) · op(B) + beta · C,
// op(A) (M,K) is A (stored M×K, lda) or Aᵀ (stored K×M, lda); the same for B.
//
// fp32 backends: OpenBLAS sgemm, or oneDNN's matmul primitive (created once
// per shape, transposes, leading dims, alpha and beta, then cached). The
// choice is made once per process (gemm_f32_auto_backend: oneDNN where it runs), or
// by gemm_choose (the command line's DINO_GEMM=openblas|onednn).
//
// bf16 (gemm_bf16): A and B rounded to bf16 (nearest even), products summed
// in fp32, fp32 output, as PyTorch's CPU autocast runs a Linear. Backends:
// oneDNN's bf16 matmul where the CPU has AVX512-BF16 or AMX; an emulation
// (round the inputs, then the fp32 sgemm) that tests the numerics on CPUs
// without bf16, chosen by gemm_choose (DINO_BF16=emulate) or
// gemm_set_bf16_backend; none
// otherwise: then gemm_bf16 runs fp32 and says so once on stderr.
//
// Never call these from inside an OpenMP parallel region: both libraries
// share our OpenMP thread pool.
#ifndef DINO_GEMM_H
#define DINO_GEMM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GEMM_N = 0, GEMM_T = 1 } GemmTrans;
typedef enum { GEMM_OPENBLAS = 0, GEMM_ONEDNN = 1 } GemmF32Backend;
typedef enum { GEMM_BF16_NONE = 0, GEMM_BF16_ONEDNN = 1, GEMM_BF16_EMULATED = 2 } GemmBf16Backend;

void gemm_f32(GemmTrans ta, GemmTrans tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
void gemm_bf16(GemmTrans ta, GemmTrans tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);
// C (fp32) = alpha·op(A)·op(B) + beta·C with A and B already bf16 (leading
// dims in elements), on oneDNN's native bf16 matmul. Returns -1 (C
// untouched) where the CPU has no bf16 or oneDNN no implementation.
int gemm_bf16_native(GemmTrans ta, GemmTrans tb, int M, int N, int K, float alpha,
                     const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C,
                     int ldc);
// Batched fp32 products on oneDNN in one call (attention-shaped work):
// C[i][j] (M,N) = alpha·A[i][j] (M,K) · B[i][j] (K,N), i < nb0, j < nb1,
// each operand given by four strides in elements (batch i, batch j, row,
// column); C is overwritten. Returns -1 (C untouched) where oneDNN cannot.
int gemm_batched_f32(int nb0, int nb1, int M, int N, int K, float alpha, const float *A,
                     const int64_t a_str[4], const float *B, const int64_t b_str[4], float *C,
                     const int64_t c_str[4]);
// ---- fused Linear epilogues (docs/ENGINE.md, "Fused Linear epilogues") ----
// What gemm_linear_fused does to the product P = A·Wᵀ before storing it in C:
// C = gelu(P + bias) when gelu, C = P + bias + res otherwise (bias and res
// optional; gelu and res not together).
typedef struct {
    const float *bias;  // (N) added to every row, or NULL
    int gelu;           // exact (erf) GELU after the bias, as PyTorch's nn.GELU
    const float *res;   // (M,N) laid out as C (leading dim ldc), or NULL; C itself or apart from it
} GemmEpilogue;
// A Linear, C (M,N) = epilogue(A (M,K) · Wᵀ) with W stored N×K (ldw), in
// one oneDNN matmul with the bias and post-ops (bf16 inputs when bf16, as
// gemm_bf16). Returns 0, or -1 with C untouched where the backend in use is
// OpenBLAS or the bf16 emulation, or oneDNN has no implementation: the
// caller then runs the GEMM and its separate passes (src/ops_cpu.c).
int gemm_linear_fused(int bf16, int M, int N, int K, const float *A, int lda, const float *W,
                      int ldw, float *C, int ldc, const GemmEpilogue *ep);
// gemm_bf16 when bf16 is set, gemm_f32 otherwise.
static inline void gemm_prec(int bf16, GemmTrans ta, GemmTrans tb, int M, int N, int K, float alpha,
                             const float *A, int lda, const float *B, int ldb, float beta, float *C,
                             int ldc) {
    if (bf16) gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// ---- mixed precision (docs/ENGINE.md, "bf16 mode") ----
// Process-wide, like PyTorch's autocast region: when on, the Linear layers
// of ops.h (forward and backward) and the attention matmuls take bf16
// inputs; everything else stays fp32. gemm_f32 callers (k-NN, linear
// classifier, label propagation) are not affected. Set it from serial code.
// Without a bf16 backend (gemm_bf16_backend() == GEMM_BF16_NONE) autocast
// stays off: fp32 throughout.
void gemm_set_autocast_bf16(int on);
int gemm_autocast_bf16(void);
// "dino: bf16 asked for, but <why>: running fp32" on stderr, once per process.
void gemm_bf16_say_unavailable(void);
// A weight buffer whose bf16 copy is made once here (a model load) and used
// by every gemm_bf16 operand that lies inside it, instead of rounding the
// weights again on each call. Call again after the floats change; remove
// before freeing the buffer. Returns -1 when the table (8 buffers) is full.
int gemm_bf16_weights_add(const float *base, size_t n);
void gemm_bf16_weights_remove(const float *base);

// ---- backend choice ----
// Overrides the CPU's rule by name: f32 "openblas" or "onednn", bf16
// "emulate" (only where the CPU has no bf16); NULL or "" leaves a choice as
// it is. An unknown or unusable name is ignored: -1 with err saying so.
int gemm_choose(const char *f32, const char *bf16, char *err, size_t errn);
// The fp32 backend in use (the CPU rule unless gemm_choose or a setter changed it).
GemmF32Backend gemm_f32_backend(void);
// The rule of docs/ENGINE.md: oneDNN wherever it runs (it measured ahead of
// OpenBLAS on every CPU met), OpenBLAS where it cannot start.
GemmF32Backend gemm_f32_auto_backend(void);
// Forces a backend (tests, `dino bench gemm`); returns -1 with a message in
// err when oneDNN cannot run here.
int gemm_set_f32_backend(GemmF32Backend b, char *err, size_t errn);
const char *gemm_f32_backend_name(GemmF32Backend b);

// The bf16 backend in use (resolved on first use: native when the CPU has it,
// else emulated when chosen, else none).
GemmBf16Backend gemm_bf16_backend(void);
// Tests: GEMM_BF16_EMULATED always works; GEMM_BF16_ONEDNN returns -1 with the
// reason in err on a CPU without AVX512-BF16 or AMX.
int gemm_set_bf16_backend(GemmBf16Backend b, char *err, size_t errn);
// 1 when oneDNN can run bf16 matmuls on this CPU; otherwise 0 and why (names
// the missing instruction set and the one oneDNN found).
int gemm_bf16_native_available(char *why, size_t n);
// oneDNN's CPU instruction set, e.g. "avx2", "avx512_core_amx".
const char *gemm_onednn_isa_name(void);
// What the model's matmuls run as now, for a run's log: "fp32 on oneDNN
// fp32 (ISA avx2)", "bf16 mixed precision on oneDNN (ISA avx512_core_amx)",
// "bf16 mixed precision, emulated (bf16-rounded inputs, fp32 sgemm)".
void gemm_describe_precision(char *buf, size_t n);
// oneDNN's implementation name for a matmul of this shape and precision
// (e.g. "brg:avx512_core_amx_bf16"), or "n/a: <reason>".
void gemm_onednn_impl(int bf16, int M, int N, int K, char *buf, size_t n);

// ---- bf16 numerics ----
// fp32 -> bf16, round to nearest even (NaN stays a quiet NaN).
static inline uint16_t bf16_from_f32(float f) {
    union {
        float f;
        uint32_t u;
    } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    v.u += 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)(v.u >> 16);
}
static inline float bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)h << 16};
    return v.f;
}
// dst = src rounded to bf16 and widened back (dst may equal src).
void bf16_round_f32(float *dst, const float *src, size_t n);
void bf16_pack(uint16_t *dst, const float *src, size_t n);

#endif
