// Pillow's GaussianBlur: three passes of an extended box blur (Gwosdek et al.
// 2011) horizontally, then three vertically, each pass rounding to uint8,
// edges replicated. The box radius and weights follow BoxBlur.c's float32
// arithmetic (AUGMENT.md §7).
#include "image/ops.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"

static float box_radius(float sigma, int passes) {
    float sigma2 = sigma * sigma / (float)passes;
    float L = (float)sqrt(12.0 * (double)sigma2 + 1.0);
    float l = (float)floor(((double)L - 1.0) / 2.0);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

// One pass over n samples spaced `step` apart (in, out may not alias).
static void box_line(uint8_t *out, const uint8_t *in, int n, size_t step, int ri, uint32_t ww,
                     uint32_t fw) {
    int last = n - 1;
    // Running sum over the window [x-ri, x+ri] with clamped indices.
    uint32_t acc = 0;
    for (int k = -ri; k <= ri; k++) {
        int c = k < 0 ? 0 : k > last ? last : k;
        acc += in[(size_t)c * step];
    }
    for (int x = 0; x < n; x++) {
        int l = x - ri - 1, r = x + ri + 1;
        int lc = l < 0 ? 0 : l > last ? last : l;
        int rc = r < 0 ? 0 : r > last ? last : r;
        uint32_t bulk = acc * ww + ((uint32_t)in[(size_t)lc * step] + in[(size_t)rc * step]) * fw;
        out[(size_t)x * step] = (uint8_t)((bulk + (1u << 23)) >> 24);
        // Slide: drop x-ri, add x+ri+1.
        int dl = x - ri, dr = x + ri + 1;
        dl = dl < 0 ? 0 : dl > last ? last : dl;
        dr = dr < 0 ? 0 : dr > last ? last : dr;
        acc += (uint32_t)in[(size_t)dr * step] - in[(size_t)dl * step];
    }
}

void image_gaussian_blur(uint8_t *rgb, int w, int h, float sigma) {
    const int passes = 3;
    float R = box_radius(sigma, passes);
    if (R == 0.0f) return;
    int ri = (int)R;
    uint32_t ww = (uint32_t)((float)(1 << 24) / (R * 2 + 1));
    uint32_t fw = ((1u << 24) - (uint32_t)(ri * 2 + 1) * ww) / 2;
    int maxn = w > h ? w : h;
    uint8_t *line = mallocCheck((size_t)maxn * 2);
    uint8_t *a = line, *b = line + maxn;
    // Horizontal passes, row by row and channel by channel.
    for (int y = 0; y < h; y++)
        for (int c = 0; c < 3; c++) {
            uint8_t *row = rgb + (size_t)y * w * 3 + c;
            for (int x = 0; x < w; x++) a[x] = row[(size_t)x * 3];
            for (int p = 0; p < passes; p++) {
                box_line(b, a, w, 1, ri, ww, fw);
                uint8_t *t = a; a = b; b = t;
            }
            for (int x = 0; x < w; x++) row[(size_t)x * 3] = a[x];
        }
    // Vertical passes, column by column.
    for (int x = 0; x < w; x++)
        for (int c = 0; c < 3; c++) {
            uint8_t *col = rgb + (size_t)x * 3 + c;
            size_t stride = (size_t)w * 3;
            for (int y = 0; y < h; y++) a[y] = col[y * stride];
            for (int p = 0; p < passes; p++) {
                box_line(b, a, h, 1, ri, ww, fw);
                uint8_t *t = a; a = b; b = t;
            }
            for (int y = 0; y < h; y++) col[y * stride] = a[y];
        }
    free(line);
}
