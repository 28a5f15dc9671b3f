#include "eval/retrieval_input.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "image/ops.h"

// Pillow's round_aspect: floor or ceil of `number`, whichever the key
// scores lower (floor on a tie), at least 1.
static int round_aspect(double number, double aspect, int fixed, int width_side) {
    int lo = (int)floor(number), hi = (int)ceil(number);
    double klo, khi;
    if (width_side) {  // the width: |aspect − n / y|
        klo = fabs(aspect - (double)lo / fixed);
        khi = fabs(aspect - (double)hi / fixed);
    } else {  // the height: |aspect − x / n|, 0 for n = 0
        klo = lo == 0 ? 0 : fabs(aspect - (double)fixed / lo);
        khi = hi == 0 ? 0 : fabs(aspect - (double)fixed / hi);
    }
    int n = khi < klo ? hi : lo;
    return n < 1 ? 1 : n;
}

void retrieval_thumbnail_size(int w, int h, int s, int *tw, int *th) {
    *tw = w, *th = h;
    if (s >= w && s >= h) return;
    double aspect = (double)w / h;
    int x = s, y = s;
    if ((double)x / y >= aspect) x = round_aspect(y * aspect, aspect, y, 1);
    else y = round_aspect(x / aspect, aspect, x, 0);
    *tw = x, *th = y;
}

float *retrieval_thumbnail_tensor(const Image *im, int s, int *tw, int *th) {
    retrieval_thumbnail_size(im->w, im->h, s, tw, th);
    uint8_t *px = mallocCheck((size_t)*tw * *th * 3);
    // thumbnail's reducing_gap 2.0: an image at least twice the thumbnail's
    // size (per axis) is first box-reduced by the integer factor, then the
    // reduced image's box of the whole picture resampled.
    int fx = (int)((double)im->w / *tw / 2.0), fy = (int)((double)im->h / *th / 2.0);
    if (fx < 1) fx = 1;
    if (fy < 1) fy = 1;
    if (*tw == im->w && *th == im->h) {
        memcpy(px, im->rgb, (size_t)*tw * *th * 3);
    } else if (fx > 1 || fy > 1) {
        int rw = (im->w + fx - 1) / fx, rh = (im->h + fy - 1) / fy;
        uint8_t *red = mallocCheck((size_t)rw * rh * 3);
        image_reduce(red, im->rgb, im->w, im->h, fx, fy);
        double box[4] = {0, 0, (double)im->w / fx, (double)im->h / fy};
        image_resize_box(px, *tw, *th, red, rw, rh, box, RESAMPLE_LANCZOS);
        free(red);
    } else {
        image_resize_region(px, *tw, *th, im->rgb, im->w * 3, 0, 0, im->w, im->h, RESAMPLE_LANCZOS);
    }
    float *x = mallocCheck((size_t)3 * *tw * *th * sizeof(float));
    image_to_tensor(x, px, *tw, *th, IMAGENET_MEAN, IMAGENET_STD);
    free(px);
    return x;
}

void retrieval_square_tensor(const Image *im, int s, float *out) {
    uint8_t *px = mallocCheck((size_t)s * s * 3);
    image_resize_region(px, s, s, im->rgb, im->w * 3, 0, 0, im->w, im->h, RESAMPLE_BICUBIC);
    image_to_tensor(out, px, s, s, IMAGENET_MEAN, IMAGENET_STD);
    free(px);
}

// Source index and weight of each output position along one axis, in
// float as torch computes them for float tensors: its build contracts
// scale·(o + 0.5) − 0.5 into one fused multiply-add, and the index differs
// by a rounding (a weight by ~1e-6) without it.
static void linear_axis(int in, int out, double f, int *i0, int *i1, float *l1) {
    float scale = (float)(1.0 / f);
    for (int o = 0; o < out; o++) {
        float real = fmaf(scale, (float)o + 0.5f, -0.5f);
        if (real < 0) real = 0;
        int i = (int)floorf(real);
        if (i > in - 1) i = in - 1;
        float lam = real - (float)i;
        lam = lam < 0 ? 0 : lam > 1 ? 1 : lam;
        i0[o] = i;
        i1[o] = i < in - 1 ? i + 1 : i;
        l1[o] = lam;
    }
}

float *retrieval_rescale(const float *x, int C, int H, int W, double f, int *oh, int *ow) {
    *oh = (int)floor((double)H * f);
    *ow = (int)floor((double)W * f);
    if (*oh < 1 || *ow < 1) return NULL;
    int OH = *oh, OW = *ow;
    int *y0 = mallocCheck(sizeof(int) * OH), *y1 = mallocCheck(sizeof(int) * OH);
    int *x0 = mallocCheck(sizeof(int) * OW), *x1 = mallocCheck(sizeof(int) * OW);
    float *ly = mallocCheck(sizeof(float) * OH), *lx = mallocCheck(sizeof(float) * OW);
    linear_axis(H, OH, f, y0, y1, ly);
    linear_axis(W, OW, f, x0, x1, lx);
    float *out = mallocCheck((size_t)C * OH * OW * sizeof(float));
    for (int c = 0; c < C; c++) {
        const float *p = x + (size_t)c * H * W;
        for (int i = 0; i < OH; i++) {
            const float *r0 = p + (size_t)y0[i] * W, *r1 = p + (size_t)y1[i] * W;
            float wy0 = 1.0f - ly[i], wy1 = ly[i];
            for (int j = 0; j < OW; j++) {
                float wx0 = 1.0f - lx[j], wx1 = lx[j];
                // rows then the weight of each row, as torch's loop nests them
                float t0 = r0[x0[j]] * wx0 + r0[x1[j]] * wx1;
                float t1 = r1[x0[j]] * wx0 + r1[x1[j]] * wx1;
                out[((size_t)c * OH + i) * OW + j] = t0 * wy0 + t1 * wy1;
            }
        }
    }
    free(y0), free(y1), free(x0), free(x1), free(ly), free(lx);
    return out;
}

int retrieval_crop(const Image *im, const double box[4], Image *out) {
    int b[4];
    for (int k = 0; k < 4; k++) {
        double r = nearbyint(box[k]);  // half to even under the default rounding mode
        int lim = k % 2 ? im->h : im->w;
        b[k] = r < 0 ? 0 : r > lim ? lim : (int)r;
    }
    int w = b[2] - b[0], h = b[3] - b[1];
    if (w < 1 || h < 1) return -1;
    out->w = w, out->h = h;
    out->rgb = mallocCheck((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        memcpy(out->rgb + (size_t)y * w * 3, im->rgb + ((size_t)(b[1] + y) * im->w + b[0]) * 3,
               (size_t)w * 3);
    return 0;
}
