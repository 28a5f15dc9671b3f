// attention_figure.h: input preparation and the pictures of `dino attention`.
#include "eval/attention_figure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "eval/attnmap.h"
#include "eval/npy.h"
#include "image/decode.h"
#include "image/ops.h"

int attention_input_prepare(const Image *im, const char *name, int size_n, const int *size,
                            int patch, int nh, AttentionInput *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    // 64-bit sizes, every limit checked before the resize allocates: one value
    // on a 100,000x1 image makes the longer side 22,400,000.
    int64_t rw = im->w, rh = im->h;
    if (size_n == 2) {
        rh = size[0];
        rw = size[1];
    } else if (size_n == 1) {
        if (im->w <= im->h) rw = size[0], rh = (int64_t)((double)size[0] * im->h / im->w);
        else rh = size[0], rw = (int64_t)((double)size[0] * im->w / im->h);
    }
    if (rw * rh > IMAGE_MAX_PIXELS) {
        dino_errf(err, errlen, "--image_size %d makes %s (%dx%d) %lldx%lld pixels, above the limit of "
                  "%lld; pass a smaller --image_size", size[0], name, im->w, im->h, (long long)rw,
                  (long long)rh, (long long)IMAGE_MAX_PIXELS);
        return -1;
    }
    int H = (int)(rh - rh % patch), W = (int)(rw - rw % patch);
    if (H < patch || W < patch) {
        dino_errf(err, errlen, "%s is %lldx%lld after resizing, smaller than one %dx%d patch", name,
                  (long long)rw, (long long)rh, patch, patch);
        return -1;
    }
    int64_t tokens = (int64_t)(H / patch) * (W / patch) + 1;
    double att_bytes = 4.0 * nh * (double)tokens * tokens * 2;
    if (att_bytes > 4e9) {
        dino_errf(err, errlen, "%dx%d at patch %d gives %lld tokens, whose attention needs %.1f GB; "
                  "pass a smaller --image_size", W, H, patch, (long long)tokens, att_bytes / 1e9);
        return -1;
    }
    const uint8_t *rgb = im->rgb;
    uint8_t *resized = NULL;
    if (rw != im->w || rh != im->h) {
        resized = mallocCheck((size_t)rw * rh * 3);
        image_resize_region(resized, (int)rw, (int)rh, im->rgb, im->w * 3, 0, 0, im->w, im->h,
                            RESAMPLE_BILINEAR);
        rgb = resized;
    }
    // Top-left crop to multiples of the patch, as the reference's img[:, :w, :h].
    out->crop = mallocCheck((size_t)W * H * 3);
    for (int y = 0; y < H; y++)
        memcpy(out->crop + (size_t)y * W * 3, rgb + (size_t)y * rw * 3, (size_t)W * 3);
    free(resized);
    out->x = mallocCheck((size_t)3 * W * H * sizeof(float));
    image_to_tensor(out->x, out->crop, W, H, IMAGENET_MEAN, IMAGENET_STD);
    out->rw = rw, out->rh = rh, out->W = W, out->H = H;
    out->gw = W / patch, out->gh = H / patch;
    return 0;
}

void attention_input_free(AttentionInput *in) {
    free(in->crop);
    free(in->x);
    memset(in, 0, sizeof *in);
}

static int write_png(const char *dir, const char *name, int w, int h, const uint8_t *rgb,
                     char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return png_write_rgb(path, w, h, rgb, err, errlen);
}

// The mask overlays: one per head into tiles[0..nh-1], and all heads over
// each other into *all. 0, or -1 with err filled.
static int write_masks(const char *dir, const AttentionInput *in, const float *maps, int nh,
                       int patch, double threshold, uint8_t **tiles, uint8_t **all, char *err,
                       size_t errlen) {
    int W = in->W, H = in->H, n = in->gh * in->gw;
    size_t bytes = (size_t)W * H * 3;
    float *mask = mallocCheck((size_t)nh * n * sizeof(float));
    attnmap_threshold(maps, nh, n, threshold, mask);
    uint8_t *acc = mallocCheck(bytes), *tmp = mallocCheck(bytes);
    memcpy(acc, in->crop, bytes);
    char name[128];
    int rc = 0;
    for (int j = 0; j < nh && rc == 0; j++) {
        uint8_t col[3];
        attnmap_head_color(j, col);
        tiles[j] = mallocCheck(bytes);
        attnmap_overlay(in->crop, H, W, mask + (size_t)j * n, in->gh, in->gw, patch, col, tiles[j]);
        snprintf(name, sizeof name, "mask_th%g_head%d.png", threshold, j);
        rc = write_png(dir, name, W, H, tiles[j], err, errlen);
        attnmap_overlay(acc, H, W, mask + (size_t)j * n, in->gh, in->gw, patch, col, tmp);
        memcpy(acc, tmp, bytes);
    }
    snprintf(name, sizeof name, "mask_th%g_all.png", threshold);
    if (rc == 0) rc = write_png(dir, name, W, H, acc, err, errlen);
    *all = acc;
    free(tmp);
    free(mask);
    return rc;
}

int attention_figure_write(const char *out_dir, const AttentionInput *in, const float *maps, int nh,
                           int patch, double threshold, char *err, size_t errlen) {
    if (dino_make_dirs(out_dir, err, errlen)) return -1;
    int W = in->W, H = in->H, n = in->gh * in->gw;
    int64_t shape[3] = {nh, in->gh, in->gw};
    char path[4096];
    snprintf(path, sizeof path, "%s/attn_maps.npy", out_dir);
    int rc = npy_write_f32(path, 3, shape, maps, err, errlen);
    if (rc == 0) rc = write_png(out_dir, "img.png", W, H, in->crop, err, errlen);

    // Grid tiles: the image, the heat maps, then (with masks) all heads and one per head.
    int ntiles = 1 + nh + (threshold > 0 ? 1 + nh : 0);
    uint8_t **tiles = callocCheck((size_t)ntiles, sizeof(uint8_t *));
    tiles[0] = in->crop;
    char name[128];
    for (int j = 0; j < nh && rc == 0; j++) {
        tiles[1 + j] = mallocCheck((size_t)W * H * 3);
        attnmap_heat_rgb(maps + (size_t)j * n, in->gh, in->gw, patch, tiles[1 + j]);
        snprintf(name, sizeof name, "attn-head%d.png", j);
        rc = write_png(out_dir, name, W, H, tiles[1 + j], err, errlen);
    }
    if (rc == 0 && threshold > 0)
        rc = write_masks(out_dir, in, maps, nh, patch, threshold, tiles + 2 + nh, &tiles[1 + nh],
                         err, errlen);
    if (rc == 0) {
        int gH, gW;
        uint8_t *grid = attnmap_grid((const uint8_t *const *)tiles, ntiles, H, W, 1 + nh, 4, &gH, &gW);
        rc = write_png(out_dir, "attn-grid.png", gW, gH, grid, err, errlen);
        free(grid);
    }
    for (int k = 1; k < ntiles; k++) free(tiles[k]);
    free(tiles);
    return rc;
}
