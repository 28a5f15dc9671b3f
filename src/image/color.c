// Pillow's colour operations as torchvision's PIL path calls them:
// Image.blend-based ImageEnhance (Brightness, Contrast, Color), RGB->L,
// the HSV round trip of adjust_hue, grayscale, solarize, flip, and
// ToTensor+Normalize. Float32/double mixes follow AUGMENT.md §5-§9.
#include "image/ops.h"

#include <math.h>
#include <string.h>

const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

void image_hflip(uint8_t *rgb, int w, int h) {
    for (int y = 0; y < h; y++) {
        uint8_t *r = rgb + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = r[3 * a + c];
                r[3 * a + c] = r[3 * b + c];
                r[3 * b + c] = t;
            }
    }
}

static inline uint8_t rgb_l(const uint8_t *p) {
    return (uint8_t)(((uint32_t)p[0] * 19595 + (uint32_t)p[1] * 38470 + (uint32_t)p[2] * 7471 + 0x8000) >> 16);
}

void image_rgb_to_l(uint8_t *l, const uint8_t *rgb, int n) {
    for (int i = 0; i < n; i++) l[i] = rgb_l(rgb + 3 * i);
}

// Image.blend(im1, im2, alpha) for one byte: separate float32 multiply and add.
static inline uint8_t blend_in(int in1, int in2, float alpha) {
    return (uint8_t)(int)((float)in1 + alpha * (float)(in2 - in1));  // 0 <= alpha <= 1: truncation
}

static inline uint8_t blend_out(int in1, int in2, float alpha) {
    float t = (float)in1 + alpha * (float)(in2 - in1);
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)(int)t;
}

// out = blend(degenerate, image, f) where the degenerate is given per pixel
// (per_pixel = 1: deg[i] for every channel of pixel i) or constant (deg[0]).
static void blend_with(uint8_t *rgb, int n, const uint8_t *deg, int per_pixel, float f) {
    int inside = f >= 0.0f && f <= 1.0f;
    for (int i = 0; i < n; i++) {
        int d = per_pixel ? deg[i] : deg[0];
        for (int c = 0; c < 3; c++) {
            int v = rgb[3 * i + c];
            rgb[3 * i + c] = inside ? blend_in(d, v, f) : blend_out(d, v, f);
        }
    }
}

void image_brightness(uint8_t *rgb, int n, float f) {
    uint8_t zero = 0;
    blend_with(rgb, n, &zero, 0, f);
}

void image_contrast(uint8_t *rgb, int n, float f) {
    // m = int(mean(L) + 0.5), the mean from the 256-bin histogram in double.
    uint64_t hist[256] = {0};
    for (int i = 0; i < n; i++) hist[rgb_l(rgb + 3 * i)]++;
    double sum = 0.0;
    for (int v = 0; v < 256; v++) sum += (double)v * (double)hist[v];
    double mean = sum / (double)n;
    uint8_t m = (uint8_t)(int)(mean + 0.5);
    blend_with(rgb, n, &m, 0, f);
}

void image_saturation(uint8_t *rgb, int n, float f) {
    // The degenerate is RGB(L, L, L); blend per pixel without a buffer.
    int inside = f >= 0.0f && f <= 1.0f;
    for (int i = 0; i < n; i++) {
        int d = rgb_l(rgb + 3 * i);
        for (int c = 0; c < 3; c++) {
            int v = rgb[3 * i + c];
            rgb[3 * i + c] = inside ? blend_in(d, v, f) : blend_out(d, v, f);
        }
    }
}

void image_rgb_to_hsv_pixel(const uint8_t in[3], uint8_t out[3]) {
    int r = in[0], g = in[1], b = in[2];
    int mx = r > g ? r : g;
    if (b > mx) mx = b;
    int mn = r < g ? r : g;
    if (b < mn) mn = b;
    if (mx == mn) {
        out[0] = 0;
        out[1] = 0;
        out[2] = (uint8_t)mx;
        return;
    }
    float cr = (float)(mx - mn);
    float s = cr / (float)mx;
    float rc = (float)(mx - r) / cr;
    float gc = (float)(mx - g) / cr;
    float bc = (float)(mx - b) / cr;
    float h;
    if (r == mx) h = bc - gc;
    else if (g == mx) h = (float)((2.0 + (double)rc) - (double)bc);
    else h = (float)((4.0 + (double)gc) - (double)rc);
    h = (float)fmod((double)h / 6.0 + 1.0, 1.0);
    int hi = (int)((double)h * 255.0), si = (int)((double)s * 255.0);
    out[0] = (uint8_t)(hi < 0 ? 0 : hi > 255 ? 255 : hi);
    out[1] = (uint8_t)(si < 0 ? 0 : si > 255 ? 255 : si);
    out[2] = (uint8_t)mx;
}

static inline uint8_t clip_round(double x) {
    long v = lround(x);  // C round: half away from zero
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void image_hsv_to_rgb_pixel(const uint8_t in[3], uint8_t out[3]) {
    int H = in[0], S = in[1], V = in[2];
    if (S == 0) {
        out[0] = out[1] = out[2] = (uint8_t)V;
        return;
    }
    double hh = H * 6.0 / 255.0;
    int i = (int)floor(hh);
    float f = (float)(hh - i);
    float fs = (float)(S / 255.0);
    uint8_t p = clip_round(V * (1.0 - (double)fs));
    uint8_t q = clip_round(V * (1.0 - (double)(float)(fs * f)));
    uint8_t t = clip_round(V * (1.0 - (double)fs * (1.0 - (double)f)));
    uint8_t v = (uint8_t)V;
    switch (i % 6) {
    case 0: out[0] = v; out[1] = t; out[2] = p; break;
    case 1: out[0] = q; out[1] = v; out[2] = p; break;
    case 2: out[0] = p; out[1] = v; out[2] = t; break;
    case 3: out[0] = p; out[1] = q; out[2] = v; break;
    case 4: out[0] = t; out[1] = p; out[2] = v; break;
    default: out[0] = v; out[1] = p; out[2] = q; break;
    }
}

void image_hue(uint8_t *rgb, int n, double hue_factor) {
    int shift = ((int)(hue_factor * 255.0)) & 255;  // trunc, then wrap as uint8
    for (int i = 0; i < n; i++) {
        uint8_t hsv[3];
        image_rgb_to_hsv_pixel(rgb + 3 * i, hsv);
        hsv[0] = (uint8_t)(hsv[0] + shift);
        image_hsv_to_rgb_pixel(hsv, rgb + 3 * i);
    }
}

void image_grayscale(uint8_t *rgb, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t l = rgb_l(rgb + 3 * i);
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = l;
    }
}

void image_solarize(uint8_t *rgb, int n) {
    for (int i = 0; i < 3 * n; i++)
        if (rgb[i] >= 128) rgb[i] = (uint8_t)(255 - rgb[i]);
}

void image_to_tensor(float *out, const uint8_t *rgb, int w, int h, const float mean[3],
                     const float std[3]) {
    size_t n = (size_t)w * h;
    for (int c = 0; c < 3; c++) {
        float m = mean[c], s = std[c];
        float *o = out + c * n;
        for (size_t i = 0; i < n; i++) o[i] = ((float)rgb[3 * i + c] / 255.0f - m) / s;
    }
}
