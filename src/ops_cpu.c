// CPU fp32 layer functions declared in ops.h: cblas for every GEMM (called
// only from serial code, since the OpenMP build of OpenBLAS nests badly), and
// OpenMP loops for the element-wise and row-wise kernels, which are written so
// that GCC vectorises them.
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// Parallelise a loop only when it has enough work to pay for waking threads.
#define PAR_MIN_WORK 32768

// ---------------------------------------------------------------- linear

void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC) {
    // Filling out with the bias and letting the GEMM accumulate (beta = 1)
    // costs one pass over out, instead of a zeroing pass and a bias pass.
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for if ((size_t)N * OC > PAR_MIN_WORK)
        for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out,
                OC);
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    if (dinp)  // dinp (N,C) = dout (N,OC) · w (OC,C)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C,
                    0.0f, dinp, C);
    if (dw)  // dw (OC,C) += doutᵀ · inp
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                    1.0f, dw, C);
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
    int all_one = 1;
    if (scale)
        for (int s = 0; s < B; s++) all_one &= scale[s] == 1.0f;
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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, OC, C, 1.0f, inp, C, w, C,
                    1.0f, out, OC);
    } else {
        for (int s = 0; s < B; s++) {
            if (scale[s] == 0.0f) continue;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, scale[s],
                        inp + (size_t)s * T * C, C, w, C, 1.0f, out + (size_t)s * T * OC, OC);
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

// exp(x) for x <= 0 (softmax after subtracting the row max), vectorisable:
// Cody-Waite range reduction and the Cephes polynomial, ~1 ulp.
#pragma omp declare simd
static inline float exp_neg(float x) {
    if (x < -87.0f) x = -87.0f;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// erf as PyTorch's vectorised CPU kernel computes it (Abramowitz & Stegun
// 7.1.26, |error| < 1.5e-7, with FMAs in the same places), so our GELU tracks
// nn.GELU() on CPU more closely than libm's erff would, and vectorises.
#pragma omp declare simd
static inline float erf_fast(float x) {
    float ax = fabsf(x);
    float t = 1.0f / fmaf(0.3275911f, ax, 1.0f);
    float r = fmaf(fmaf(fmaf(fmaf(1.061405429f, t, -1.453152027f), t, 1.421413741f), t,
                        -0.284496736f),
                   t, 0.254829592f);
    float e = exp_neg(-(x * x));
    float y = fmaf(-e * t, r, 1.0f);
    return x < 0.0f ? -y : y;
}

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x * 0.5f * (1.0f + erf_fast(x * (float)M_SQRT1_2));
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for simd if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erf_fast(x * (float)M_SQRT1_2));
        float pdf = inv_sqrt_2pi * exp_neg(x * x * -0.5f);
        dinp[i] = dout[i] * (cdf + x * pdf);
    }
}

// ---------------------------------------------------------------- attention

static void softmax_rows(float *x, size_t rows, int T) {
#pragma omp parallel for if (rows * T > PAR_MIN_WORK)
    for (size_t i = 0; i < rows; i++) {
        float *r = x + i * T;
        float mx = r[0];
#pragma omp simd reduction(max : mx)
        for (int j = 1; j < T; j++) mx = r[j] > mx ? r[j] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < T; j++) {
            float e = exp_neg(r[j] - mx);
            r[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < T; j++) r[j] *= inv;
    }
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int D, int NH) {
    int hd = D / NH, D3 = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * D3 + h * hd;
            float *S = att + ((size_t)b * NH + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, D3, q + D, D3,
                        0.0f, S, T);
        }
    softmax_rows(att, (size_t)B * NH * T, T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *v = qkv + (size_t)b * T * D3 + 2 * D + h * hd;
            const float *P = att + ((size_t)b * NH + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, v, D3, 0.0f,
                        out + (size_t)b * T * D + h * hd, D);
        }
}

void attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                        const float *att, int B, int T, int D, int NH) {
    int hd = D / NH, D3 = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t o = ((size_t)b * NH + h) * T * T;
            const float *dy = dout + (size_t)b * T * D + h * hd;
            const float *v = qkv + (size_t)b * T * D3 + 2 * D + h * hd;
            float *dv = dqkv + (size_t)b * T * D3 + 2 * D + h * hd;
            // dP = dY·Vᵀ, dV = Pᵀ·dY
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dy, D, v, D3, 0.0f,
                        datt + o, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, att + o, T, dy, D,
                        0.0f, dv, D3);
        }
    // Softmax backward in place: dS = P ⊙ (dP - Σ_j P·dP).
    size_t rows = (size_t)B * NH * T;
#pragma omp parallel for if (rows * T > PAR_MIN_WORK)
    for (size_t i = 0; i < rows; i++) {
        const float *P = att + i * T;
        float *dP = datt + i * T;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < T; j++) dot += P[j] * dP[j];
        for (int j = 0; j < T; j++) dP[j] = P[j] * (dP[j] - dot);
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t o = ((size_t)b * NH + h) * T * T;
            const float *q = qkv + (size_t)b * T * D3 + h * hd;
            float *dq = dqkv + (size_t)b * T * D3 + h * hd;
            // dQ = scale·dS·K, dK = scale·dSᵀ·Q
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, datt + o, T,
                        q + D, D3, 0.0f, dq, D3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, datt + o, T, q, D3,
                        0.0f, dq + D, D3);
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

void weightnorm_forward(float *w, float *vnorm, const float *g, const float *v, int O, int In) {
#pragma omp parallel for if ((size_t)O * In > PAR_MIN_WORK)
    for (int o = 0; o < O; o++) {
        const float *vr = v + (size_t)o * In;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int j = 0; j < In; j++) ss += vr[j] * vr[j];
        float n = sqrtf(ss);
        vnorm[o] = n;
        float f = g[o] / n;
        for (int j = 0; j < In; j++) w[(size_t)o * In + j] = vr[j] * f;
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
