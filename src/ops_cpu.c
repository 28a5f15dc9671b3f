// CPU layer functions declared in ops.h: src/gemm.h for every Linear GEMM
// (called only from serial code: OpenBLAS and oneDNN share our OpenMP pool,
// and nested regions run badly; bf16 inputs under gemm_autocast_bf16), and
// OpenMP loops for the element-wise and row-wise kernels, which are written so
// that GCC vectorises them.
#include "ops.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gemm.h"

// Parallelise a loop only when it has enough work to pay for waking threads.
#define PAR_MIN_WORK 32768

// ---------------------------------------------------------------- linear

void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC) {
    // The bias inside the GEMM where the backend fuses it; otherwise filling
    // out with the bias and letting the GEMM accumulate (beta = 1) costs one
    // pass over out, instead of a zeroing pass and a bias pass.
    int bf16 = gemm_autocast_bf16();
    GemmEpilogue ep = {b, 0, NULL};
    if (b && gemm_linear_fused(bf16, N, OC, C, inp, C, w, C, out, OC, &ep) == 0) return;
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for if ((size_t)N * OC > PAR_MIN_WORK)
        for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    gemm_prec(bf16, GEMM_N, GEMM_T, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC);
}

void linear_gelu_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                         int OC) {
    GemmEpilogue ep = {b, 1, NULL};
    if (gemm_linear_fused(gemm_autocast_bf16(), N, OC, C, inp, C, w, C, out, OC, &ep) == 0) return;
    linear_forward(out, inp, w, b, N, C, OC);
    gelu_forward(out, out, (size_t)N * OC);
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    int bf16 = gemm_autocast_bf16();
    if (dinp)  // dinp (N,C) = dout (N,OC) · w (OC,C)
        gemm_prec(bf16, GEMM_N, GEMM_N, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
    if (dw)  // dw (OC,C) += doutᵀ · inp
        gemm_prec(bf16, GEMM_T, GEMM_N, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (db) {
        // Column sums, each thread owning a slice of columns.
#pragma omp parallel for if ((size_t)N * OC > PAR_MIN_WORK)
        for (int j0 = 0; j0 < OC; j0 += 64) {
            int j1 = j0 + 64 < OC ? j0 + 64 : OC;
            float acc[64] = {0};
            for (int i = 0; i < N; i++) {
                const float *r = dout + (size_t)i * OC;
                for (int j = j0; j < j1; j++) acc[j - j0] += r[j];
            }
            for (int j = j0; j < j1; j++) db[j] += acc[j - j0];
        }
    }
}

void linear_residual_forward(float *out, const float *res, const float *inp, const float *w,
                             const float *b, const float *scale, int B, int T, int C, int OC) {
    size_t rows = (size_t)B * T;
    int all_one = 1, bf16 = gemm_autocast_bf16();
    if (scale)
        for (int s = 0; s < B; s++) all_one &= scale[s] == 1.0f;
    GemmEpilogue ep = {b, 0, res};
    if (all_one && gemm_linear_fused(bf16, (int)rows, OC, C, inp, C, w, C, out, OC, &ep) == 0) return;
    if (!all_one && out != res) {
        // Drop path in training (factors 0 or 1/keep): one GEMM for the whole
        // branch, then out = res + factor·branch, as the reference computes it.
        linear_forward(out, inp, w, b, (int)rows, C, OC);
#pragma omp parallel for if (rows * OC > PAR_MIN_WORK)
        for (size_t i = 0; i < rows; i++) {
            float s = scale[i / T];
            float *o = out + i * OC;
            const float *r = res + i * OC;
            for (int j = 0; j < OC; j++) o[j] = r[j] + o[j] * s;
        }
        return;
    }
    // out = res + scale·b, then the GEMM accumulates scale·inp·Wᵀ into it.
#pragma omp parallel for if (rows * OC > PAR_MIN_WORK)
    for (size_t i = 0; i < rows; i++) {
        float s = all_one ? 1.0f : scale[i / T];
        float *o = out + i * OC;
        const float *r = res + i * OC;
        if (b)
            for (int j = 0; j < OC; j++) o[j] = r[j] + s * b[j];
        else if (o != r)
            memcpy(o, r, (size_t)OC * sizeof(float));
    }
    if (all_one) {
        gemm_prec(bf16, GEMM_N, GEMM_T, (int)rows, OC, C, 1.0f, inp, C, w, C, 1.0f, out, OC);
    } else {
        for (int s = 0; s < B; s++) {
            if (scale[s] == 0.0f) continue;
            gemm_prec(bf16, GEMM_N, GEMM_T, T, OC, C, scale[s], inp + (size_t)s * T * C, C, w, C,
                      1.0f, out + (size_t)s * T * OC, OC);
        }
    }
}

// ---------------------------------------------------------------- patches

void patch_unfold(float *cols, const float *img, int B, int C, int H, int W, int p) {
    int GH = H / p, GW = W / p, K = C * p * p;
#pragma omp parallel for collapse(2) if ((size_t)B * GH * GW * K > PAR_MIN_WORK)
    for (int b = 0; b < B; b++)
        for (int r = 0; r < GH; r++)
            for (int c = 0; c < GW; c++) {
                float *dst = cols + ((size_t)(b * GH + r) * GW + c) * K;
                for (int ch = 0; ch < C; ch++)
                    for (int ky = 0; ky < p; ky++) {
                        const float *src = img + (((size_t)b * C + ch) * H + r * p + ky) * W + c * p;
                        memcpy(dst + (ch * p + ky) * p, src, (size_t)p * sizeof(float));
                    }
            }
}

void patch_fold(float *dimg, const float *dcols, int B, int C, int H, int W, int p) {
    int GH = H / p, GW = W / p, K = C * p * p;
    if (GH * p != H || GW * p != W) memset(dimg, 0, (size_t)B * C * H * W * sizeof(float));
#pragma omp parallel for collapse(2) if ((size_t)B * GH * GW * K > PAR_MIN_WORK)
    for (int b = 0; b < B; b++)
        for (int r = 0; r < GH; r++)
            for (int c = 0; c < GW; c++) {
                const float *src = dcols + ((size_t)(b * GH + r) * GW + c) * K;
                for (int ch = 0; ch < C; ch++)
                    for (int ky = 0; ky < p; ky++) {
                        float *dst = dimg + (((size_t)b * C + ch) * H + r * p + ky) * W + c * p;
                        memcpy(dst, src + (ch * p + ky) * p, (size_t)p * sizeof(float));
                    }
            }
}

// ---------------------------------------------------------------- layernorm

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps) {
#pragma omp parallel for if ((size_t)N * C > PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        // Two passes in float (vectorised sums): the rows are short (C up to
        // a few thousand) and agree with PyTorch's Welford to a few ulp.
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int j = 0; j < C; j++) m += x[j];
        m /= (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int j = 0; j < C; j++) {
            float d = x[j] - m;
            v += d * d;
        }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + eps);
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) * s * w[j] + b[j];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = s;
    }
}

void layernorm_apply(float *out, const float *inp, const float *w, const float *b,
                     const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for if ((size_t)N * C > PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float m = mean[i], s = rstd[i];
        // The same expression as layernorm_forward's last loop: the same bits.
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) * s * w[j] + b[j];
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    int nt = omp_get_max_threads();
    if ((size_t)N * C <= PAR_MIN_WORK) nt = 1;
    // Per-thread partial sums for dw and db, reduced at the end.
    float *part = callocCheck((size_t)nt * 2 * C, sizeof(float));
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num();
        float *pdw = part + (size_t)tid * 2 * C, *pdb = pdw + C;
#pragma omp for
        for (int i = 0; i < N; i++) {
            const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
            float *dx = dinp + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            float sum_dn = 0.0f, sum_dnx = 0.0f;
#pragma omp simd reduction(+ : sum_dn, sum_dnx)
            for (int j = 0; j < C; j++) {
                float xh = (x[j] - m) * s, dn = dy[j] * w[j];
                sum_dn += dn;
                sum_dnx += dn * xh;
                pdw[j] += dy[j] * xh;
                pdb[j] += dy[j];
            }
            sum_dn /= (float)C;
            sum_dnx /= (float)C;
            for (int j = 0; j < C; j++) {
                float xh = (x[j] - m) * s;
                dx[j] += (dy[j] * w[j] - sum_dn - xh * sum_dnx) * s;
            }
        }
    }
    for (int t = 0; t < nt; t++) {
        const float *pdw = part + (size_t)t * 2 * C, *pdb = pdw + C;
        if (dw)
            for (int j = 0; j < C; j++) dw[j] += pdw[j];
        if (db)
            for (int j = 0; j < C; j++) db[j] += pdb[j];
    }
    free(part);
}

// ---------------------------------------------------------------- GELU

// Element-wise maths in 8-wide GCC vector extensions (AVX2 where available,
// generic code elsewhere): libm's expf/erff do not vectorise, and without
// -ffast-math GCC will not vectorise our scalar versions (clamps and floor).
// A row tail is computed in a zero-padded vector, so every element goes
// through the same arithmetic.
typedef float vf8 __attribute__((vector_size(32)));
// Functions whose multiply-adds may be fused (FMA): the vector maths and the
// attention kernel. The whole file cannot be: -std=c11 turns contraction off.
#define FMA_FN __attribute__((optimize("fp-contract=fast")))
typedef int32_t vi8 __attribute__((vector_size(32)));
#define V8(c) ((vf8){(c), (c), (c), (c), (c), (c), (c), (c)})
#define V8I(c) ((vi8){(c), (c), (c), (c), (c), (c), (c), (c)})

// Full vectors are single unaligned loads/stores; only a row's tail takes the
// element-wise path (kept out of line so GCC does not merge both into memcpy).
static inline vf8 vload8(const float *p) {
    vf8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vstore8(float *p, vf8 v) { memcpy(p, &v, sizeof v); }
static __attribute__((noinline)) vf8 vload_tail(const float *p, int n) {
    vf8 v = V8(0.0f);
    for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
}
static __attribute__((noinline)) void vstore_tail(float *p, vf8 v, int n) {
    for (int i = 0; i < n; i++) p[i] = v[i];
}
static inline vf8 vload(const float *p, int n) { return n == 8 ? vload8(p) : vload_tail(p, n); }
static inline void vstore(float *p, vf8 v, int n) {
    if (n == 8) vstore8(p, v);
    else vstore_tail(p, v, n);
}

// exp(x) for x <= 0: Cody-Waite range reduction and the Cephes polynomial,
// ~1 ulp; inputs below -87 are clamped (result ~1e-38 instead of 0).
FMA_FN static inline vf8 vexp_neg(vf8 x) {
    vi8 lo = x < V8(-87.0f);
    x = (vf8)(((vi8)x & ~lo) | ((vi8)V8(-87.0f) & lo));
    vf8 y = x * 1.44269504088896341f + 0.5f;
    vi8 ti = __builtin_convertvector(y, vi8);  // truncation; fix up to floor
    ti += (vi8)(__builtin_convertvector(ti, vf8) > y);
    vf8 n = __builtin_convertvector(ti, vf8);
    vf8 r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf8 p = V8(1.9875691500E-4f);
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    return p * (vf8)((ti + 127) << 23);
}

// erf as PyTorch's vectorised CPU kernel computes it (Abramowitz & Stegun
// 7.1.26, |error| < 1.5e-7), so our GELU tracks nn.GELU() on CPU.
FMA_FN static inline vf8 verf(vf8 x) {
    vi8 sign = (vi8)x & V8I((int32_t)0x80000000u);
    vf8 ax = (vf8)((vi8)x & V8I(0x7fffffff));
    vf8 t = 1.0f / (0.3275911f * ax + 1.0f);
    vf8 r = (((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
            0.254829592f;
    vf8 e = vexp_neg(-(x * x));
    vf8 y = 1.0f - e * t * r;
    return (vf8)((vi8)y | sign);
}

FMA_FN static inline vf8 vgelu(vf8 x) { return x * 0.5f * (1.0f + verf(x * (float)M_SQRT1_2)); }

FMA_FN static inline vf8 vgelu_grad(vf8 x, vf8 dy) {
    vf8 cdf = 0.5f * (1.0f + verf(x * (float)M_SQRT1_2));
    vf8 pdf = 0.3989422804014327f * vexp_neg(x * x * -0.5f);
    return dy * (cdf + x * pdf);
}

// 32 elements per step: four independent dependency chains keep the FP
// pipes busy (one chain is ~40 dependent operations long).
FMA_FN void gelu_forward(float *out, const float *inp, size_t n) {
    size_t nb = n / 32;
#pragma omp parallel for if (n > PAR_MIN_WORK)
    for (size_t v = 0; v < nb; v++) {
        const float *x = inp + v * 32;
        float *y = out + v * 32;
        vf8 a = vgelu(vload8(x)), b = vgelu(vload8(x + 8)), c = vgelu(vload8(x + 16)),
            d = vgelu(vload8(x + 24));
        vstore8(y, a), vstore8(y + 8, b), vstore8(y + 16, c), vstore8(y + 24, d);
    }
    for (size_t i = nb * 32; i < n; i += 8) {
        int k = n - i < 8 ? (int)(n - i) : 8;
        vstore(out + i, vgelu(vload(inp + i, k)), k);
    }
}

FMA_FN void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    size_t nb = n / 32;
#pragma omp parallel for if (n > PAR_MIN_WORK)
    for (size_t v = 0; v < nb; v++) {
        const float *x = inp + v * 32, *dy = dout + v * 32;
        float *dx = dinp + v * 32;
        vf8 a = vgelu_grad(vload8(x), vload8(dy)), b = vgelu_grad(vload8(x + 8), vload8(dy + 8)),
            c = vgelu_grad(vload8(x + 16), vload8(dy + 16)),
            d = vgelu_grad(vload8(x + 24), vload8(dy + 24));
        vstore8(dx, a), vstore8(dx + 8, b), vstore8(dx + 16, c), vstore8(dx + 24, d);
    }
    for (size_t i = nb * 32; i < n; i += 8) {
        int k = n - i < 8 ? (int)(n - i) : 8;
        vstore(dinp + i, vgelu_grad(vload(inp + i, k), vload(dout + i, k)), k);
    }
}

// GELU and its derivative in one pass (the training backward needs both: the
// output for fc2's weight gradient, the derivative after fc2's input
// gradient). One erf and one exp per element instead of two and three: the
// derivative's pdf exp(-x²/2) is the exp inside erf(x/√2).
FMA_FN static inline void vgelu_and_grad(vf8 x, vf8 *h, vf8 *gp) {
    vf8 xs = x * (float)M_SQRT1_2;
    vi8 sign = (vi8)xs & V8I((int32_t)0x80000000u);
    vf8 ax = (vf8)((vi8)xs & V8I(0x7fffffff));
    vf8 t = 1.0f / (0.3275911f * ax + 1.0f);
    vf8 r = (((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
            0.254829592f;
    vf8 e = vexp_neg(-(xs * xs));
    vf8 erf = (vf8)((vi8)(1.0f - e * t * r) | sign);
    *h = x * 0.5f * (1.0f + erf);
    *gp = 0.5f * (1.0f + erf) + x * (0.3989422804014327f * e);
}

FMA_FN void gelu_grad_forward(float *out, float *grad, const float *inp, size_t n) {
    size_t nb = n / 16;
#pragma omp parallel for if (n > PAR_MIN_WORK)
    for (size_t v = 0; v < nb; v++) {
        const float *x = inp + v * 16;
        vf8 h0, g0, h1, g1;
        vgelu_and_grad(vload8(x), &h0, &g0);
        vgelu_and_grad(vload8(x + 8), &h1, &g1);
        vstore8(out + v * 16, h0), vstore8(out + v * 16 + 8, h1);
        vstore8(grad + v * 16, g0), vstore8(grad + v * 16 + 8, g1);
    }
    for (size_t i = nb * 16; i < n; i += 8) {
        int k = n - i < 8 ? (int)(n - i) : 8;
        vf8 h, g;
        vgelu_and_grad(vload(inp + i, k), &h, &g);
        vstore(out + i, h, k), vstore(grad + i, g, k);
    }
}

void gelu_backward_saved(float *dinp, const float *grad, const float *dout, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * grad[i];
}

// ---------------------------------------------------------------- attention

// One softmax row in place (the scale is already applied). The exps run
// four vectors at a time: independent chains keep the FP pipes busy.
FMA_FN static void softmax_row(float *r, int T) {
    float mx = r[0];
#pragma omp simd reduction(max : mx)
    for (int j = 1; j < T; j++) mx = r[j] > mx ? r[j] : mx;
    vf8 s0 = V8(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int j = 0;
    for (; j + 32 <= T; j += 32) {
        vf8 e0 = vexp_neg(vload8(r + j) - mx), e1 = vexp_neg(vload8(r + j + 8) - mx);
        vf8 e2 = vexp_neg(vload8(r + j + 16) - mx), e3 = vexp_neg(vload8(r + j + 24) - mx);
        vstore8(r + j, e0), vstore8(r + j + 8, e1), vstore8(r + j + 16, e2), vstore8(r + j + 24, e3);
        s0 += e0, s1 += e1, s2 += e2, s3 += e3;
    }
    float sum = 0.0f;
    for (; j < T; j += 8) {
        int k = T - j < 8 ? T - j : 8;
        vf8 e = vexp_neg(vload(r + j, k) - mx);
        vstore(r + j, e, k);
        if (k == 8) s0 += e;
        else
            for (int q = 0; q < k; q++) sum += e[q];
    }
    vf8 vs = (s0 + s1) + (s2 + s3);
    for (int q = 0; q < 8; q++) sum += vs[q];
    float inv = 1.0f / sum;
#pragma omp simd
    for (int i = 0; i < T; i++) r[i] *= inv;
}

// Attention runs one (sample, head) pair per task inside a single OpenMP
// region, with its own small GEMM kernel: a head's GEMMs (T x T x hd) are too
// small for the BLAS to split well over threads, and one region per call
// instead of one BLAS call per head avoids thousands of thread hand-offs.
// Operands are packed into zero-padded buffers (rows to a multiple of 4,
// columns to a multiple of 16) so the kernel has no edge cases.
#define RUP(x, m) (((x) + (m) - 1) / (m) * (m))

// C (Mp x Np, ldc) = alpha · A (Mp x K, lda) · B (K x Np, ldb); Mp % 6 == 0,
// Np % 16 == 0. 6x16 register tile: 12 accumulators, 2 B vectors, 1 broadcast.
FMA_FN static void gemm_tile(float *C, int ldc, const float *A, int lda, const float *B, int ldb,
                             int Mp, int Np, int K, float alpha) {
    for (int i = 0; i < Mp; i += 6)
        for (int j = 0; j < Np; j += 16) {
            vf8 c00 = V8(0.0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
                c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            const float *a0 = A + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            const float *a4 = a3 + lda, *a5 = a4 + lda;
            const float *b = B + j;
            for (int k = 0; k < K; k++, b += ldb) {
                vf8 b0 = vload8(b), b1 = vload8(b + 8), x;
#if defined(__GNUC__) && defined(__AVX__)
                __asm__("" : "+x"(b0), "+x"(b1));  // keep B in registers, not refolded loads
#endif
                x = V8(a0[k]), c00 += x * b0, c01 += x * b1;
                x = V8(a1[k]), c10 += x * b0, c11 += x * b1;
                x = V8(a2[k]), c20 += x * b0, c21 += x * b1;
                x = V8(a3[k]), c30 += x * b0, c31 += x * b1;
                x = V8(a4[k]), c40 += x * b0, c41 += x * b1;
                x = V8(a5[k]), c50 += x * b0, c51 += x * b1;
            }
            float *c = C + (size_t)i * ldc + j;
            vstore8(c, alpha * c00), vstore8(c + 8, alpha * c01), c += ldc;
            vstore8(c, alpha * c10), vstore8(c + 8, alpha * c11), c += ldc;
            vstore8(c, alpha * c20), vstore8(c + 8, alpha * c21), c += ldc;
            vstore8(c, alpha * c30), vstore8(c + 8, alpha * c31), c += ldc;
            vstore8(c, alpha * c40), vstore8(c + 8, alpha * c41), c += ldc;
            vstore8(c, alpha * c50), vstore8(c + 8, alpha * c51);
        }
}

// dst (rows_p x cols_p) = src (rows x cols, stride ld), zero padded.
static void pack(float *dst, int rows_p, int cols_p, const float *src, int ld, int rows, int cols) {
    for (int r = 0; r < rows_p; r++) {
        float *d = dst + (size_t)r * cols_p;
        if (r < rows) {
            memcpy(d, src + (size_t)r * ld, (size_t)cols * sizeof(float));
            memset(d + cols, 0, (size_t)(cols_p - cols) * sizeof(float));
        } else {
            memset(d, 0, (size_t)cols_p * sizeof(float));
        }
    }
}
// dst (cols_p x rows_p) = transpose of src (rows x cols, stride ld), zero padded.
static void pack_t(float *dst, int cols_p, int rows_p, const float *src, int ld, int rows,
                   int cols) {
    memset(dst, 0, (size_t)cols_p * rows_p * sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows_p + r] = src[(size_t)r * ld + c];
}
// dst (rows x cols, stride ld) = the top-left block of src (stride lds).
static void unpack(float *dst, int ld, const float *src, int lds, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * ld, src + (size_t)r * lds, (size_t)cols * sizeof(float));
}

// bf16 mode (gemm_autocast_bf16): the attention matmuls' inputs are rounded
// to bf16 once packed, and the kernel sums in fp32 (autocast's numerics; the
// speed stays fp32's). Serial: it runs inside the per-head tasks.
static void round_bf16_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = bf16_to_f32(bf16_from_f32(x[i]));
}

// S (Tr x Tc) = softmax rows of scale·Q·Kᵀ for the T real rows, from packed
// Qp (Tr x hp) and Kᵀ (hp x Tc). One out-of-line copy, so that the backward's
// recomputation is bit-identical to the forward.
FMA_FN static __attribute__((noinline)) void attention_probs(float *S, const float *Qp,
                                                             const float *KT, int T, int Tr, int Tc,
                                                             int hp, int hd, float scale) {
    gemm_tile(S, Tc, Qp, hp, KT, Tc, Tr, Tc, hd, scale);
    for (int i = 0; i < T; i++) softmax_row(S + (size_t)i * Tc, T);
}

FMA_FN void attention_forward(float *out, float *att, const float *qkv, int B, int T, int D, int NH) {
    // Rows padded for the 6-row tile (Tr), columns for the 16-wide one (Tc).
    int hd = D / NH, D3 = 3 * D, Tr = RUP(T, 6), Tc = RUP(T, 16), hp = RUP(hd, 16);
    int Tn = Tr > Tc ? Tr : Tc;
    float scale = 1.0f / sqrtf((float)hd);
    int tasks = B * NH, bf16 = gemm_autocast_bf16();
#pragma omp parallel if (tasks > 1 && (size_t)tasks * T * T * hd > PAR_MIN_WORK)
    {
        float *Qp = alignedAllocCheck(((size_t)Tn * hp * 4 + (size_t)Tr * Tc) * sizeof(float));
        float *KT = Qp + (size_t)Tn * hp, *Vp = KT + (size_t)Tn * hp, *Yp = Vp + (size_t)Tn * hp;
        float *S = Yp + (size_t)Tn * hp;
#pragma omp for schedule(dynamic)
        for (int t = 0; t < tasks; t++) {
            int b = t / NH, h = t % NH;
            const float *q = qkv + (size_t)b * T * D3 + h * hd;
            pack(Qp, Tr, hp, q, D3, T, hd);
            pack_t(KT, hp, Tc, q + D, D3, T, hd);
            pack(Vp, T, hp, q + 2 * D, D3, T, hd);
            if (bf16) {
                round_bf16_inplace(Qp, (size_t)Tr * hp);
                round_bf16_inplace(KT, (size_t)hp * Tc);
                round_bf16_inplace(Vp, (size_t)T * hp);
            }
            attention_probs(S, Qp, KT, T, Tr, Tc, hp, hd, scale);
            if (att)
                for (int i = 0; i < T; i++)
                    memcpy(att + ((size_t)t * T + i) * T, S + (size_t)i * Tc, (size_t)T * sizeof(float));
            if (bf16) round_bf16_inplace(S, (size_t)Tr * Tc);
            gemm_tile(Yp, hp, S, Tc, Vp, hp, Tr, hp, T, 1.0f);  // P·V over the T real keys
            unpack(out + (size_t)b * T * D + h * hd, D, Yp, hp, T, hd);
        }
        free(Qp);
    }
}

int attention_forward_batched(float *out, float *S, const float *qkv, int B, int T, int D, int NH) {
    int64_t hd = D / NH, D3 = 3 * (int64_t)D, TT = (int64_t)T * T;
    // q, k, v of (sample b, head h, token t, channel d) at b·T·3D + t·3D + part·D + h·hd + d.
    const int64_t q_str[4] = {T * D3, hd, D3, 1};
    const int64_t kt_str[4] = {T * D3, hd, 1, D3};  // Kᵀ: (d, t)
    const int64_t s_str[4] = {NH * TT, TT, T, 1};
    const int64_t o_str[4] = {(int64_t)T * D, hd, D, 1};
    float scale = 1.0f / sqrtf((float)hd);
    if (gemm_batched_f32(B, NH, T, T, (int)hd, scale, qkv, q_str, qkv + D, kt_str, S, s_str)) return -1;
    size_t rows = (size_t)B * NH * T;
#pragma omp parallel for if (rows * T > PAR_MIN_WORK)
    for (size_t r = 0; r < rows; r++) softmax_row(S + r * T, T);
    return gemm_batched_f32(B, NH, T, (int)hd, T, 1.0f, S, s_str, qkv + 2 * D, q_str, out, o_str);
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                               int B, int T, int D, int NH) {
    int hd = D / NH, D3 = 3 * D, Tr = RUP(T, 6), Tc = RUP(T, 16), hp = RUP(hd, 16);
    int Tn = Tr > Tc ? Tr : Tc;
    float scale = 1.0f / sqrtf((float)hd);
    int tasks = B * NH, bf16 = gemm_autocast_bf16();
#pragma omp parallel if (tasks > 1 && (size_t)tasks * T * T * hd > PAR_MIN_WORK)
    {
        float *dYp = alignedAllocCheck(((size_t)Tn * hp * 5 + (size_t)Tr * Tc * 3) * sizeof(float));
        float *VT = dYp + (size_t)Tn * hp, *Qp = VT + (size_t)Tn * hp, *Kp = Qp + (size_t)Tn * hp;
        float *G = Kp + (size_t)Tn * hp;  // gradient output block (Tr x hp)
        float *dS = G + (size_t)Tn * hp, *PT = dS + (size_t)Tr * Tc, *dST = PT + (size_t)Tr * Tc;
#pragma omp for schedule(dynamic)
        for (int t = 0; t < tasks; t++) {
            int b = t / NH, h = t % NH;
            const float *q = qkv + (size_t)b * T * D3 + h * hd;
            float *dq = dqkv + (size_t)b * T * D3 + h * hd;
            pack(dYp, Tr, hp, dout + (size_t)b * T * D + h * hd, D, T, hd);
            pack_t(VT, hp, Tc, q + 2 * D, D3, T, hd);
            pack(Qp, Tr, hp, q, D3, T, hd);
            pack(Kp, T, hp, q + D, D3, T, hd);
            if (bf16) {
                round_bf16_inplace(dYp, (size_t)Tr * hp);
                round_bf16_inplace(VT, (size_t)hp * Tc);
                round_bf16_inplace(Qp, (size_t)Tr * hp);
                round_bf16_inplace(Kp, (size_t)T * hp);
            }
            const float *P;
            int ldp;
            if (att) {
                P = att + (size_t)t * T * T, ldp = T;
            } else {
                // The probabilities again, with the forward's packing, kernel and
                // softmax (so bit-identical), in dST (free until dSᵀ) with Kᵀ in G.
                pack_t(G, hp, Tc, q + D, D3, T, hd);
                if (bf16) round_bf16_inplace(G, (size_t)hp * Tc);
                attention_probs(dST, Qp, G, T, Tr, Tc, hp, hd, scale);
                P = dST, ldp = Tc;
            }
            pack_t(PT, Tr, Tc, P, ldp, T, T);
            if (bf16) round_bf16_inplace(PT, (size_t)Tr * Tc);
            // dV = Pᵀ·dY
            gemm_tile(G, hp, PT, Tc, dYp, hp, Tr, hp, T, 1.0f);
            unpack(dq + 2 * D, D3, G, hp, T, hd);
            // dP = dY·Vᵀ, then dS = P ⊙ (dP − Σ_j P·dP) (zero outside T x T)
            gemm_tile(dS, Tc, dYp, hp, VT, Tc, Tr, Tc, hd, 1.0f);
            for (int i = 0; i < T; i++) {
                const float *p = P + (size_t)i * ldp;
                float *g = dS + (size_t)i * Tc, dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int j = 0; j < T; j++) dot += p[j] * g[j];
#pragma omp simd
                for (int j = 0; j < T; j++) g[j] = p[j] * (g[j] - dot);
                memset(g + T, 0, (size_t)(Tc - T) * sizeof(float));
            }
            memset(dS + (size_t)T * Tc, 0, (size_t)(Tr - T) * Tc * sizeof(float));
            if (bf16) round_bf16_inplace(dS, (size_t)Tr * Tc);
            // dQ = scale·dS·K, dK = scale·dSᵀ·Q
            gemm_tile(G, hp, dS, Tc, Kp, hp, Tr, hp, T, scale);
            unpack(dq, D3, G, hp, T, hd);
            pack_t(dST, Tr, Tc, dS, Tc, T, T);
            gemm_tile(G, hp, dST, Tc, Qp, hp, Tr, hp, T, scale);
            unpack(dq + D, D3, G, hp, T, hd);
        }
        free(dYp);
    }
}

// ---------------------------------------------------------------- drop path

void scale_rows_forward(float *out, const float *inp, const float *scale, int B, size_t n) {
#pragma omp parallel for if ((size_t)B * n > PAR_MIN_WORK)
    for (int b = 0; b < B; b++) {
        float s = scale ? scale[b] : 1.0f;
        for (size_t i = 0; i < n; i++) out[(size_t)b * n + i] = s * inp[(size_t)b * n + i];
    }
}

// ---------------------------------------------------------------- L2 normalise

void l2norm_forward(float *out, float *norm, const float *inp, int N, int C, float eps) {
#pragma omp parallel for if ((size_t)N * C > PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int j = 0; j < C; j++) ss += x[j] * x[j];
        float n = sqrtf(ss);
        if (norm) norm[i] = n;
        float d = n > eps ? n : eps;
        for (int j = 0; j < C; j++) out[(size_t)i * C + j] = x[j] / d;
    }
}

void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int N,
                     int C, float eps) {
#pragma omp parallel for if ((size_t)N * C > PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        const float *y = out + (size_t)i * C, *dy = dout + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        if (norm[i] > eps) {
            // y = x/n: dx = (dy - y·(y·dy)) / n
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int j = 0; j < C; j++) dot += y[j] * dy[j];
            float inv = 1.0f / norm[i];
            for (int j = 0; j < C; j++) dx[j] = (dy[j] - y[j] * dot) * inv;
        } else {
            // The clamp is active: y = x/eps, no gradient through the norm.
            for (int j = 0; j < C; j++) dx[j] = dy[j] / eps;
        }
    }
}

// ---------------------------------------------------------------- weight norm

// ||v[o,:]|| with the same reduction for the forward and for the scales.
static inline float weightnorm_row_norm(const float *vr, int In) {
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int j = 0; j < In; j++) ss += vr[j] * vr[j];
    return sqrtf(ss);
}

void weightnorm_forward(float *w, float *vnorm, const float *g, const float *v, int O, int In) {
#pragma omp parallel for if ((size_t)O * In > PAR_MIN_WORK)
    for (int o = 0; o < O; o++) {
        const float *vr = v + (size_t)o * In;
        vnorm[o] = weightnorm_row_norm(vr, In);
        float f = g[o] / vnorm[o];
        for (int j = 0; j < In; j++) w[(size_t)o * In + j] = vr[j] * f;
    }
}

void weightnorm_scales(float *scale, float *vnorm, const float *g, const float *v, int O, int In) {
#pragma omp parallel for if ((size_t)O * In > PAR_MIN_WORK)
    for (int o = 0; o < O; o++) {
        vnorm[o] = weightnorm_row_norm(v + (size_t)o * In, In);
        scale[o] = g[o] / vnorm[o];
    }
}

void weightnorm_backward(float *dg, float *dv, const float *dw, const float *g, const float *v,
                         const float *vnorm, int O, int In) {
#pragma omp parallel for if ((size_t)O * In > PAR_MIN_WORK)
    for (int o = 0; o < O; o++) {
        const float *vr = v + (size_t)o * In, *dwr = dw + (size_t)o * In;
        float *dvr = dv + (size_t)o * In;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < In; j++) s += dwr[j] * vr[j];
        float n = vnorm[o];
        if (dg) dg[o] += s / n;
        float f = g[o] / n, c = s / (n * n);
        for (int j = 0; j < In; j++) dvr[j] += f * (dwr[j] - vr[j] * c);
    }
}

// ---------------------------------------------------------------- bicubic

// Source taps and weights of one output index, as PyTorch's
// compute_indices_weights_cubic (align_corners=False, A=-0.75) in float.
static void cubic_taps(int out_idx, float scale, int in_size, int idx[4], float wt[4]) {
    const float A = -0.75f;
    float real = scale * ((float)out_idx + 0.5f) - 0.5f;
    int64_t i0 = (int64_t)floorf(real);
    if (i0 > in_size - 1) i0 = in_size - 1;
    float t = real - (float)i0;
    if (t < 0.0f) t = 0.0f;
    if (t > 1.0f) t = 1.0f;
    float x1 = t + 1.0f, x2 = 1.0f - t, x3 = 2.0f - t;
    wt[0] = ((A * x1 - 5.0f * A) * x1 + 8.0f * A) * x1 - 4.0f * A;
    wt[1] = ((A + 2.0f) * t - (A + 3.0f)) * t * t + 1.0f;
    wt[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
    wt[3] = ((A * x3 - 5.0f * A) * x3 + 8.0f * A) * x3 - 4.0f * A;
    for (int j = 0; j < 4; j++) {
        int64_t k = i0 - 1 + j;
        idx[j] = (int)(k < 0 ? 0 : (k > in_size - 1 ? in_size - 1 : k));
    }
}

void bicubic_forward(float *out, const float *in, int IH, int IW, int OH, int OW, int C,
                     float scale_h, float scale_w) {
    for (int oy = 0; oy < OH; oy++) {
        int iy[4], ix[4];
        float wy[4], wx[4];
        cubic_taps(oy, scale_h, IH, iy, wy);
        for (int ox = 0; ox < OW; ox++) {
            cubic_taps(ox, scale_w, IW, ix, wx);
            float *o = out + ((size_t)oy * OW + ox) * C;
            for (int c = 0; c < C; c++) {
                float acc = 0.0f;
                for (int j = 0; j < 4; j++) {
                    const float *row = in + (size_t)iy[j] * IW * C + c;
                    float r = row[(size_t)ix[0] * C] * wx[0] + row[(size_t)ix[1] * C] * wx[1] +
                              row[(size_t)ix[2] * C] * wx[2] + row[(size_t)ix[3] * C] * wx[3];
                    acc += r * wy[j];
                }
                o[c] = acc;
            }
        }
    }
}

void bicubic_backward(float *din, const float *dout, int IH, int IW, int OH, int OW, int C,
                      float scale_h, float scale_w) {
    for (int oy = 0; oy < OH; oy++) {
        int iy[4], ix[4];
        float wy[4], wx[4];
        cubic_taps(oy, scale_h, IH, iy, wy);
        for (int ox = 0; ox < OW; ox++) {
            cubic_taps(ox, scale_w, IW, ix, wx);
            const float *g = dout + ((size_t)oy * OW + ox) * C;
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 4; i++) {
                    float f = wy[j] * wx[i];
                    float *d = din + ((size_t)iy[j] * IW + ix[i]) * C;
                    for (int c = 0; c < C; c++) d[c] += f * g[c];
                }
        }
    }
}
