// The GEMM seam declared in gemm.h: backend choice (once per process),
// OpenBLAS calls, the bf16 packing and the bf16 emulation. oneDNN's side is
// in gemm_onednn.c. The rule for the fp32 backend and the figures behind it
// are in docs/ENGINE.md ("GEMM backends").
#include "gemm.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gemm_onednn.h"

// Resolved on first use; -1 = not yet.
static int g_f32 = -1, g_bf16 = -1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

GemmF32Backend gemm_f32_auto_backend(void) {
    if (onednn_ready(NULL, 0)) return GEMM_OPENBLAS;
    return GEMM_ONEDNN;
}

int gemm_bf16_native_available(char *why, size_t n) {
    char err[160];
    if (onednn_ready(err, sizeof err)) {
        if (why) snprintf(why, n, "%s", err);
        return 0;
    }
    if (onednn_has_bf16()) return 1;
    if (why)
        snprintf(why, n, "this CPU has neither AVX512-BF16 nor AMX (oneDNN's ISA here: %s)",
                 onednn_isa_str());
    return 0;
}

// The CPU's rule; gemm_choose may override it afterwards.
static void resolve(void) {
    g_f32 = gemm_f32_auto_backend();
    g_bf16 = gemm_bf16_native_available(NULL, 0) ? GEMM_BF16_ONEDNN : GEMM_BF16_NONE;
}

int gemm_choose(const char *f32, const char *bf16, char *err, size_t errn) {
    pthread_once(&g_once, resolve);
    int rc = 0;
    if (f32 && *f32) {
        if (!strcmp(f32, "openblas")) g_f32 = GEMM_OPENBLAS;
        else if (!strcmp(f32, "onednn") && !onednn_ready(NULL, 0)) g_f32 = GEMM_ONEDNN;
        else rc = dino_errf(err, errn, "GEMM backend '%s' ignored (openblas, or onednn where it runs); using %s",
                            f32, gemm_f32_backend_name((GemmF32Backend)g_f32));
    }
    // The emulation stands in only where the CPU has no bf16 of its own.
    if (bf16 && *bf16) {
        if (!strcmp(bf16, "emulate")) {
            if (g_bf16 != GEMM_BF16_ONEDNN) g_bf16 = GEMM_BF16_EMULATED;
        } else if (rc == 0) {
            rc = dino_errf(err, errn, "bf16 backend '%s' ignored (only 'emulate' can be chosen)", bf16);
        }
    }
    return rc;
}

GemmF32Backend gemm_f32_backend(void) {
    pthread_once(&g_once, resolve);
    return (GemmF32Backend)g_f32;
}

GemmBf16Backend gemm_bf16_backend(void) {
    pthread_once(&g_once, resolve);
    return (GemmBf16Backend)g_bf16;
}

const char *gemm_f32_backend_name(GemmF32Backend b) {
    return b == GEMM_ONEDNN ? "oneDNN fp32" : "OpenBLAS sgemm";
}

int gemm_set_f32_backend(GemmF32Backend b, char *err, size_t errn) {
    pthread_once(&g_once, resolve);
    if (b == GEMM_ONEDNN && onednn_ready(err, errn)) return -1;
    g_f32 = b;
    return 0;
}

int gemm_set_bf16_backend(GemmBf16Backend b, char *err, size_t errn) {
    pthread_once(&g_once, resolve);
    if (b == GEMM_BF16_ONEDNN && !gemm_bf16_native_available(err, errn)) return -1;
    g_bf16 = b;
    return 0;
}

const char *gemm_onednn_isa_name(void) {
    return onednn_ready(NULL, 0) ? "n/a (no oneDNN engine)" : onednn_isa_str();
}

void gemm_describe_precision(char *buf, size_t n) {
    if (gemm_autocast_bf16() && gemm_bf16_backend() == GEMM_BF16_ONEDNN)
        snprintf(buf, n, "bf16 mixed precision on oneDNN (ISA %s)", gemm_onednn_isa_name());
    else if (gemm_autocast_bf16())
        snprintf(buf, n, "bf16 mixed precision, emulated (bf16-rounded inputs, fp32 sgemm)");
    else if (gemm_f32_backend() == GEMM_ONEDNN)
        snprintf(buf, n, "fp32 on oneDNN fp32 (ISA %s)", gemm_onednn_isa_name());
    else
        snprintf(buf, n, "fp32 on %s", gemm_f32_backend_name(gemm_f32_backend()));
}

void gemm_onednn_impl(int bf16, int M, int N, int K, char *buf, size_t n) {
    char why[200];
    if (bf16 && !gemm_bf16_native_available(why, sizeof why)) snprintf(buf, n, "n/a: %s", why);
    else if (onednn_impl_name(bf16, M, N, K, buf, n)) snprintf(buf, n, "n/a: oneDNN has no implementation");
}

// ---------------------------------------------------------------- fp32

static void blas(GemmTrans ta, GemmTrans tb, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_f32(GemmTrans ta, GemmTrans tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    // Empty products (C = beta·C) stay with the BLAS, which defines them.
    if (gemm_f32_backend() == GEMM_ONEDNN && M > 0 && N > 0 && K > 0 &&
        onednn_matmul(0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
    blas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int gemm_batched_f32(int nb0, int nb1, int M, int N, int K, float alpha, const float *A,
                     const int64_t a_str[4], const float *B, const int64_t b_str[4], float *C,
                     const int64_t c_str[4]) {
    if (nb0 <= 0 || nb1 <= 0 || M <= 0 || N <= 0 || K <= 0) return -1;
    return onednn_batched_matmul(0, nb0, nb1, M, N, K, alpha, A, a_str, B, b_str, C, c_str);
}

// ---------------------------------------------------------------- bf16

static int g_autocast;
void gemm_set_autocast_bf16(int on) {
    g_autocast = on != 0;
    if (on && gemm_bf16_backend() == GEMM_BF16_NONE) gemm_bf16_say_unavailable();
}
int gemm_autocast_bf16(void) { return g_autocast && gemm_bf16_backend() != GEMM_BF16_NONE; }

// Registered weight buffers and their bf16 copies.
#define MAX_WEIGHTS 8
static struct {
    const float *base;
    size_t n;
    uint16_t *bf16;
} g_w[MAX_WEIGHTS];
static pthread_mutex_t g_w_lock = PTHREAD_MUTEX_INITIALIZER;

int gemm_bf16_weights_add(const float *base, size_t n) {
    pthread_mutex_lock(&g_w_lock);
    int slot = -1;
    for (int i = 0; i < MAX_WEIGHTS; i++) {
        if (g_w[i].base == base) {
            slot = i;
            break;
        }
        if (!g_w[i].base && slot < 0) slot = i;
    }
    if (slot >= 0) {
        if (g_w[slot].base != base || g_w[slot].n != n) {
            free(g_w[slot].bf16);
            g_w[slot].bf16 = alignedAllocCheck((n ? n : 1) * sizeof(uint16_t));
        }
        g_w[slot].base = base;
        g_w[slot].n = n;
        bf16_pack(g_w[slot].bf16, base, n);
    }
    pthread_mutex_unlock(&g_w_lock);
    return slot >= 0 ? 0 : -1;
}

void gemm_bf16_weights_remove(const float *base) {
    pthread_mutex_lock(&g_w_lock);
    for (int i = 0; i < MAX_WEIGHTS; i++)
        if (g_w[i].base == base) {
            free(g_w[i].bf16);
            memset(&g_w[i], 0, sizeof g_w[i]);
        }
    pthread_mutex_unlock(&g_w_lock);
}

// The bf16 copy of the stored block x (rows×cols, ld) when it lies inside a
// registered buffer, else NULL.
static const uint16_t *registered_bf16(const float *x, int ld, int rows, int cols) {
    const uint16_t *r = NULL;
    pthread_mutex_lock(&g_w_lock);
    for (int i = 0; i < MAX_WEIGHTS && !r; i++) {
        const float *b = g_w[i].base;
        if (b && x >= b && x + (size_t)(rows - 1) * ld + cols <= b + g_w[i].n) r = g_w[i].bf16 + (x - b);
    }
    pthread_mutex_unlock(&g_w_lock);
    return r;
}

void bf16_round_f32(float *dst, const float *src, size_t n) {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(bf16_from_f32(src[i]));
}

void bf16_pack(uint16_t *dst, const float *src, size_t n) {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] = bf16_from_f32(src[i]);
}

// The stored rows×cols block of an operand (op(X) is rows×cols untransposed,
// cols×rows transposed), copied densely (leading dim = cols) into dst as
// bf16 (pack) or as bf16-rounded floats (emulation).
static void stored_dims(GemmTrans t, int r, int c, int *sr, int *sc) {
    *sr = t ? c : r;
    *sc = t ? r : c;
}

static void pack_block_bf16(uint16_t *dst, const float *src, int ld, int rows, int cols) {
#pragma omp parallel for if ((size_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)r * cols + c] = bf16_from_f32(src[(size_t)r * ld + c]);
}

static void round_block(float *dst, const float *src, int ld, int rows, int cols) {
#pragma omp parallel for if ((size_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)r * cols + c] = bf16_to_f32(bf16_from_f32(src[(size_t)r * ld + c]));
}

static void widen_block(float *dst, const uint16_t *src, int ld, int rows, int cols) {
#pragma omp parallel for if ((size_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)r * cols + c] = bf16_to_f32(src[(size_t)r * ld + c]);
}

static void say_no_bf16(void) {
    char why[200];
    gemm_bf16_native_available(why, sizeof why);
    fprintf(stderr, "dino: bf16 asked for, but %s: running fp32\n", why);
}

void gemm_bf16_say_unavailable(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, say_no_bf16);
}

int gemm_bf16_native(GemmTrans ta, GemmTrans tb, int M, int N, int K, float alpha,
                     const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C,
                     int ldc) {
    if (M <= 0 || N <= 0 || K <= 0 || !gemm_bf16_native_available(NULL, 0)) return -1;
    return onednn_matmul(1, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bf16(GemmTrans ta, GemmTrans tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    GemmBf16Backend be = gemm_bf16_backend();
    if (be == GEMM_BF16_NONE || M <= 0 || N <= 0 || K <= 0) {
        if (be == GEMM_BF16_NONE) gemm_bf16_say_unavailable();
        gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int ar, ac, br, bc;
    stored_dims(ta, M, K, &ar, &ac);
    stored_dims(tb, K, N, &br, &bc);
    const uint16_t *wa = registered_bf16(A, lda, ar, ac), *wb = registered_bf16(B, ldb, br, bc);
    if (be == GEMM_BF16_ONEDNN) {
        uint16_t *a = NULL, *b = NULL;
        if (!wa) a = alignedAllocCheck((size_t)ar * ac * sizeof(uint16_t)), pack_block_bf16(a, A, lda, ar, ac);
        if (!wb) b = alignedAllocCheck((size_t)br * bc * sizeof(uint16_t)), pack_block_bf16(b, B, ldb, br, bc);
        int rc = onednn_matmul(1, ta, tb, M, N, K, alpha, wa ? wa : a, wa ? lda : ac, wb ? wb : b,
                               wb ? ldb : bc, beta, C, ldc);
        free(a), free(b);
        if (rc == 0) return;
        // No oneDNN implementation for this one: the emulation, same numerics.
    }
    float *a = alignedAllocCheck((size_t)ar * ac * sizeof(float));
    float *b = alignedAllocCheck((size_t)br * bc * sizeof(float));
    if (wa) widen_block(a, wa, lda, ar, ac);
    else round_block(a, A, lda, ar, ac);
    if (wb) widen_block(b, wb, ldb, br, bc);
    else round_block(b, B, ldb, br, bc);
    blas(ta, tb, M, N, K, alpha, a, ac, b, bc, beta, C, ldc);
    free(a), free(b);
}

// ---------------------------------------------------------------- fused Linear

int gemm_linear_fused(int bf16, int M, int N, int K, const float *A, int lda, const float *W,
                      int ldw, float *C, int ldc, const GemmEpilogue *ep) {
    // fp32 only: bf16 post-ops have not run on a CPU with bf16 yet, so bf16
    // keeps its verified GEMM and separate passes (docs/ENGINE.md).
    if (bf16 || gemm_f32_backend() != GEMM_ONEDNN) return -1;
    if (M <= 0 || N <= 0 || K <= 0 || (ep->gelu && ep->res)) return -1;
    return onednn_linear(M, N, K, A, lda, W, ldw, C, ldc, ep->bias, ep->gelu, ep->res);
}
