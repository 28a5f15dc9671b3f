// Pillow's Reduce.c semantics for 8-bit RGB: box averages in fixed point.
#include <stddef.h>
#include <stdint.h>

#include "image/ops.h"

// Pillow's division_UINT32(n, 8): 2^32 / (256·n), computed in float.
static uint32_t multiplier_for(int n) {
    float max_int = (float)(1 << 30) * 4.0f;
    return (uint32_t)(max_int / (float)(uint32_t)(256 * n));
}

void image_reduce(uint8_t *dst, const uint8_t *src, int w, int h, int fx, int fy) {
    int ow = (w + fx - 1) / fx, oh = (h + fy - 1) / fy;
    for (int y = 0; y < oh; y++) {
        int y0 = y * fy, y1 = y0 + fy < h ? y0 + fy : h;
        for (int x = 0; x < ow; x++) {
            int x0 = x * fx, x1 = x0 + fx < w ? x0 + fx : w;
            // Partial blocks of the last column and row average what they hold,
            // with their own multiplier, as ImagingReduceCorners.
            int n = (x1 - x0) * (y1 - y0);
            uint32_t mul = multiplier_for(n), amend = (uint32_t)n / 2;
            for (int c = 0; c < 3; c++) {
                uint32_t ss = amend;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) ss += src[((size_t)yy * w + xx) * 3 + c];
                dst[((size_t)y * ow + x) * 3 + c] = (uint8_t)((ss * mul) >> 24);
            }
        }
    }
}
