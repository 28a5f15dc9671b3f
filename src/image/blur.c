// Pillow's GaussianBlur: three passes of an extended box blur (Gwosdek et al.
// 2011) horizontally, then three vertically, each pass rounding to uint8,
// edges replicated. The box radius and weights follow BoxBlur.c's float32
// arithmetic (docs/AUGMENTATION.md §6).
#include "image/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static float box_radius(float sigma, int passes) {
    float sigma2 = sigma * sigma / (float)passes;
    float L = (float)sqrt(12.0 * (double)sigma2 + 1.0);
    float l = (float)floor(((double)L - 1.0) / 2.0);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

// dst (w rows of h pixels) = transpose of src (h rows of w pixels), RGB.
static void transpose_px(uint8_t *restrict dst, const uint8_t *restrict src, int w, int h) {
    const int T = 16;
    for (int y0 = 0; y0 < h; y0 += T)
        for (int x0 = 0; x0 < w; x0 += T) {
            int y1 = y0 + T < h ? y0 + T : h, x1 = x0 + T < w ? x0 + T : w;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    const uint8_t *s = src + ((size_t)y * w + x) * 3;
                    uint8_t *d = dst + ((size_t)x * h + y) * 3;
                    d[0] = s[0];
                    d[1] = s[1];
                    d[2] = s[2];
                }
        }
}

// One vertical pass over the whole image (rows of m bytes), row-wise so the
// inner loops run over contiguous bytes; same arithmetic per column.
static void box_cols(uint8_t *restrict out, const uint8_t *restrict in, int h, size_t m, int ri, uint32_t ww,
                     uint32_t fw, uint32_t *restrict acc) {
    int last = h - 1;
    for (size_t x = 0; x < m; x++) acc[x] = 0;
    for (int k = -ri; k <= ri; k++) {
        int c = k < 0 ? 0 : k > last ? last : k;
        const uint8_t *row = in + (size_t)c * m;
        for (size_t x = 0; x < m; x++) acc[x] += row[x];
    }
    for (int y = 0; y < h; y++) {
        int l = y - ri - 1, r = y + ri + 1, dl = y - ri;
        l = l < 0 ? 0 : l > last ? last : l;
        r = r < 0 ? 0 : r > last ? last : r;
        dl = dl < 0 ? 0 : dl > last ? last : dl;
        const uint8_t *rl = in + (size_t)l * m, *rr = in + (size_t)r * m, *rd = in + (size_t)dl * m;
        uint8_t *o = out + (size_t)y * m;
        for (size_t x = 0; x < m; x++) {
            uint32_t bulk = acc[x] * ww + ((uint32_t)rl[x] + rr[x]) * fw;
            o[x] = (uint8_t)((bulk + (1u << 23)) >> 24);
            acc[x] += (uint32_t)rr[x] - rd[x];
        }
    }
}

void image_gaussian_blur(uint8_t *rgb, int w, int h, float sigma) {
    const int passes = 3;
    float R = box_radius(sigma, passes);
    if (R == 0.0f) return;
    int ri = (int)R;
    uint32_t ww = (uint32_t)((float)(1 << 24) / (R * 2 + 1));
    uint32_t fw = ((1u << 24) - (uint32_t)(ri * 2 + 1) * ww) / 2;
    // Horizontal passes as vertical passes over the transposed image (the
    // row-wise form vectorises), then the vertical passes; ping-pong buffers.
    size_t m = (size_t)w * 3, mt = (size_t)h * 3;
    uint8_t *t1 = mallocCheck(m * (size_t)h), *t2 = mallocCheck(m * (size_t)h);
    uint32_t *acc = mallocCheck(sizeof(uint32_t) * (m > mt ? m : mt));
    transpose_px(t1, rgb, w, h);
    box_cols(t2, t1, w, mt, ri, ww, fw, acc);
    box_cols(t1, t2, w, mt, ri, ww, fw, acc);
    box_cols(t2, t1, w, mt, ri, ww, fw, acc);
    transpose_px(t1, t2, h, w);
    box_cols(t2, t1, h, m, ri, ww, fw, acc);
    box_cols(t1, t2, h, m, ri, ww, fw, acc);
    box_cols(rgb, t1, h, m, ri, ww, fw, acc);
    free(t1);
    free(t2);
    free(acc);
}
