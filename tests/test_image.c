// Decoding and the Pillow-exact pixel operations. Decoding: PNGs of every
// colour type/bit depth written with libpng here and decoded with Pillow's
// conversion rules; JPEG round trips (RGB, grey, DCT-scaled); the real photo
// fixture against Pillow's decode; bad files (truncated, empty, text, huge
// headers, random corruption) give errors, never crashes. Operations:
// resize, colour ops, HSV/L over all 2^24 colours, blur, solarize, flip and
// ToTensor+Normalize against tests/fixtures/data_ops.bin (max |Δ| must be 0
// on uint8, <= 1e-6 after Normalize).
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_testutil.h"
#include "fixture.h"
#include "image/decode.h"
#include "image/ops.h"
#include "rng.h"
#include "testlib.h"

static char tmp[256];

static const char *P(const char *rel) {
    static char buf[4][512];
    static int k;
    char *o = buf[k++ & 3];
    snprintf(o, 512, "%s/%s", tmp, rel);
    return o;
}

// ---------------------------------------------------------------- PNG variants

// Writes a w×1..h PNG from raw samples (already packed for the bit depth).
static void write_png_raw(const char *path, int w, int h, int depth, int ctype, const uint8_t *rows,
                          size_t rowbytes, const png_color *pal, int npal, const uint8_t *trns,
                          int ntrns, int interlace) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) { fclose(f); return; }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    png_bytep *rp = malloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++) rp[y] = (png_bytep)(rows + (size_t)y * rowbytes);
    png_write_image(png, rp);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rp);
    fclose(f);
}

static int decode_px(const char *path, Image *im) {
    char err[512];
    int rc = image_decode_file(path, 0, im, err, sizeof err);
    if (rc) printf("     %s\n", err);
    return rc;
}

static int px_is(const Image *im, int x, int r, int g, int b) {
    const uint8_t *p = im->rgb + 3 * x;
    return p[0] == r && p[1] == g && p[2] == b;
}

static void test_png_variants(void) {
    Image im;
    // RGB 8-bit round trip through our writer.
    uint8_t *n = data_noise(13, 17, 5);
    char err[256];
    image_write_png(P("rgb.png"), n, 17, 13, err, sizeof err);
    CHECK(decode_px(P("rgb.png"), &im) == 0 && im.w == 17 && im.h == 13 && !memcmp(im.rgb, n, 13 * 17 * 3),
          "PNG RGB8 round trip is exact");
    image_free(&im);
    free(n);
    // 16-bit RGB: the high byte.
    uint8_t rgb16[2 * 6] = {0x12, 0x34, 0xAB, 0xCD, 0x00, 0xFF, 0x80, 0x00, 0x7F, 0xFF, 0xFF, 0xFF};
    write_png_raw(P("rgb16.png"), 2, 1, 16, PNG_COLOR_TYPE_RGB, rgb16, 12, NULL, 0, NULL, 0, 0);
    CHECK(decode_px(P("rgb16.png"), &im) == 0 && px_is(&im, 0, 18, 171, 0) && px_is(&im, 1, 128, 127, 255),
          "PNG RGB16 keeps the high byte (Pillow: 18 171 0 / 128 127 255)");
    image_free(&im);
    // 16-bit grey: Pillow's I;16 -> RGB clips at 255.
    uint8_t g16[2 * 3] = {0x12, 0x34, 0x00, 0xFF, 0x00, 0x07};
    write_png_raw(P("g16.png"), 3, 1, 16, PNG_COLOR_TYPE_GRAY, g16, 6, NULL, 0, NULL, 0, 0);
    CHECK(decode_px(P("g16.png"), &im) == 0 && px_is(&im, 0, 255, 255, 255) && px_is(&im, 1, 255, 255, 255) &&
              px_is(&im, 2, 7, 7, 7),
          "PNG grey16 clips at 255 like Pillow's I;16 conversion");
    image_free(&im);
    // Grey+alpha 16-bit: high byte, alpha dropped.
    uint8_t ga16[2 * 4] = {0x12, 0x34, 0xAB, 0xCD, 0x00, 0xFF, 0x80, 0x00};
    write_png_raw(P("ga16.png"), 2, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA, ga16, 8, NULL, 0, NULL, 0, 0);
    CHECK(decode_px(P("ga16.png"), &im) == 0 && px_is(&im, 0, 18, 18, 18) && px_is(&im, 1, 0, 0, 0),
          "PNG grey+alpha 16: high byte, alpha dropped (Pillow: 18 / 0)");
    image_free(&im);
    // 2-bit grey: 0, 85, 170, 255.
    uint8_t g2 = 0x1B;
    write_png_raw(P("g2.png"), 4, 1, 2, PNG_COLOR_TYPE_GRAY, &g2, 1, NULL, 0, NULL, 0, 0);
    CHECK(decode_px(P("g2.png"), &im) == 0 && px_is(&im, 0, 0, 0, 0) && px_is(&im, 1, 85, 85, 85) &&
              px_is(&im, 2, 170, 170, 170) && px_is(&im, 3, 255, 255, 255),
          "PNG 2-bit grey scales to 0/85/170/255");
    image_free(&im);
    // 1-bit grey.
    uint8_t g1 = 0xA0;
    write_png_raw(P("g1.png"), 3, 1, 1, PNG_COLOR_TYPE_GRAY, &g1, 1, NULL, 0, NULL, 0, 0);
    CHECK(decode_px(P("g1.png"), &im) == 0 && px_is(&im, 0, 255, 255, 255) && px_is(&im, 1, 0, 0, 0) &&
              px_is(&im, 2, 255, 255, 255),
          "PNG 1-bit grey: 0/255");
    image_free(&im);
    // RGBA 8: alpha dropped without compositing.
    uint8_t rgba[8] = {10, 20, 30, 0, 200, 100, 50, 128};
    write_png_raw(P("rgba.png"), 2, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, rgba, 8, NULL, 0, NULL, 0, 0);
    CHECK(decode_px(P("rgba.png"), &im) == 0 && px_is(&im, 0, 10, 20, 30) && px_is(&im, 1, 200, 100, 50),
          "PNG RGBA: alpha dropped, colour kept even where alpha = 0");
    image_free(&im);
    // LA 8.
    uint8_t la[4] = {0x12, 0x80, 0xFF, 0x10};
    write_png_raw(P("la.png"), 2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, la, 4, NULL, 0, NULL, 0, 0);
    CHECK(decode_px(P("la.png"), &im) == 0 && px_is(&im, 0, 18, 18, 18) && px_is(&im, 1, 255, 255, 255),
          "PNG grey+alpha 8 -> grey replicated");
    image_free(&im);
    // Palette (4-bit) with transparency.
    png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {1, 2, 3}};
    uint8_t trns[3] = {0, 128, 255};
    uint8_t idx[2] = {0x21, 0x00};
    write_png_raw(P("pal.png"), 3, 1, 4, PNG_COLOR_TYPE_PALETTE, idx, 2, pal, 3, trns, 3, 0);
    CHECK(decode_px(P("pal.png"), &im) == 0 && px_is(&im, 0, 1, 2, 3) && px_is(&im, 1, 0, 255, 0) &&
              px_is(&im, 2, 255, 0, 0),
          "PNG palette with tRNS -> palette colours, transparency ignored");
    image_free(&im);
    // Interlaced RGB.
    n = data_noise(9, 11, 6);
    write_png_raw(P("inter.png"), 11, 9, 8, PNG_COLOR_TYPE_RGB, n, 33, NULL, 0, NULL, 0, 1);
    CHECK(decode_px(P("inter.png"), &im) == 0 && im.w == 11 && !memcmp(im.rgb, n, 9 * 11 * 3),
          "PNG Adam7 interlaced decodes exactly");
    image_free(&im);
    free(n);
}

// ---------------------------------------------------------------- JPEG

static uint8_t *smooth_image(int w, int h) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            p[(y * w + x) * 3] = (uint8_t)(x * 255 / (w - 1));
            p[(y * w + x) * 3 + 1] = (uint8_t)(y * 255 / (h - 1));
            p[(y * w + x) * 3 + 2] = (uint8_t)(128 + 100 * ((x / 16 + y / 16) % 2) - 50);
        }
    return p;
}

static void test_jpeg(void) {
    char err[512];
    int w = 400, h = 300;
    uint8_t *src = smooth_image(w, h);
    CHECK(image_write_jpeg(P("a.jpg"), src, w, h, 95, err, sizeof err) == 0, "JPEG written");
    Image im;
    int rc = image_decode_file(P("a.jpg"), 0, &im, err, sizeof err);
    CHECK(rc == 0 && im.w == w && im.h == h, "JPEG decodes at full size");
    double mae = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) mae += abs((int)im.rgb[i] - (int)src[i]);
    mae /= (double)w * h * 3;
    CHECK(mae < 3.5, "JPEG q95 round trip (sharp colour checkerboard) mean |err| = %.3f (< 3.5)", mae);
    // DCT scaling: smallest M/8 with both sides >= 96 is 3/8 -> 150x113.
    Image sm;
    rc = image_decode_file(P("a.jpg"), 96, &sm, err, sizeof err);
    CHECK(rc == 0 && sm.w == 150 && sm.h == 113,
          "JPEG DCT scaling with min_side 96: %dx%d (want 150x113)", sm.w, sm.h);
    Image s2;
    rc = image_decode_file(P("a.jpg"), 300, &s2, err, sizeof err);
    CHECK(rc == 0 && s2.w == 400 && s2.h == 300,
          "JPEG min_side 300 keeps full size");
    // The scaled image resembles the full one: compare a centre pixel's area average.
    double d = 0;
    int cnt = 0;
    for (int y = 20; y < 100; y += 7)
        for (int x = 20; x < 130; x += 7) {
            int fx = x * w / sm.w, fy = y * h / sm.h;
            d += abs((int)sm.rgb[(y * sm.w + x) * 3] - (int)im.rgb[(fy * w + fx) * 3]);
            cnt++;
        }
    CHECK(d / cnt < 12, "DCT-scaled decode matches the full decode's content (mean |diff| %.2f)", d / cnt);
    image_free(&im);
    image_free(&sm);
    image_free(&s2);
    free(src);
}

// A greyscale JPEG written directly with libjpeg.
#include <jpeglib.h>
static void test_jpeg_grey(void) {
    FILE *f = fopen(P("g.jpg"), "wb");
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = 40;
    c.image_height = 30;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[40];
    for (int y = 0; y < 30; y++) {
        for (int x = 0; x < 40; x++) row[x] = (uint8_t)(x * 6);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    Image im;
    char err[256];
    int ok = image_decode_file(P("g.jpg"), 0, &im, err, sizeof err) == 0 && im.w == 40 && im.h == 30;
    for (int i = 0; ok && i < 40 * 30; i++) ok = im.rgb[3 * i] == im.rgb[3 * i + 1] && im.rgb[3 * i] == im.rgb[3 * i + 2];
    CHECK(ok && abs((int)im.rgb[3 * 20] - 120) <= 3, "grey JPEG -> three equal channels");
    image_free(&im);
}

static void test_photo(void) {
    Fixture fx = fixture_load("data_pipeline.bin");
    Image im;
    char err[512];
    int rc = image_decode_file(test_fixture_path("data_photo.jpg"), 0, &im, err, sizeof err);
    const FixtureTensor *sz = fixture_get(&fx, "photo.size");
    CHECK(rc == 0 && im.w == (int)sz->data[0] && im.h == (int)sz->data[1], "real photo decodes: %dx%d", im.w, im.h);
    if (rc == 0) {
        uint64_t h = data_hash64(im.rgb, (size_t)im.w * im.h * 3);
        double rs = data_rowsum_maxdiff(im.rgb, im.w, im.h, fixture_get(&fx, "photo.rowsums"));
        const FixtureTensor *strip = fixture_get(&fx, "photo.strip");
        int md = data_maxdiff(im.rgb + (size_t)200 * im.w * 3, strip);
        CHECK(h == data_fixture_hash(fixture_get(&fx, "photo.hash")) && rs == 0 && md == 0,
              "real photo pixels equal Pillow's decode (max |row-sum diff| %.0f, strip max |diff| %d)", rs, md);
        image_free(&im);
    }
    fixture_free(&fx);
    // CMYK (Adobe-inverted) and greyscale JPEGs written by Pillow.
    fx = fixture_load("data_ops.bin");
    const char *names[2] = {"data_cmyk.jpg", "data_grey.jpg"}, *keys[2] = {"cmyk.rgb", "grey.rgb"};
    for (int k = 0; k < 2; k++) {
        rc = image_decode_file(test_fixture_path(names[k]), 0, &im, err, sizeof err);
        int md = rc == 0 && im.w == 16 && im.h == 12 ? data_maxdiff(im.rgb, fixture_get(&fx, keys[k])) : 999;
        CHECK(md == 0, "%s decodes to Pillow's convert('RGB'): max |diff| %d", names[k], md);
        image_free(&im);
    }
    fixture_free(&fx);
}

// ---------------------------------------------------------------- bad input

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

static uint32_t crc_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void test_bad_input(void) {
    char err[512];
    Image im;
    size_t nj, np;
    uint8_t *jpg = read_all(P("a.jpg"), &nj);
    uint8_t *png = read_all(P("inter.png"), &np);
    // Truncated files.
    int rc = image_decode_mem(jpg, nj / 2, 0, &im, "half.jpg", err, sizeof err);
    CHECK(rc == -1 && strstr(err, "half.jpg") && im.rgb == NULL, "truncated JPEG refused: %s", err);
    rc = image_decode_mem(png, np - 20, 0, &im, "cut.png", err, sizeof err);
    CHECK(rc == -1 && strstr(err, "cut.png"), "truncated PNG refused: %s", err);
    rc = image_decode_mem(jpg, 0, 0, &im, "empty.jpg", err, sizeof err);
    CHECK(rc == -1 && strstr(err, "empty"), "zero-byte file refused: %s", err);
    FILE *f = fopen(P("text.jpg"), "w");
    fputs("hello, I am not a JPEG\n", f);
    fclose(f);
    rc = image_decode_file(P("text.jpg"), 0, &im, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "not a JPEG or PNG"), "text named .jpg refused: %s", err);
    rc = image_decode_file(P("missing.png"), 0, &im, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "cannot open"), "missing file: %s", err);
    // A PNG whose IHDR says 100000×100000 (valid CRC): refused by the pixel limit.
    uint8_t big[64];
    memcpy(big, "\x89PNG\r\n\x1a\n", 8);
    put_be32(big + 8, 13);
    memcpy(big + 12, "IHDR", 4);
    put_be32(big + 16, 100000);
    put_be32(big + 20, 100000);
    big[24] = 8; big[25] = 2; big[26] = 0; big[27] = 0; big[28] = 0;
    put_be32(big + 29, crc_of(big + 12, 17));
    memset(big + 33, 0, sizeof big - 33);
    rc = image_decode_mem(big, sizeof big, 0, &im, "bomb.png", err, sizeof err);
    CHECK(rc == -1 && strstr(err, "limit"), "100000x100000 PNG header refused before allocating: %s", err);
    // A JPEG whose SOF says 60000×60000.
    uint8_t *bj = malloc(nj);
    memcpy(bj, jpg, nj);
    int patched = 0;
    for (size_t i = 2; i + 9 < nj; i++)
        if (bj[i] == 0xFF && (bj[i + 1] == 0xC0 || bj[i + 1] == 0xC2)) {
            bj[i + 5] = 0xEA; bj[i + 6] = 0x60; bj[i + 7] = 0xEA; bj[i + 8] = 0x60;
            patched = 1;
            break;
        }
    rc = image_decode_mem(bj, nj, 0, &im, "bomb.jpg", err, sizeof err);
    CHECK(patched && rc == -1 && strstr(err, "limit"), "60000x60000 JPEG header refused: %s", err);
    free(bj);
    // Random corruption: never crash; every result is either an image or an error.
    Rng r;
    rng_stream(&r, RNG_TEST, 99, 0, 0, 0);
    int ok = 1, decoded = 0, failed = 0;
    for (int t = 0; t < 300; t++) {
        int is_png = t & 1;
        size_t n = is_png ? np : nj;
        uint8_t *b = malloc(n);
        memcpy(b, is_png ? png : jpg, n);
        int flips = 1 + (int)rng_below(&r, 8);
        for (int k = 0; k < flips; k++) b[rng_below(&r, (uint32_t)n)] = (uint8_t)rng_u32(&r);
        size_t len = t % 3 == 0 ? rng_below(&r, (uint32_t)n) + 1 : n;
        rc = image_decode_mem(b, len, t % 5 == 0 ? 64 : 0, &im, "fuzz", err, sizeof err);
        if (rc == 0) {
            ok &= im.rgb != NULL && im.w > 0 && im.h > 0;
            decoded++;
            image_free(&im);
        } else {
            ok &= im.rgb == NULL && err[0] != 0;
            failed++;
        }
        free(b);
    }
    CHECK(ok, "300 corrupted JPEG/PNG files: no crash (%d decoded, %d refused)", decoded, failed);
    free(jpg);
    free(png);
}

// ---------------------------------------------------------------- operations

static void test_ops(void) {
    Fixture fx = fixture_load("data_ops.bin");
    int W = 32, H = 24, n = W * H;
    uint8_t *src = data_noise(H, W, 11);
    uint8_t *big = data_noise(48, 64, 12);
    uint8_t *buf = malloc(100 * 100 * 3);
    char name[64];
    // Resize cases.
    int ncase = (int)fixture_scalar(&fx, "resize.count"), worst_all = 0;
    for (int k = 0; k < ncase; k++) {
        snprintf(name, sizeof name, "resize%d.box", k);
        const float *box = fixture_get(&fx, name)->data;
        snprintf(name, sizeof name, "resize%d.size", k);
        const float *sz = fixture_get(&fx, name)->data;
        snprintf(name, sizeof name, "resize%d.out", k);
        const FixtureTensor *want = fixture_get(&fx, name);
        int x0 = (int)box[0], y0 = (int)box[1], cw = (int)box[2] - x0, ch = (int)box[3] - y0;
        int dw = (int)sz[0], dh = (int)sz[1];
        image_resize_region(buf, dw, dh, big, 64 * 3, x0, y0, cw, ch, (ResampleFilter)(int)sz[2]);
        int md = data_maxdiff(buf, want);
        if (md > worst_all) worst_all = md;
        CHECK(md == 0, "resize case %d: crop %dx%d@(%d,%d) -> %dx%d %s: max |diff| %d", k, cw, ch, x0, y0, dw, dh,
              (int)sz[2] == 3 ? "bicubic" : "bilinear", md);
    }
    const FixtureTensor *factors = fixture_get(&fx, "factors");
    const char *ops[3] = {"brightness", "contrast", "saturation"};
    for (int o = 0; o < 3; o++) {
        int worst = 0;
        for (size_t k = 0; k < factors->numel; k++) {
            memcpy(buf, src, (size_t)n * 3);
            float f = factors->data[k];
            if (o == 0) image_brightness(buf, n, f);
            if (o == 1) image_contrast(buf, n, f);
            if (o == 2) image_saturation(buf, n, f);
            snprintf(name, sizeof name, "%s%zu", ops[o], k);
            int md = data_maxdiff(buf, fixture_get(&fx, name));
            if (md > worst) worst = md;
        }
        CHECK(worst == 0, "%s at %zu factors (0 .. 2.5): max |diff| %d", ops[o], factors->numel, worst);
    }
    const FixtureTensor *hues = fixture_get(&fx, "hues");
    int worst = 0;
    for (size_t k = 0; k < hues->numel; k++) {
        memcpy(buf, src, (size_t)n * 3);
        image_hue(buf, n, (double)hues->data[k]);
        snprintf(name, sizeof name, "hue%zu", k);
        int md = data_maxdiff(buf, fixture_get(&fx, name));
        if (md > worst) worst = md;
    }
    CHECK(worst == 0, "hue at %zu factors (-0.5 .. 0.5): max |diff| %d", hues->numel, worst);
    memcpy(buf, src, (size_t)n * 3);
    image_grayscale(buf, n);
    CHECK(data_maxdiff(buf, fixture_get(&fx, "grayscale")) == 0, "grayscale: max |diff| %d", data_maxdiff(buf, fixture_get(&fx, "grayscale")));
    memcpy(buf, src, (size_t)n * 3);
    image_solarize(buf, n);
    CHECK(data_maxdiff(buf, fixture_get(&fx, "solarize")) == 0, "solarize: max |diff| %d", data_maxdiff(buf, fixture_get(&fx, "solarize")));
    memcpy(buf, src, (size_t)n * 3);
    image_hflip(buf, W, H);
    CHECK(data_maxdiff(buf, fixture_get(&fx, "hflip")) == 0, "hflip: max |diff| %d", data_maxdiff(buf, fixture_get(&fx, "hflip")));
    const FixtureTensor *sig = fixture_get(&fx, "sigmas");
    for (size_t k = 0; k < sig->numel; k++) {
        memcpy(buf, src, (size_t)n * 3);
        image_gaussian_blur(buf, W, H, sig->data[k]);
        snprintf(name, sizeof name, "blur%zu", k);
        int md = data_maxdiff(buf, fixture_get(&fx, name));
        CHECK(md == 0, "Gaussian blur sigma %.4g: max |diff| %d", sig->data[k], md);
    }
    int tiny[4][2] = {{1, 1}, {2, 3}, {7, 5}, {1, 9}};
    worst = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t *t = data_noise(tiny[k][0], tiny[k][1], 20 + k);
        image_gaussian_blur(t, tiny[k][1], tiny[k][0], 1.7f);
        snprintf(name, sizeof name, "blur_tiny%d", k);
        int md = data_maxdiff(t, fixture_get(&fx, name));
        if (md > worst) worst = md;
        free(t);
    }
    CHECK(worst == 0, "Gaussian blur of 1x1, 2x3, 7x5, 1x9 images (edges replicated): max |diff| %d", worst);
    float *x = malloc(sizeof(float) * 3 * n);
    image_to_tensor(x, src, W, H, IMAGENET_MEAN, IMAGENET_STD);
    const FixtureTensor *xn = fixture_get(&fx, "normalize");
    test_close("ToTensor+Normalize vs torchvision", x, xn->data, xn->numel, 1e-6, 0);
    int bits_equal = !memcmp(x, xn->data, sizeof(float) * xn->numel);
    CHECK(bits_equal, "ToTensor+Normalize bit-identical to torchvision");
    free(x);
    // All 2^24 colours.
    size_t N = (size_t)1 << 24;
    uint8_t *all = malloc(N * 3), *out = malloc(N * 3);
    for (size_t c = 0; c < N; c++) {
        all[3 * c] = (uint8_t)(c >> 16);
        all[3 * c + 1] = (uint8_t)(c >> 8);
        all[3 * c + 2] = (uint8_t)c;
    }
    for (size_t c = 0; c < N; c++) image_rgb_to_hsv_pixel(all + 3 * c, out + 3 * c);
    CHECK(data_hash64(out, N * 3) == data_fixture_hash(fixture_get(&fx, "all.hsv")), "RGB->HSV equals Pillow on all 2^24 colours");
    uint8_t *l = malloc(N);
    image_rgb_to_l(l, all, (int)N);
    CHECK(data_hash64(l, N) == data_fixture_hash(fixture_get(&fx, "all.l")), "RGB->L equals Pillow on all 2^24 colours");
    free(l);
    double hs[3] = {0.0, -0.05, 0.0371};
    for (int k = 0; k < 3; k++) {
        memcpy(out, all, N * 3);
        image_hue(out, (int)N, (double)(float)hs[k]);
        snprintf(name, sizeof name, "all.hue%d", k);
        CHECK(data_hash64(out, N * 3) == data_fixture_hash(fixture_get(&fx, name)),
              "hue shift %g (HSV round trip) equals torchvision on all 2^24 colours", hs[k]);
    }
    free(all);
    free(out);
    free(src);
    free(big);
    free(buf);
    fixture_free(&fx);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/dino_test_image_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    test_png_variants();
    test_jpeg();
    test_jpeg_grey();
    test_photo();
    test_bad_input();
    test_ops();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("could not remove %s\n", tmp);
    return test_finish();
}
