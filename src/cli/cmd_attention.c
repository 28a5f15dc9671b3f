// `dino attention IMAGE --pretrained_weights F --out DIR`: the last block's
// CLS attention per head, as visualize_attention.py (SPEC §10). The image is
// optionally resized (--image_size H W as Resize((H, W)), one value as
// Resize(int) on the shorter side; bilinear like the reference; default: the
// image's own size — the reference resizes to 480x480), normalised, cropped
// top-left to multiples of the patch size; position embeddings are
// interpolated to the grid. Writes img.png, attn-head{j}.png (viridis heat
// maps, min-max per head), with a threshold mask_th{t}_head{j}.png and
// mask_th{t}_all.png (overlays), attn-grid.png (everything in one image) and
// attn_maps.npy (heads, grid_h, grid_w).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "eval/attnmap.h"
#include "eval/npy.h"
#include "image/decode.h"
#include "image/ops.h"

static void write_png(const char *dir, const char *name, int w, int h, const uint8_t *rgb) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (png_write_rgb(path, w, h, rgb, err, sizeof err) != 0) dino_die("%s", err);
}

int cmd_attention(int argc, char **argv) {
    const char *out = ".";
    IntList image_size = {0, {0}};
    // Parsed as a double: the reference computes 1 - threshold on a Python float,
    // and 1 - (double)0.6f would put the cut one float32 step lower.
    const char *threshold_arg = "0.6";
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        EVAL_MODEL_FILE_ARG_SPECS(ma),
        {"image_size", ARG_INT_LIST, &image_size, "resize to H W (or the shorter side to one value); default: as is", ARG_RANGE(1, ATTENTION_MAX_IMAGE_SIDE)},
        {"threshold", ARG_STRING, &threshold_arg, "mass kept by the masks (0: no masks)"},
        {"out", ARG_STRING, &out, "output folder"},
        {"output_dir", ARG_STRING, &out, "same as --out"},
        {NULL, 0, NULL, NULL},
    };
    const char *pos[1] = {NULL};
    int np = args_parse("attention", "IMAGE --pretrained_weights FILE [--out DIR] [flags]", specs,
                        argc, argv, pos, 1);
    if (np != 1) dino_die("dino attention needs an image file as its argument");
    if (!ma.pretrained_weights) dino_die("dino attention needs --pretrained_weights FILE");
    if (image_size.n > 2) dino_die("--image_size takes one or two numbers (H W)");
    char *tend;
    double threshold = strtod(threshold_arg, &tend);
    if (*tend || tend == threshold_arg || !(threshold >= 0 && threshold <= 1))
        dino_die("--threshold must be a number in [0, 1], got '%s'", threshold_arg);

    char err[1024];
    Image im = {0};
    if (image_decode_file(pos[0], 0, &im, err, sizeof err) != 0) dino_die("%s", err);
    EvalModel em;
    eval_model_load(&ma, &em);
    eval_model_require_vit(&ma, &em, "a ResNet has no attention maps (dino attention needs a ViT)");
    const ViTConfig *cfg = &em.m.vit;
    int p = cfg->patch;

    // Resize (Pillow bilinear with antialias, as torchvision's PIL path). The
    // sizes are 64-bit and every limit is checked before the resize allocates:
    // one value on a 100,000x1 image makes the longer side 22,400,000.
    int64_t rw = im.w, rh = im.h;
    if (image_size.n == 2) {
        rh = image_size.v[0];
        rw = image_size.v[1];
    } else if (image_size.n == 1) {
        int s = image_size.v[0];
        if (im.w <= im.h) rw = s, rh = (int64_t)((double)s * im.h / im.w);
        else rh = s, rw = (int64_t)((double)s * im.w / im.h);
    }
    if (rw * rh > IMAGE_MAX_PIXELS)
        dino_die("--image_size %d makes %s (%dx%d) %lldx%lld pixels, above the limit of %lld; pass a "
                 "smaller --image_size", image_size.v[0], pos[0], im.w, im.h, (long long)rw,
                 (long long)rh, (long long)IMAGE_MAX_PIXELS);
    int H = (int)(rh - rh % p), W = (int)(rw - rw % p);
    if (H < p || W < p)
        dino_die("%s is %lldx%lld after resizing, smaller than one %dx%d patch", pos[0],
                 (long long)rw, (long long)rh, p, p);
    int gh = H / p, gw = W / p, nh = cfg->heads;
    int64_t tokens = (int64_t)gh * gw + 1;
    double att_bytes = 4.0 * nh * (double)tokens * tokens * 2;
    if (att_bytes > 4e9)
        dino_die("%dx%d at patch %d gives %lld tokens, whose attention needs %.1f GB; pass a smaller "
                 "--image_size", W, H, p, (long long)tokens, att_bytes / 1e9);
    const int T = (int)tokens;
    uint8_t *rgb = im.rgb;
    if (rw != im.w || rh != im.h) {
        rgb = mallocCheck((size_t)rw * rh * 3);
        image_resize_region(rgb, (int)rw, (int)rh, im.rgb, im.w * 3, 0, 0, im.w, im.h,
                            RESAMPLE_BILINEAR);
    }
    // Top-left crop to multiples of the patch, as the reference's img[:, :w, :h].
    uint8_t *crop = mallocCheck((size_t)W * H * 3);
    for (int y = 0; y < H; y++) memcpy(crop + (size_t)y * W * 3, rgb + (size_t)y * rw * 3, (size_t)W * 3);
    float *x = mallocCheck((size_t)3 * W * H * sizeof(float));
    image_to_tensor(x, crop, W, H, IMAGENET_MEAN, IMAGENET_STD);

    struct stat st;
    if (stat(out, &st) != 0 && mkdir(out, 0755) != 0) dino_die("cannot create the output folder %s", out);

    double t0 = dino_now();
    struct ViTActs *acts = vit_acts_create(cfg, 1, H, W, 0);
    vit_forward(cfg, &em.w, acts, x, 1, NULL);
    float *maps = mallocCheck((size_t)nh * (T - 1) * sizeof(float));
    attnmap_cls(vit_last_attention(acts), nh, T, maps);
    double secs = dino_now() - t0;
    vit_acts_free(acts);

    int64_t shape[3] = {nh, gh, gw};
    char path[4096];
    snprintf(path, sizeof path, "%s/attn_maps.npy", out);
    if (npy_write_f32(path, 3, shape, maps, err, sizeof err) != 0) dino_die("%s", err);
    write_png(out, "img.png", W, H, crop);

    // Tiles for the grid: image, heat maps, then (with masks) all-heads overlay and one per head.
    int ntiles = 1 + nh + (threshold > 0 ? 1 + nh : 0);
    uint8_t **tiles = callocCheck((size_t)ntiles, sizeof(uint8_t *));
    tiles[0] = crop;
    char name[128];
    for (int j = 0; j < nh; j++) {
        tiles[1 + j] = mallocCheck((size_t)W * H * 3);
        attnmap_heat_rgb(maps + (size_t)j * (T - 1), gh, gw, p, tiles[1 + j]);
        snprintf(name, sizeof name, "attn-head%d.png", j);
        write_png(out, name, W, H, tiles[1 + j]);
    }
    if (threshold > 0) {
        float *mask = mallocCheck((size_t)nh * (T - 1) * sizeof(float));
        attnmap_threshold(maps, nh, T - 1, threshold, mask);
        uint8_t *all = mallocCheck((size_t)W * H * 3), *tmp = mallocCheck((size_t)W * H * 3);
        memcpy(all, crop, (size_t)W * H * 3);
        for (int j = 0; j < nh; j++) {
            uint8_t col[3];
            attnmap_head_color(j, col);
            uint8_t *ov = mallocCheck((size_t)W * H * 3);
            attnmap_overlay(crop, H, W, mask + (size_t)j * (T - 1), gh, gw, p, col, ov);
            snprintf(name, sizeof name, "mask_th%g_head%d.png", threshold, j);
            write_png(out, name, W, H, ov);
            tiles[2 + nh + j] = ov;
            attnmap_overlay(all, H, W, mask + (size_t)j * (T - 1), gh, gw, p, col, tmp);
            memcpy(all, tmp, (size_t)W * H * 3);
        }
        snprintf(name, sizeof name, "mask_th%g_all.png", threshold);
        write_png(out, name, W, H, all);
        tiles[1 + nh] = all;
        free(tmp);
        free(mask);
    }
    int gH, gW;
    int cols = 1 + nh;
    uint8_t *grid = attnmap_grid((const uint8_t *const *)tiles, ntiles, H, W, cols, 4, &gH, &gW);
    write_png(out, "attn-grid.png", gW, gH, grid);
    printf("%s: %lldx%lld -> %dx%d patches of %d, %d heads (%s), forward %.2f s; wrote %s/img.png, "
           "attn-head*.png,%s attn-grid.png, attn_maps.npy\n",
           pos[0], (long long)rw, (long long)rh, gw, gh, p, nh, em.desc, secs, out, threshold > 0 ? " mask_th*.png," : "");
    // vit_last_attention has dropped the registers' rows and columns.
    if (cfg->n_registers)
        printf("the model has %d registers: the maps are CLS attention to patch tokens only, the "
               "register columns dropped\n", cfg->n_registers);
    free(grid);
    for (int k = 1; k < ntiles; k++) free(tiles[k]);
    free(tiles);
    free(crop);
    free(x);
    free(maps);
    if (rgb != im.rgb) free(rgb);
    image_free(&im);
    eval_model_free(&em);
    return 0;
}
