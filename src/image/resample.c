// Pillow's Resample.c semantics for 8-bit images: per-axis coefficient
// tables in double (pixel-centre convention, kernel stretched by the scale
// when shrinking = antialias, out-of-image taps dropped and renormalised),
// converted to 22-bit fixed point; horizontal pass first over only the rows
// the vertical pass reads, stored as clipped uint8, then the vertical pass.
#include "image/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_kernel(double x) {
    // Keys' cubic with a = -0.5, in Pillow's Horner form.
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double bilinear_kernel(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

// Coefficients for one axis: bounds[2o] = first tap, bounds[2o+1] = tap
// count; k[o·ksize + t] fixed-point weights. Returns ksize.
static int precompute_coeffs(int in_size, double in0, double in1, int out_size,
                             ResampleFilter filter, int **bounds_out, int32_t **k_out) {
    double support_k = filter == RESAMPLE_BICUBIC ? 2.0 : 1.0;
    double (*kernel)(double) = filter == RESAMPLE_BICUBIC ? bicubic_kernel : bilinear_kernel;
    double scale = (in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support_k * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = mallocCheck(sizeof(double) * (size_t)out_size * ksize);
    int *bounds = mallocCheck(sizeof(int) * 2 * (size_t)out_size);
    int32_t *kk = mallocCheck(sizeof(int32_t) * (size_t)out_size * ksize);
    double ss = 1.0 / filterscale;
    for (int o = 0; o < out_size; o++) {
        double center = in0 + (o + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = pre + (size_t)o * ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = kernel((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[2 * o] = xmin;
        bounds[2 * o + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++) {
        double w = pre[i] * (1 << PRECISION_BITS);
        kk[i] = pre[i] < 0 ? (int32_t)(-0.5 + w) : (int32_t)(0.5 + w);
    }
    free(pre);
    *bounds_out = bounds;
    *k_out = kk;
    return ksize;
}

static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS;  // arithmetic shift, as Pillow's table lookup
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void image_resize_region(uint8_t *dst, int dw, int dh, const uint8_t *src, int src_stride, int x0,
                         int y0, int cw, int ch, ResampleFilter filter) {
    DINO_ASSERT(dw > 0 && dh > 0 && cw > 0 && ch > 0);
    const uint8_t *base = src + (size_t)y0 * src_stride + (size_t)x0 * 3;
    int need_h = dw != cw, need_v = dh != ch;
    if (!need_h && !need_v) {
        for (int y = 0; y < dh; y++) memcpy(dst + (size_t)y * dw * 3, base + (size_t)y * src_stride, (size_t)dw * 3);
        return;
    }
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    int ksh = 0, ksv = precompute_coeffs(ch, 0.0, (double)ch, dh, filter, &bv, &kv);
    int ybox_first = 0, ybox_last = ch;
    if (need_v) {
        ybox_first = bv[0];
        ybox_last = bv[2 * dh - 2] + bv[2 * dh - 1];
    }
    // Horizontal pass over the needed rows into tmp (rows ybox_first..ybox_last-1).
    const uint8_t *vin = base;  // input of the vertical pass
    int vin_stride = src_stride;
    uint8_t *tmp = NULL;
    if (need_h) {
        ksh = precompute_coeffs(cw, 0.0, (double)cw, dw, filter, &bh, &kh);
        int rows = ybox_last - ybox_first;
        tmp = mallocCheck((size_t)rows * dw * 3);
        for (int y = 0; y < rows; y++) {
            const uint8_t *in = base + (size_t)(y + ybox_first) * src_stride;
            uint8_t *out = tmp + (size_t)y * dw * 3;
            for (int o = 0; o < dw; o++) {
                int xmin = bh[2 * o], xn = bh[2 * o + 1];
                const int32_t *k = kh + (size_t)o * ksh;
                const uint8_t *p = in + (size_t)xmin * 3;
                int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int t = 0; t < xn; t++) {
                    s0 += p[3 * t] * k[t];
                    s1 += p[3 * t + 1] * k[t];
                    s2 += p[3 * t + 2] * k[t];
                }
                out[3 * o] = clip8(s0);
                out[3 * o + 1] = clip8(s1);
                out[3 * o + 2] = clip8(s2);
            }
        }
        vin = tmp;
        vin_stride = dw * 3;
        if (need_v)
            for (int o = 0; o < dh; o++) bv[2 * o] -= ybox_first;
    }
    if (need_v) {
        // Row-wise accumulation (same per-pixel order of integer sums as
        // Pillow's loop, so the result is identical) lets the compiler vectorise.
        int row_bytes = dw * 3;
        int32_t *acc = mallocCheck(sizeof(int32_t) * (size_t)row_bytes);
        for (int o = 0; o < dh; o++) {
            int ymin = bv[2 * o], yn = bv[2 * o + 1];
            const int32_t *k = kv + (size_t)o * ksv;
            for (int x = 0; x < row_bytes; x++) acc[x] = 1 << (PRECISION_BITS - 1);
            for (int t = 0; t < yn; t++) {
                const uint8_t *p = vin + (size_t)(ymin + t) * vin_stride;
                int32_t kt = k[t];
                for (int x = 0; x < row_bytes; x++) acc[x] += p[x] * kt;
            }
            uint8_t *out = dst + (size_t)o * row_bytes;
            for (int x = 0; x < row_bytes; x++) out[x] = clip8(acc[x]);
        }
        free(acc);
    } else {
        memcpy(dst, tmp, (size_t)dh * dw * 3);
    }
    free(tmp);
    free(bh);
    free(kh);
    free(bv);
    free(kv);
}
