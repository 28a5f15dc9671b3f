// Pillow's GaussianBlur: three passes of an extended box blur (Gwosdek et al.
// 2011) horizontally, then three vertically, each pass rounding to uint8,
// edges replicated. The box radius and weights follow BoxBlur.c's float32
// arithmetic (AUGMENT.md §7).
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

// One horizontal pass over a row of n RGB pixels (in, out may not alias).
// For each channel: out[x] = (ww·Σ_{|k|<=ri} in[c(x+k)] + fw·(in[c(x-ri-1)] +
// in[c(x+ri+1)]) + 2^23) >> 24 with c() clamping to the row (edge replicated).
static void box_row(uint8_t *out, const uint8_t *in, int n, int ri, uint32_t ww, uint32_t fw) {
    int last = n - 1;
    uint32_t acc[3] = {0, 0, 0};
    for (int k = -ri; k <= ri; k++) {
        int c = k < 0 ? 0 : k > last ? last : k;
        for (int ch = 0; ch < 3; ch++) acc[ch] += in[3 * c + ch];
    }
    for (int x = 0; x < n; x++) {
        int l = x - ri - 1, r = x + ri + 1, dl = x - ri;
        l = l < 0 ? 0 : l > last ? last : l;
        r = r < 0 ? 0 : r > last ? last : r;
        dl = dl < 0 ? 0 : dl > last ? last : dl;
        for (int ch = 0; ch < 3; ch++) {
            uint32_t bulk = acc[ch] * ww + ((uint32_t)in[3 * l + ch] + in[3 * r + ch]) * fw;
            out[3 * x + ch] = (uint8_t)((bulk + (1u << 23)) >> 24);
            // Slide the window: drop x-ri, add x+ri+1.
            acc[ch] += (uint32_t)in[3 * r + ch] - in[3 * dl + ch];
        }
    }
}

// One vertical pass over the whole image (rows of m bytes), row-wise so the
// inner loops run over contiguous bytes; same arithmetic per column.
static void box_cols(uint8_t *out, const uint8_t *in, int h, size_t m, int ri, uint32_t ww, uint32_t fw,
                     uint32_t *acc) {
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
    size_t m = (size_t)w * 3;
    // Horizontal passes row by row.
    uint8_t *line = mallocCheck(m * 2);
    for (int y = 0; y < h; y++) {
        uint8_t *row = rgb + (size_t)y * m;
        box_row(line, row, w, ri, ww, fw);
        box_row(line + m, line, w, ri, ww, fw);
        box_row(row, line + m, w, ri, ww, fw);
    }
    free(line);
    // Vertical passes over the whole image, ping-ponging through one buffer.
    uint8_t *tmp = mallocCheck(m * (size_t)h);
    uint32_t *acc = mallocCheck(sizeof(uint32_t) * m);
    box_cols(tmp, rgb, h, m, ri, ww, fw, acc);
    box_cols(rgb, tmp, h, m, ri, ww, fw, acc);
    box_cols(tmp, rgb, h, m, ri, ww, fw, acc);
    memcpy(rgb, tmp, m * (size_t)h);
    free(acc);
    free(tmp);
}
