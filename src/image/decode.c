// JPEG and PNG decoding into 8-bit RGB with Pillow's conversion rules, and
// PNG/JPEG writing. libjpeg reports fatal errors through a longjmp from our
// error manager, libpng through its own setjmp; either way we return -1 with
// a message and free what was allocated. The pixel limit is checked from
// the header before any pixel memory is allocated.
#include "image/decode.h"

#include <stdio.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"


// ---------------------------------------------------------------- JPEG

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int hit_eof;  // the data ended before the image did
} JpegErr;

static void jpeg_error_exit_cb(j_common_ptr cinfo) {
    JpegErr *e = (JpegErr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

// Warnings are counted, not printed. Data ending early makes libjpeg warn
// (JWRN_JPEG_EOF) and pad with grey; Pillow raises "image file is truncated"
// there, so we note it and refuse the image.
static void jpeg_emit_message_cb(j_common_ptr cinfo, int level) {
    JpegErr *e = (JpegErr *)cinfo->err;
    if (level < 0) {
        cinfo->err->num_warnings++;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) e->hit_eof = 1;
    }
}

static int decode_jpeg(const uint8_t *buf, size_t len, int min_side, Image *out, const char *name,
                       char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    JpegErr jerr;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_cb;
    jerr.pub.emit_message = jpeg_emit_message_cb;
    jerr.msg[0] = 0;
    jerr.hit_eof = 0;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return dino_errf(err, errlen, "%s: cannot decode JPEG: %s", name, jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 14, 0xFFFF);  // Adobe marker: inverted CMYK
    jpeg_read_header(&cinfo, TRUE);
    long long W = cinfo.image_width, H = cinfo.image_height;
    if (W <= 0 || H <= 0 || W * H > IMAGE_MAX_PIXELS) {
        jpeg_destroy_decompress(&cinfo);
        return dino_errf(err, errlen, "%s: JPEG is %lldx%lld pixels, above the limit of %lld", name, W,
                    H, (long long)IMAGE_MAX_PIXELS);
    }
    int cmyk = 0;
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        cinfo.out_color_space = JCS_CMYK;
        cmyk = 1;
    } else {
        cinfo.out_color_space = JCS_RGB;  // libjpeg-turbo expands grey to RGB by replication
    }
    if (min_side > 0) {
        // Smallest M/8 keeping both sides >= min_side (ceil(side·M/8) as libjpeg computes).
        for (int m = 1; m <= 8; m++) {
            long long w = (W * m + 7) / 8, h = (H * m + 7) / 8;
            if ((w >= min_side && h >= min_side) || m == 8) {
                cinfo.scale_num = (unsigned)m;
                cinfo.scale_denom = 8;
                break;
            }
        }
    }
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, nc = cinfo.output_components;
    pixels = malloc((size_t)w * h * 3);
    row = malloc((size_t)w * nc);
    if (!pixels || !row) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return dino_errf(err, errlen, "%s: out of memory for a %dx%d image", name, w, h);
    }
    int inverted = 0;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 14 && m->data_length >= 5 && !memcmp(m->data, "Adobe", 5))
            inverted = 1;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rp = (JSAMPROW)row;
        int y = (int)cinfo.output_scanline;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) break;
        uint8_t *o = pixels + (size_t)y * w * 3;
        if (!cmyk) {
            memcpy(o, row, (size_t)w * 3);
        } else {
            // Pillow's CMYK -> RGB: out = CLIP8(nk - MULDIV255(c, nk)), nk = 255 - k.
            for (int x = 0; x < w; x++) {
                int v[4];
                for (int c = 0; c < 4; c++) v[c] = inverted ? 255 - row[4 * x + c] : row[4 * x + c];
                int nk = 255 - v[3];
                for (int c = 0; c < 3; c++) {
                    int t = v[c] * nk + 128;
                    int md = ((t >> 8) + t) >> 8;
                    int r = nk - md;
                    o[3 * x + c] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
                }
            }
        }
    }
    // Data that ends early makes libjpeg emit a warning and pad with grey;
    // Pillow raises "image file is truncated" there, so we refuse it too.
    if (cinfo.output_scanline < cinfo.output_height || jerr.hit_eof) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return dino_errf(err, errlen, "%s: JPEG data is truncated", name);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->w = w;
    out->h = h;
    out->rgb = pixels;
    return 0;
}

// ---------------------------------------------------------------- PNG

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    char msg[256];
} PngSrc;

static void png_read_cb(png_structp png, png_bytep data, png_size_t n) {
    PngSrc *s = png_get_io_ptr(png);
    if (s->pos + n > s->len) png_error(png, "file is truncated");
    memcpy(data, s->buf + s->pos, n);
    s->pos += n;
}

static void png_error_cb(png_structp png, png_const_charp msg) {
    PngSrc *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int decode_png(const uint8_t *buf, size_t len, Image *out, const char *name, char *err,
                      size_t errlen) {
    // The pixel limit straight from the IHDR bytes, before libpng reads on.
    if (len >= 24 && !memcmp(buf + 12, "IHDR", 4)) {
        // Unsigned: two 32-bit sides always fit, where long long overflowed
        // (signed overflow, found by fuzz_image).
        unsigned long long w = be32(buf + 16), h = be32(buf + 20);
        if (w * h > (unsigned long long)IMAGE_MAX_PIXELS)
            return dino_errf(err, errlen, "%s: PNG is %llux%llu pixels, above the limit of %lld", name, w,
                        h, (long long)IMAGE_MAX_PIXELS);
    }
    PngSrc src = {buf, len, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_error_cb,
                                             png_warning_cb);
    if (!png) return dino_errf(err, errlen, "%s: cannot initialise libpng", name);
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(pixels);
        free(row);
        return dino_errf(err, errlen, "%s: cannot decode PNG: %s", name, src.msg[0] ? src.msg : "error");
    }
    png_set_read_fn(png, &src, png_read_cb);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);  // our pixel limit applies instead
    png_read_info(png, info);
    png_uint_32 W, H;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &W, &H, &depth, &ctype, &interlace, NULL, NULL);
    if ((long long)W * (long long)H > IMAGE_MAX_PIXELS) {
        png_destroy_read_struct(&png, &info, NULL);
        return dino_errf(err, errlen, "%s: PNG is %ux%u pixels, above the limit of %lld", name,
                    (unsigned)W, (unsigned)H, (long long)IMAGE_MAX_PIXELS);
    }
    // Pillow opens 16-bit grey as "I;16", whose conversion to RGB clips the
    // value at 255 (it does not take the high byte); every other 16-bit type
    // keeps the high byte. Alpha (and tRNS transparency) is dropped without
    // compositing. libpng expands palette and low-bit grey to 8 bits; the
    // channel layout is then handled here whatever libpng chose.
    int grey16 = depth == 16 && ctype == PNG_COLOR_TYPE_GRAY;
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !grey16) png_set_strip_16(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int nch = png_get_channels(png, info);
    int bytes_per = grey16 ? 2 : 1;
    size_t rowbytes = png_get_rowbytes(png, info);
    if (nch < 1 || nch > 4 || rowbytes != (size_t)W * nch * bytes_per || (grey16 && nch != 1))
        png_error(png, "unexpected row layout after conversion");
    pixels = malloc((size_t)W * H * 3);
    row = malloc(rowbytes * H);
    if (!pixels || !row) png_error(png, "out of memory");
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < H; y++) png_read_row(png, (png_bytep)row + y * rowbytes, NULL);
    png_read_end(png, NULL);
    for (size_t i = 0; i < (size_t)W * H; i++) {
        const uint8_t *s = row + i * nch * bytes_per;
        uint8_t *o = pixels + 3 * i;
        if (grey16) {
            unsigned v = ((unsigned)s[0] << 8) | s[1];
            o[0] = o[1] = o[2] = (uint8_t)(v > 255 ? 255 : v);
        } else if (nch >= 3) {
            o[0] = s[0];
            o[1] = s[1];
            o[2] = s[2];
        } else {
            o[0] = o[1] = o[2] = s[0];
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(row);
    out->w = (int)W;
    out->h = (int)H;
    out->rgb = pixels;
    return 0;
}

// ---------------------------------------------------------------- entry points

int image_decode_mem(const uint8_t *buf, size_t len, int min_side, Image *out, const char *name,
                     char *err, size_t errlen) {
    out->w = out->h = 0;
    out->rgb = NULL;
    if (!name) name = "image";
    if (len == 0) return dino_errf(err, errlen, "%s: file is empty", name);
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return decode_jpeg(buf, len, min_side, out, name, err, errlen);
    if (len >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8))
        return decode_png(buf, len, out, name, err, errlen);
    return dino_errf(err, errlen, "%s: not a JPEG or PNG image", name);
}

int image_decode_file(const char *path, int min_side, Image *out, char *err, size_t errlen) {
    out->w = out->h = 0;
    out->rgb = NULL;
    // Only regular files (checked before opening: opening a FIFO blocks): a
    // list file naming /dev/zero would otherwise be read until memory runs out.
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return dino_errf(err, errlen, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return dino_errf(err, errlen, "%s: cannot open", path);
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return dino_errf(err, errlen, "%s: out of memory reading the file", path);
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return dino_errf(err, errlen, "%s: read error", path);
    }
    int rc = image_decode_mem(buf, len, min_side, out, path, err, errlen);
    free(buf);
    return rc;
}

int image_write_png(const char *path, const uint8_t *rgb, int w, int h, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) return dino_errf(err, errlen, "%s: cannot open for writing", path);
    PngSrc es = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &es, png_error_cb,
                                              png_warning_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        if (png) png_destroy_write_struct(&png, info ? &info : NULL);
        fclose(f);
        return dino_errf(err, errlen, "%s: cannot write PNG: %s", path, es.msg);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) return dino_errf(err, errlen, "%s: write error", path);
    return 0;
}

int image_write_jpeg(const char *path, const uint8_t *rgb, int w, int h, int quality, char *err,
                     size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) return dino_errf(err, errlen, "%s: cannot open for writing", path);
    struct jpeg_compress_struct c;
    JpegErr jerr;
    c.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_cb;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_compress(&c);
        fclose(f);
        return dino_errf(err, errlen, "%s: cannot write JPEG: %s", path, jerr.msg);
    }
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(rgb + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    if (fclose(f) != 0) return dino_errf(err, errlen, "%s: write error", path);
    return 0;
}

void image_free(Image *im) {
    if (!im) return;
    free(im->rgb);
    im->rgb = NULL;
    im->w = im->h = 0;
}
