// Convolutions of conv.h: oneDNN's primitives (conv_onednn.c) when the fp32
// GEMM backend is oneDNN, else (and where oneDNN has none) im2col + GEMM
// (gemm.h). Activations are channel-major (C, B, H, W), so a chunk of nb
// images of one channel is contiguous and a convolution over the chunk is one
// GEMM whose output rows land straight in the (OC, B, OH, OW) result (leading
// dimension B·OH·OW): out[:, chunk] = W (OC, C·k·k) · cols (C·k·k, nb·OH·OW).
// 1x1 stride-1 convolutions, most of a bottleneck's FLOPs, need no unfolding
// at all and run as one GEMM over the whole batch. GEMMs are called from
// serial code only; the unfolding loops are OpenMP-parallel.
#include <string.h>

#include "common.h"
#include "conv.h"
#include "conv_onednn.h"
#include "gemm.h"

#define PAR_MIN_WORK 32768

int conv_out_size(int n, int k, int stride, int pad) { return (n + 2 * pad - k) / stride + 1; }

void conv_shape_set(ConvShape *s, int B, int H, int W) {
    s->B = B, s->H = H, s->W = W;
    s->OH = conv_out_size(H, s->k, s->stride, s->pad);
    s->OW = conv_out_size(W, s->k, s->stride, s->pad);
    DINO_ASSERT(s->OH >= 1 && s->OW >= 1);
}

static int is_pointwise(const ConvShape *s) { return s->k == 1 && s->stride == 1 && s->pad == 0; }

// oneDNN's primitives beat the GEMMs here even on 1x1 convolutions, whose
// operands they reorder (docs/ENGINE.md, "Convolutions").
static int use_onednn(void) { return gemm_f32_backend() == GEMM_ONEDNN; }

// Images per GEMM: as many as fit CONV_SCRATCH_FLOATS of columns, at least one.
static int chunk_images(const ConvShape *s) {
    size_t per = (size_t)s->C * s->k * s->k * s->OH * s->OW;
    size_t nb = CONV_SCRATCH_FLOATS / (per ? per : 1);
    if (nb < 1) nb = 1;
    if (nb > (size_t)s->B) nb = (size_t)s->B;
    return (int)nb;
}

size_t conv_scratch_floats(const ConvShape *s) {
    if (is_pointwise(s)) return 0;
    return (size_t)chunk_images(s) * s->C * s->k * s->k * s->OH * s->OW;
}

// cols (C·k·k, nb·OH·OW) from images b0..b0+nb-1 of in (C, B, H, W); row
// (c, ky, kx) in Conv2d's weight order, zero where the window is in the padding.
static void im2col(float *cols, const float *in, const ConvShape *s, int b0, int nb) {
    int k = s->k, K = s->C * k * k, OH = s->OH, OW = s->OW;
    size_t ncol = (size_t)nb * OH * OW, plane = (size_t)s->H * s->W;
#pragma omp parallel for if ((size_t)K * ncol > PAR_MIN_WORK)
    for (int r = 0; r < K; r++) {
        int c = r / (k * k), ky = (r / k) % k, kx = r % k;
        float *dst = cols + (size_t)r * ncol;
        for (int b = 0; b < nb; b++) {
            const float *src = in + ((size_t)c * s->B + b0 + b) * plane;
            for (int oy = 0; oy < OH; oy++) {
                int iy = oy * s->stride - s->pad + ky;
                float *d = dst + ((size_t)b * OH + oy) * OW;
                if (iy < 0 || iy >= s->H) {
                    memset(d, 0, (size_t)OW * sizeof(float));
                    continue;
                }
                const float *row = src + (size_t)iy * s->W;
                for (int ox = 0; ox < OW; ox++) {
                    int ix = ox * s->stride - s->pad + kx;
                    d[ox] = (ix >= 0 && ix < s->W) ? row[ix] : 0.0f;
                }
            }
        }
    }
}

// The adjoint of im2col, accumulated into din's images b0..b0+nb-1. Each
// thread owns whole channels, so no two threads write the same pixel.
static void col2im_add(float *din, const float *cols, const ConvShape *s, int b0, int nb) {
    int k = s->k, OH = s->OH, OW = s->OW;
    size_t ncol = (size_t)nb * OH * OW, plane = (size_t)s->H * s->W;
#pragma omp parallel for if ((size_t)s->C * k * k * ncol > PAR_MIN_WORK)
    for (int c = 0; c < s->C; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *src = cols + ((size_t)(c * k + ky) * k + kx) * ncol;
                for (int b = 0; b < nb; b++) {
                    float *dst = din + ((size_t)c * s->B + b0 + b) * plane;
                    for (int oy = 0; oy < OH; oy++) {
                        int iy = oy * s->stride - s->pad + ky;
                        if (iy < 0 || iy >= s->H) continue;
                        const float *g = src + ((size_t)b * OH + oy) * OW;
                        float *row = dst + (size_t)iy * s->W;
                        for (int ox = 0; ox < OW; ox++) {
                            int ix = ox * s->stride - s->pad + kx;
                            if (ix >= 0 && ix < s->W) row[ix] += g[ox];
                        }
                    }
                }
            }
}

void conv2d_forward(float *out, const float *in, const float *w, const ConvShape *s, float *scratch) {
    if (use_onednn() && onednn_conv_forward(out, in, w, s) == 0) return;
    int K = s->C * s->k * s->k;
    size_t ohw = (size_t)s->OH * s->OW, ld = (size_t)s->B * ohw;
    if (is_pointwise(s)) {  // out (OC, B·HW) = w (OC, C) · in (C, B·HW)
        gemm_f32(GEMM_N, GEMM_N, s->OC, (int)ld, K, 1.0f, w, K, in, (int)ld, 0.0f, out, (int)ld);
        return;
    }
    int nbmax = chunk_images(s);
    for (int b0 = 0; b0 < s->B; b0 += nbmax) {
        int nb = s->B - b0 < nbmax ? s->B - b0 : nbmax;
        int n = (int)(nb * ohw);
        im2col(scratch, in, s, b0, nb);
        gemm_f32(GEMM_N, GEMM_N, s->OC, n, K, 1.0f, w, K, scratch, n, 0.0f, out + (size_t)b0 * ohw,
                 (int)ld);
    }
}

void conv2d_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                     const ConvShape *s, float *scratch, int accumulate) {
    if (use_onednn()) {  // what oneDNN did is off the list below
        if (dw && onednn_conv_backward_weights(dw, dout, in, s) == 0) dw = NULL;
        if (din && onednn_conv_backward_data(din, dout, w, s, accumulate) == 0) din = NULL;
        if (!dw && !din) return;
    }
    int K = s->C * s->k * s->k;
    size_t ohw = (size_t)s->OH * s->OW, ld = (size_t)s->B * ohw;
    if (is_pointwise(s)) {
        if (dw)  // dw (OC, C) += dout (OC, B·HW) · inᵀ
            gemm_f32(GEMM_N, GEMM_T, s->OC, K, (int)ld, 1.0f, dout, (int)ld, in, (int)ld, 1.0f, dw, K);
        if (din)  // din (C, B·HW) = wᵀ · dout
            gemm_f32(GEMM_T, GEMM_N, K, (int)ld, s->OC, 1.0f, w, K, dout, (int)ld,
                     accumulate ? 1.0f : 0.0f, din, (int)ld);
        return;
    }
    if (din && !accumulate) memset(din, 0, (size_t)s->C * s->B * s->H * s->W * sizeof(float));
    int nbmax = chunk_images(s);
    for (int b0 = 0; b0 < s->B; b0 += nbmax) {
        int nb = s->B - b0 < nbmax ? s->B - b0 : nbmax;
        int n = (int)(nb * ohw);
        const float *g = dout + (size_t)b0 * ohw;
        if (dw) {
            im2col(scratch, in, s, b0, nb);
            gemm_f32(GEMM_N, GEMM_T, s->OC, K, n, 1.0f, g, (int)ld, scratch, n, 1.0f, dw, K);
        }
        if (din) {  // dcols (K, n) = wᵀ · dout chunk, folded back into din
            gemm_f32(GEMM_T, GEMM_N, K, n, s->OC, 1.0f, w, K, g, (int)ld, 0.0f, scratch, n);
            col2im_add(din, scratch, s, b0, nb);
        }
    }
}

// ---------------------------------------------------------------- pooling, ReLU, layout

void relu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(float *dx, const float *dout, const float *out, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) dx[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

void maxpool_forward(float *out, int *argmax, const float *in, int CB, int H, int W, int OH,
                     int OW, int k, int stride, int pad) {
#pragma omp parallel for if ((size_t)CB * OH * OW * k * k > PAR_MIN_WORK)
    for (int p = 0; p < CB; p++) {
        const float *src = in + (size_t)p * H * W;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float best = 0.0f;
                int arg = -1;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < k; kx++) {
                        int ix = ox * stride - pad + kx;
                        if (ix < 0 || ix >= W) continue;
                        float v = src[iy * W + ix];
                        if (arg < 0 || v > best || v != v) best = v, arg = iy * W + ix;
                    }
                }
                size_t o = ((size_t)p * OH + oy) * OW + ox;
                out[o] = best;
                if (argmax) argmax[o] = arg;
            }
    }
}

void maxpool_backward(float *din, const float *dout, const int *argmax, int CB, int H, int W,
                      int OH, int OW) {
#pragma omp parallel for if ((size_t)CB * H * W > PAR_MIN_WORK)
    for (int p = 0; p < CB; p++) {
        float *dst = din + (size_t)p * H * W;
        memset(dst, 0, (size_t)H * W * sizeof(float));
        for (int o = 0; o < OH * OW; o++)
            dst[argmax[(size_t)p * OH * OW + o]] += dout[(size_t)p * OH * OW + o];
    }
}

void avgpool_forward(float *feat, const float *in, int C, int B, int HW) {
#pragma omp parallel for if ((size_t)C * B * HW > PAR_MIN_WORK)
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)c * B + b) * HW;
            float s = 0.0f;
            for (int i = 0; i < HW; i++) s += x[i];
            feat[(size_t)b * C + c] = s / (float)HW;
        }
}

void avgpool_backward(float *din, const float *dfeat, int C, int B, int HW) {
#pragma omp parallel for if ((size_t)C * B * HW > PAR_MIN_WORK)
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++) {
            float g = dfeat[(size_t)b * C + c] / (float)HW;
            float *d = din + ((size_t)c * B + b) * HW;
            for (int i = 0; i < HW; i++) d[i] = g;
        }
}

void nchw_to_cnhw(float *out, const float *in, int B, int C, int HW) {
#pragma omp parallel for collapse(2) if ((size_t)B * C * HW > PAR_MIN_WORK)
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++)
            memcpy(out + ((size_t)c * B + b) * HW, in + ((size_t)b * C + c) * HW,
                   (size_t)HW * sizeof(float));
}
