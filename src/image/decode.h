// Image decoding and encoding: JPEG (libjpeg-turbo) and PNG (libpng) files
// or memory buffers into 8-bit RGB, exactly as Pillow's Image.open(...)
// .convert('RGB') produces them, and PNG writing. Bad files never crash:
// every failure returns -1 with a sentence in err.
#ifndef DINO_IMAGE_DECODE_H
#define DINO_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

// Pillow's MAX_IMAGE_PIXELS: larger images are refused before any pixel
// memory is allocated (decompression bombs). The fuzz build (scripts/fuzz.sh)
// lowers it so that near-limit images do not dominate fuzzing time.
#ifndef IMAGE_MAX_PIXELS
#define IMAGE_MAX_PIXELS 89478485LL
#endif

// Decodes a JPEG or PNG held in memory (format recognised by its magic bytes).
// min_side > 0 lets JPEG decoding scale down by M/8 in the DCT domain while
// both sides stay >= min_side (faster; pixels then differ from Pillow's full
// decode). `name` is used in error messages only.
int image_decode_mem(const uint8_t *buf, size_t len, int min_side, Image *out, const char *name,
                     char *err, size_t errlen);
// Reads a whole file and decodes it.
int image_decode_file(const char *path, int min_side, Image *out, char *err, size_t errlen);
// Writes 8-bit RGB as PNG. Returns 0, or -1 with err filled.
int image_write_png(const char *path, const uint8_t *rgb, int w, int h, char *err, size_t errlen);
// Writes 8-bit RGB as a baseline JPEG of the given quality (tests, benchmarks).
int image_write_jpeg(const char *path, const uint8_t *rgb, int w, int h, int quality, char *err,
                     size_t errlen);

#endif
