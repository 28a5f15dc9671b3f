// Pillow-exact pixel operations on 8-bit RGB images (h, w, 3), the ones
// torchvision's PIL path runs for DINO: bicubic/bilinear resampling with
// antialias, Brightness/Contrast/Color/hue, RGB->L, Gaussian (extended box)
// blur, solarize, flip, ToTensor+Normalize. Arithmetic follows
// docs/AUGMENTATION.md step by step; these files are compiled with
// -ffp-contract=off so float rounding matches Pillow's builds.
#ifndef DINO_IMAGE_OPS_H
#define DINO_IMAGE_OPS_H

#include <stdint.h>

// Pillow's numbering; LANCZOS is the ANTIALIAS of old Pillow (retrieval thumbnails).
typedef enum { RESAMPLE_LANCZOS = 1, RESAMPLE_BILINEAR = 2, RESAMPLE_BICUBIC = 3 } ResampleFilter;

// Resizes the region (x0, y0, cw, ch) of src (row stride src_stride bytes)
// to dst (dw, dh), like Pillow's img.crop((x0, y0, x0+cw, y0+ch)).resize((dw, dh), filter).
// The region must lie inside the source.
void image_resize_region(uint8_t *dst, int dw, int dh, const uint8_t *src, int src_stride, int x0,
                         int y0, int cw, int ch, ResampleFilter filter);

// Resizes the box (x0, y0, x1, y1), fractional, of src (sw, sh, packed) to
// dst (dw, dh), taps reaching outside the box but not the image, like
// Pillow's img.resize((dw, dh), filter, box=box).
void image_resize_box(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh,
                      const double box[4], ResampleFilter filter);

// Pillow's img.reduce((fx, fy)): each output pixel the rounded mean of an
// fx x fy block (the last column and row of partial blocks over what is
// there), in Pillow's fixed point. dst is ceil(w/fx) x ceil(h/fy).
void image_reduce(uint8_t *dst, const uint8_t *src, int w, int h, int fx, int fy);

void image_hflip(uint8_t *rgb, int w, int h);
// Pillow's RGB -> "L": (19595 R + 38470 G + 7471 B + 32768) >> 16.
void image_rgb_to_l(uint8_t *l, const uint8_t *rgb, int n);
// ImageEnhance on n pixels, in place; factors as float32 like Image.blend.
void image_brightness(uint8_t *rgb, int n, float f);
void image_contrast(uint8_t *rgb, int n, float f);
void image_saturation(uint8_t *rgb, int n, float f);
// torchvision adjust_hue (PIL path): HSV round trip with H shifted by trunc(f·255) mod 256.
void image_hue(uint8_t *rgb, int n, double hue_factor);
// RGB -> L -> RGB (torchvision rgb_to_grayscale with 3 output channels).
void image_grayscale(uint8_t *rgb, int n);
// Pillow ImageFilter.GaussianBlur(radius=sigma), in place.
void image_gaussian_blur(uint8_t *rgb, int w, int h, float sigma);
// ImageOps.solarize(threshold=128): v >= 128 -> 255 - v.
void image_solarize(uint8_t *rgb, int n);
// ToTensor then Normalize: out (3, h, w) float32, x = (v/255 - mean)/std in float32.
void image_to_tensor(float *out, const uint8_t *rgb, int w, int h, const float mean[3],
                     const float std[3]);

// Pillow's RGB -> HSV of one pixel (image_hue's tables are built from it; tests).
void image_rgb_to_hsv_pixel(const uint8_t rgb[3], uint8_t hsv[3]);

extern const float IMAGENET_MEAN[3];
extern const float IMAGENET_STD[3];

#endif
