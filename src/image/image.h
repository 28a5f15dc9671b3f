// An 8-bit RGB image in memory: what decoding produces, the augmentation
// transforms and the datasets hand out.
#ifndef DINO_IMAGE_IMAGE_H
#define DINO_IMAGE_IMAGE_H

#include <stdint.h>

typedef struct {
    int w, h;       // pixels
    uint8_t *rgb;   // (h, w, 3), row-major, owned
} Image;

// Frees the pixels and zeroes the struct; safe on a zeroed Image.
void image_free(Image *im);

#endif
