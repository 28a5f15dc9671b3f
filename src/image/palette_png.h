// Label maps as PNG files: DAVIS masks are indexed (palette) PNGs whose pixel
// values are object ids (0 background, 1..K objects) and whose palette only
// colours them. Read as Pillow's np.array(Image.open(path)) gives them: the
// indices of a palette PNG, the values of an 8-bit greyscale one.
#ifndef DINO_IMAGE_PALETTE_PNG_H
#define DINO_IMAGE_PALETTE_PNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int w, h;
    uint8_t *labels;         // (h, w), owned
    int indexed;             // 1: a palette PNG; 0: greyscale
    int ncolors;             // palette entries (0 when greyscale)
    uint8_t palette[256 * 3];
} LabelMap;

// Reads an indexed PNG of any bit depth, or an 8-bit (or lower) greyscale one.
// Other PNGs (RGB, 16-bit, with alpha) are refused: 0, or -1 with err naming
// the file and what it is.
int label_png_read(const char *path, LabelMap *out, char *err, size_t errlen);
void label_map_free(LabelMap *m);

// Writes labels (h, w) as an 8-bit indexed PNG with the given palette
// (ncolors entries, 1..256). Every label must be below ncolors. 0, or -1
// with err filled.
int label_png_write(const char *path, const uint8_t *labels, int w, int h, const uint8_t *palette,
                    int ncolors, char *err, size_t errlen);

#endif
