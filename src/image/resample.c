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

// Pillow's LANCZOS (ANTIALIAS): sinc windowed by sinc over [-3, 3).
static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_kernel(double x) {
    if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
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
    double support_k = filter == RESAMPLE_LANCZOS ? 3.0 : filter == RESAMPLE_BICUBIC ? 2.0 : 1.0;
    double (*kernel)(double) = filter == RESAMPLE_LANCZOS  ? lanczos_kernel
                               : filter == RESAMPLE_BICUBIC ? bicubic_kernel
                                                            : bilinear_kernel;
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

// out row o = clip8(2^21 + Σ_t k[o][t] · in row (first_o + t)), over rows of
// L bytes. Each byte's integer sum runs over t in increasing order like
// Pillow's loops, so results are identical; the row-wise form vectorises.
static void combine_rows(uint8_t *restrict out, int n_out, size_t out_stride, const uint8_t *restrict in,
                         size_t in_stride, size_t L, const int *bounds, const int32_t *kk, int ksize,
                         int32_t *restrict acc) {
    for (int o = 0; o < n_out; o++) {
        int first = bounds[2 * o], taps = bounds[2 * o + 1];
        const int32_t *k = kk + (size_t)o * ksize;
        for (size_t x = 0; x < L; x++) acc[x] = 1 << (PRECISION_BITS - 1);
        for (int t = 0; t < taps; t++) {
            const uint8_t *restrict p = in + (size_t)(first + t) * in_stride;
            int32_t kt = k[t];
            for (size_t x = 0; x < L; x++) acc[x] += p[x] * kt;
        }
        uint8_t *restrict q = out + (size_t)o * out_stride;
        for (size_t x = 0; x < L; x++) q[x] = clip8(acc[x]);
    }
}

// dst (w rows of h pixels) = transpose of src (h rows of w pixels), RGB, in tiles.
static void transpose_rgb(uint8_t *restrict dst, const uint8_t *restrict src, size_t src_stride, int w, int h) {
    const int T = 16;
    for (int y0 = 0; y0 < h; y0 += T)
        for (int x0 = 0; x0 < w; x0 += T) {
            int y1 = y0 + T < h ? y0 + T : h, x1 = x0 + T < w ? x0 + T : w;
            for (int y = y0; y < y1; y++) {
                const uint8_t *s = src + (size_t)y * src_stride;
                for (int x = x0; x < x1; x++) {
                    uint8_t *d = dst + ((size_t)x * h + y) * 3;
                    d[0] = s[3 * x];
                    d[1] = s[3 * x + 1];
                    d[2] = s[3 * x + 2];
                }
            }
        }
}

// Resamples the source region [bx0, bx1) x [by0, by1) (image coordinates
// of base, which is cw x ch pixels of row stride src_stride; taps stay
// inside it) to dst (dw, dh): Pillow's ImagingResample with a box.
static void resize_core(uint8_t *dst, int dw, int dh, const uint8_t *base, int src_stride, int cw,
                        int ch, double bx0, double by0, double bx1, double by1, int need_h,
                        int need_v, ResampleFilter filter) {
    if (!need_h && !need_v) {
        for (int y = 0; y < dh; y++) memcpy(dst + (size_t)y * dw * 3, base + (size_t)y * src_stride, (size_t)dw * 3);
        return;
    }
    int *bv = NULL;
    int32_t *kv = NULL;
    int ksv = 0, ybox_first = 0, ybox_last = ch;
    if (need_v) {
        ksv = precompute_coeffs(ch, by0, by1, dh, filter, &bv, &kv);
        ybox_first = bv[0];
        ybox_last = bv[2 * dh - 2] + bv[2 * dh - 1];
    }
    size_t maxlen = (size_t)3 * ((cw > dw ? cw : dw) > ch ? (cw > dw ? cw : dw) : ch);
    int32_t *acc = mallocCheck(sizeof(int32_t) * maxlen);
    const uint8_t *vin = base;  // input of the vertical pass
    size_t vin_stride = (size_t)src_stride;
    uint8_t *mid = NULL;
    if (need_h) {
        // Horizontal pass over the rows the vertical pass reads, done as a
        // row combination on the transposed region, then transposed back.
        int *bh;
        int32_t *kh;
        int ksh = precompute_coeffs(cw, bx0, bx1, dw, filter, &bh, &kh);
        int rows = ybox_last - ybox_first;
        uint8_t *tin = mallocCheck((size_t)cw * rows * 3);
        uint8_t *tout = mallocCheck((size_t)dw * rows * 3);
        transpose_rgb(tin, base + (size_t)ybox_first * src_stride, (size_t)src_stride, cw, rows);
        combine_rows(tout, dw, (size_t)rows * 3, tin, (size_t)rows * 3, (size_t)rows * 3, bh, kh, ksh, acc);
        mid = mallocCheck((size_t)rows * dw * 3);
        transpose_rgb(mid, tout, (size_t)rows * 3, rows, dw);
        free(tin);
        free(tout);
        free(bh);
        free(kh);
        vin = mid;
        vin_stride = (size_t)dw * 3;
        if (need_v)
            for (int o = 0; o < dh; o++) bv[2 * o] -= ybox_first;
    }
    if (need_v)
        combine_rows(dst, dh, (size_t)dw * 3, vin, vin_stride, (size_t)dw * 3, bv, kv, ksv, acc);
    else
        memcpy(dst, mid, (size_t)dh * dw * 3);
    free(acc);
    free(mid);
    free(bv);
    free(kv);
}

void image_resize_region(uint8_t *dst, int dw, int dh, const uint8_t *src, int src_stride, int x0,
                         int y0, int cw, int ch, ResampleFilter filter) {
    DINO_ASSERT(dw > 0 && dh > 0 && cw > 0 && ch > 0);
    const uint8_t *base = src + (size_t)y0 * src_stride + (size_t)x0 * 3;
    resize_core(dst, dw, dh, base, src_stride, cw, ch, 0.0, 0.0, (double)cw, (double)ch, dw != cw,
                dh != ch, filter);
}

void image_resize_box(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh,
                      const double box[4], ResampleFilter filter) {
    DINO_ASSERT(dw > 0 && dh > 0 && sw > 0 && sh > 0);
    DINO_ASSERT(box[0] >= 0 && box[1] >= 0 && box[2] <= sw && box[3] <= sh && box[0] < box[2] &&
                box[1] < box[3]);
    // Pillow resamples an axis unless the size and the box's extent both stay.
    int need_h = dw != sw || box[0] != 0 || box[2] != dw;
    int need_v = dh != sh || box[1] != 0 || box[3] != dh;
    resize_core(dst, dw, dh, src, sw * 3, sw, sh, box[0], box[1], box[2], box[3], need_h, need_v,
                filter);
}
