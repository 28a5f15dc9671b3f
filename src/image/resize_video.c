// Compiled with -ffp-contract=off (Makefile, src/image/): the weights are
// float computations that must round as OpenCV's and Pillow's do.
#include "image/resize_video.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"

// OpenCV's fixed-point linear weights: float (1 − f, f) times 2048, rounded
// to nearest even (saturate_cast<short>).
static void cv_weight(float f, short *a0, short *a1) {
    *a0 = (short)lrintf((1.0f - f) * 2048.0f);
    *a1 = (short)lrintf(f * 2048.0f);
}

void resize_cv_linear(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int cn) {
    double scale_x = 1.0 / ((double)dw / sw), scale_y = 1.0 / ((double)dh / sh);
    int *xofs = mallocCheck(sizeof(int) * dw);
    short *alpha = mallocCheck(sizeof(short) * 2 * dw);
    for (int dx = 0; dx < dw; dx++) {
        float fx = (float)((dx + 0.5) * scale_x - 0.5);
        int sx = (int)floorf(fx);
        fx -= (float)sx;
        // Columns outside the source take the edge pixel with full weight.
        if (sx < 0) fx = 0, sx = 0;
        if (sx >= sw - 1) fx = 0, sx = sw - 1;
        xofs[dx] = sx;
        cv_weight(fx, &alpha[2 * dx], &alpha[2 * dx + 1]);
    }
    // Horizontal pass of every source row into int rows (values × 2048).
    size_t rw = (size_t)dw * cn;
    int *rows = mallocCheck(sizeof(int) * rw * sh);
    for (int y = 0; y < sh; y++) {
        const uint8_t *s = src + (size_t)y * sw * cn;
        int *r = rows + (size_t)y * rw;
        for (int dx = 0; dx < dw; dx++) {
            int sx = xofs[dx], a0 = alpha[2 * dx], a1 = alpha[2 * dx + 1];
            int sx1 = sx + 1 < sw ? sx + 1 : sx;
            for (int c = 0; c < cn; c++)
                r[dx * cn + c] = s[sx * cn + c] * a0 + (sx + 1 < sw ? s[sx1 * cn + c] * a1 : 0);
        }
    }
    // Vertical pass: rows are not clamped in weight but in index (the two taps of
    // an edge row both read the edge), and each tap is scaled as OpenCV's SIMD
    // code does: (((r >> 4) · b) >> 16), summed, then (+2) >> 2.
    for (int dy = 0; dy < dh; dy++) {
        float fy = (float)((dy + 0.5) * scale_y - 0.5);
        int sy = (int)floorf(fy);
        fy -= (float)sy;
        short b0, b1;
        cv_weight(fy, &b0, &b1);
        int y0 = sy < 0 ? 0 : sy > sh - 1 ? sh - 1 : sy;
        int y1 = sy + 1 < 0 ? 0 : sy + 1 > sh - 1 ? sh - 1 : sy + 1;
        const int *r0 = rows + (size_t)y0 * rw, *r1 = rows + (size_t)y1 * rw;
        uint8_t *d = dst + (size_t)dy * rw;
        for (size_t i = 0; i < rw; i++) {
            // v_mul_hi of int16 lanes: the products are of (r >> 4) packed to int16
            // with saturation, which never saturates here (r ≤ 255·2048 → r >> 4 ≤ 32640).
            int v = (((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16);
            v = (v + 2) >> 2;
            d[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(rows);
    free(alpha);
    free(xofs);
}

void resize_pil_nearest(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh) {
    double ax = (double)sw / dw, ay = (double)sh / dh;
    int *xin = mallocCheck(sizeof(int) * dw);
    double xo = ax * 0.5;
    for (int x = 0; x < dw; x++) {
        int xi = (int)xo;
        xin[x] = xi < sw ? xi : sw - 1;
        xo += ax;
    }
    double yo = ay * 0.5;
    for (int y = 0; y < dh; y++) {
        int yi = (int)yo;
        if (yi > sh - 1) yi = sh - 1;
        const uint8_t *s = src + (size_t)yi * sw;
        for (int x = 0; x < dw; x++) dst[(size_t)y * dw + x] = s[xin[x]];
        yo += ay;
    }
    free(xin);
}

void video_frame_size(int w, int h, int size, int *out_w, int *out_h) {
    // read_frame: tw, th from the shorter side; the other side size·long/short in
    // floating point, floored to a multiple of 64.
    if (h > w) {
        *out_w = size;
        *out_h = (int)(floor((double)size * h / w / 64.0) * 64.0);
    } else {
        *out_h = size;
        *out_w = (int)(floor((double)size * w / h / 64.0) * 64.0);
    }
}
