// Pillow's colour operations as torchvision's PIL path calls them:
// Image.blend-based ImageEnhance (Brightness, Contrast, Color), RGB->L,
// the HSV round trip of adjust_hue, grayscale, solarize, flip, and
// ToTensor+Normalize. Float32/double mixes follow docs/AUGMENTATION.md §4-§8.
#include "image/ops.h"

#include <math.h>
#include <pthread.h>
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

static void blend_const_lut(uint8_t *rgb, int n, int d, float f) {
    uint8_t lut[256];
    int inside = f >= 0.0f && f <= 1.0f;
    for (int v = 0; v < 256; v++) lut[v] = inside ? blend_in(d, v, f) : blend_out(d, v, f);
    for (int i = 0; i < 3 * n; i++) rgb[i] = lut[rgb[i]];
}

void image_brightness(uint8_t *rgb, int n, float f) { blend_const_lut(rgb, n, 0, f); }

void image_contrast(uint8_t *rgb, int n, float f) {
    // m = int(mean(L) + 0.5), the mean from the 256-bin histogram in double.
    uint64_t hist[256] = {0};
    for (int i = 0; i < n; i++) hist[rgb_l(rgb + 3 * i)]++;
    double sum = 0.0;
    for (int v = 0; v < 256; v++) sum += (double)v * (double)hist[v];
    double mean = sum / (double)n;
    blend_const_lut(rgb, n, (int)(mean + 0.5), f);
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
    // Only the two quotients a branch uses are computed (same values).
    float h;
    if (r == mx) h = (float)(mx - b) / cr - (float)(mx - g) / cr;
    else if (g == mx) h = (float)((2.0 + (double)((float)(mx - r) / cr)) - (double)((float)(mx - b) / cr));
    else h = (float)((4.0 + (double)((float)(mx - g) / cr)) - (double)((float)(mx - r) / cr));
    // fmod(x, 1.0) for x = h/6 + 1 in [5/6, 11/6): subtracting 1 is exact there.
    double x = (double)h / 6.0 + 1.0;
    h = (float)(x >= 1.0 ? x - 1.0 : x);
    int hi = (int)((double)h * 255.0), si = (int)((double)s * 255.0);
    out[0] = (uint8_t)(hi < 0 ? 0 : hi > 255 ? 255 : hi);
    out[1] = (uint8_t)(si < 0 ? 0 : si > 255 ? 255 : si);
    out[2] = (uint8_t)mx;
}

// Fast exact HSV round trip for adjust_hue. Pillow's H depends only on
// which channel is the maximum (tested r, then g), which is the minimum, the
// range cr = max - min and the remaining channel's distance d from the
// maximum; S only on (max, cr). Both are tabulated once from the reference
// per-pixel function above (so they are equal by construction; the tests
// also compare all 2^24 colours with Pillow). HSV -> RGB uses per-H and
// per-S tables for the divisions and floor, then Pillow's double arithmetic.
static uint8_t hue_table[6][256][256];  // [case][cr][d]
static uint8_t sat_table[256][256];     // [max][cr]
static int sector_table[256];
static float frac_table[256], fs_table[256];
static pthread_once_t hsv_once = PTHREAD_ONCE_INIT;

// The case of a non-grey pixel and its representative (r, g, b) with the
// same differences: max = cr, min = 0.
static inline int hue_case(int r, int g, int b, int mx, int mn, int *d) {
    if (r == mx) {
        if (g == mn) { *d = mx - b; return 0; }
        *d = mx - g; return 1;
    }
    if (g == mx) {
        if (r == mn) { *d = mx - b; return 2; }
        *d = mx - r; return 3;
    }
    if (r == mn) { *d = mx - g; return 4; }
    *d = mx - r; return 5;
}

static void hsv_tables_init(void) {
    for (int cr = 1; cr < 256; cr++)
        for (int d = 0; d <= cr; d++) {
            uint8_t rep[6][3] = {{(uint8_t)cr, 0, (uint8_t)(cr - d)}, {(uint8_t)cr, (uint8_t)(cr - d), 0},
                                 {0, (uint8_t)cr, (uint8_t)(cr - d)}, {(uint8_t)(cr - d), (uint8_t)cr, 0},
                                 {0, (uint8_t)(cr - d), (uint8_t)cr}, {(uint8_t)(cr - d), 0, (uint8_t)cr}};
            for (int c = 0; c < 6; c++) {
                uint8_t hsv[3];
                image_rgb_to_hsv_pixel(rep[c], hsv);
                hue_table[c][cr][d] = hsv[0];
            }
        }
    for (int mx = 1; mx < 256; mx++)
        for (int cr = 1; cr <= mx; cr++) {
            uint8_t px[3] = {(uint8_t)mx, (uint8_t)(mx - cr), (uint8_t)(mx - cr)}, hsv[3];
            image_rgb_to_hsv_pixel(px, hsv);
            sat_table[mx][cr] = hsv[1];
        }
    for (int v = 0; v < 256; v++) {
        double hh = v * 6.0 / 255.0;
        int i = (int)floor(hh);
        sector_table[v] = i % 6;
        frac_table[v] = (float)(hh - i);
        fs_table[v] = (float)(v / 255.0);
    }
}

static inline int round_pos(double x) {  // C round for x >= 0, clipped to 255
    int v = (int)x;
    v += (x - (double)v) >= 0.5;
    return v > 255 ? 255 : v;
}

void image_hue(uint8_t *rgb, int n, double hue_factor) {
    pthread_once(&hsv_once, hsv_tables_init);
    int shift = ((int)(hue_factor * 255.0)) & 255;  // trunc, then wrap as uint8
    static const uint8_t ridx[6] = {0, 2, 1, 1, 3, 0}, gidx[6] = {3, 0, 0, 2, 1, 1},
                         bidx[6] = {1, 1, 3, 0, 0, 2};  // into {V, P, Q, T}
    for (int k = 0; k < n; k++) {
        uint8_t *px = rgb + 3 * (size_t)k;
        int r = px[0], g = px[1], b = px[2];
        int mx = r > g ? r : g;
        mx = mx > b ? mx : b;
        int mn = r < g ? r : g;
        mn = mn < b ? mn : b;
        if (mx == mn) continue;  // S = 0: the round trip returns (V, V, V) = the pixel
        int d, cr = mx - mn;
        int c = hue_case(r, g, b, mx, mn, &d);
        int H = (hue_table[c][cr][d] + shift) & 255, S = sat_table[mx][cr];
        if (S == 0) {
            px[0] = px[1] = px[2] = (uint8_t)mx;
            continue;
        }
        float f = frac_table[H], fs = fs_table[S];
        double V = (double)mx;
        int comp[4];
        comp[0] = mx;
        comp[1] = round_pos(V * (1.0 - (double)fs));
        comp[2] = round_pos(V * (1.0 - (double)(float)(fs * f)));
        comp[3] = round_pos(V * (1.0 - (double)fs * (1.0 - (double)f)));
        int sec = sector_table[H];
        px[0] = (uint8_t)comp[ridx[sec]];
        px[1] = (uint8_t)comp[gidx[sec]];
        px[2] = (uint8_t)comp[bidx[sec]];
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
