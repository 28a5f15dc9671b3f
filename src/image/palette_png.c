// Indexed and greyscale PNG label maps through libpng's low-level API (the
// simplified API would expand palettes to colours).
#include "image/palette_png.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// libpng would print to stderr and abort; the message goes into our err instead.
typedef struct {
    char *err;
    size_t errlen;
    const char *path;
} PngErr;

static void on_error(png_structp png, png_const_charp msg) {
    PngErr *e = png_get_error_ptr(png);
    snprintf(e->err, e->errlen, "%s: not a readable PNG (%s)", e->path, msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

int label_png_read(const char *path, LabelMap *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return dino_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    uint8_t sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(f);
        return dino_errf(err, errlen, "%s is not a PNG file", path);
    }
    PngErr pe = {err, errlen, path};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &pe, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile labels = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (setjmp(png_jmpbuf(png))) goto fail;
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, NULL, NULL, NULL);
    if (ctype != PNG_COLOR_TYPE_PALETTE && ctype != PNG_COLOR_TYPE_GRAY) {
        snprintf(err, errlen, "%s is not an indexed (palette) PNG of object ids but %s", path,
                 ctype == PNG_COLOR_TYPE_RGB ? "an RGB image"
                 : ctype == PNG_COLOR_TYPE_RGB_ALPHA ? "an RGBA image"
                 : "a greyscale image with alpha");
        goto fail;
    }
    if (depth > 8) {
        snprintf(err, errlen, "%s is a %d-bit greyscale PNG; label maps have 8 bits or fewer", path, depth);
        goto fail;
    }
    if ((double)w * h > 1e9) {
        snprintf(err, errlen, "%s: %ux%u pixels is too large", path, (unsigned)w, (unsigned)h);
        goto fail;
    }
    // Low bit depths unpack to one byte per pixel, values unchanged (no scaling to 0..255,
    // as Pillow's "L" of a 1/2/4-bit greyscale PNG would do; DAVIS masks are palette PNGs).
    if (depth < 8) png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    labels = mallocCheck((size_t)w * h);
    rows = mallocCheck((size_t)h * sizeof(png_bytep));
    for (png_uint_32 y = 0; y < h; y++) rows[y] = labels + (size_t)y * w;
    png_read_image(png, rows);
    out->indexed = ctype == PNG_COLOR_TYPE_PALETTE;
    if (out->indexed) {
        png_colorp pal;
        int n = 0;
        if (png_get_PLTE(png, info, &pal, &n) && n > 0) {
            if (n > 256) n = 256;
            for (int i = 0; i < n; i++) {
                out->palette[3 * i] = pal[i].red;
                out->palette[3 * i + 1] = pal[i].green;
                out->palette[3 * i + 2] = pal[i].blue;
            }
            out->ncolors = n;
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rows);
    out->w = (int)w, out->h = (int)h, out->labels = labels;
    return 0;
fail:
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rows);
    free(labels);
    return -1;
}

void label_map_free(LabelMap *m) {
    free(m->labels);
    m->labels = NULL;
}

int label_png_write(const char *path, const uint8_t *labels, int w, int h, const uint8_t *palette,
                    int ncolors, char *err, size_t errlen) {
    if (ncolors < 1 || ncolors > 256)
        return dino_errf(err, errlen, "%s: a palette has 1 to 256 colours, not %d", path, ncolors);
    for (size_t i = 0; i < (size_t)w * h; i++)
        if (labels[i] >= ncolors)
            return dino_errf(err, errlen, "%s: label %d has no colour in a palette of %d", path,
                             labels[i], ncolors);
    FILE *f = fopen(path, "wb");
    if (!f) return dino_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    PngErr pe = {err, errlen, path};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &pe, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (setjmp(png_jmpbuf(png))) {
        snprintf(err, errlen, "cannot write %s: libpng failed", path);
        goto fail;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_PALETTE,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_color pal[256];
    for (int i = 0; i < ncolors; i++)
        pal[i].red = palette[3 * i], pal[i].green = palette[3 * i + 1], pal[i].blue = palette[3 * i + 2];
    png_set_PLTE(png, info, pal, ncolors);
    png_write_info(png, info);
    rows = mallocCheck((size_t)h * sizeof(png_bytep));
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(labels + (size_t)y * w);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (fclose(f) != 0) return dino_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return 0;
fail:
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
    return -1;
}
