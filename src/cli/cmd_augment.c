// `dino augment IMAGE --out crops.png`: shows what DINO's multi-crop
// augmentation makes of one image (original, the global crops, the local
// crops; denormalised back to pixels) in one PNG. With --bench N the
// positional path is a dataset and the loader's throughput is measured
// instead (images per second over N batches).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "data/augment.h"
#include "data/loader.h"
#include "image/decode.h"
#include "image/ops.h"
#include "train/trainer.h"

static void paste(uint8_t *canvas, int cw, int x0, int y0, const uint8_t *img, int w, int h) {
    for (int y = 0; y < h; y++) memcpy(canvas + ((size_t)(y0 + y) * cw + x0) * 3, img + (size_t)y * w * 3, (size_t)w * 3);
}

// Back from the normalised tensor to bytes: round(clamp(x·std + mean, 0, 1)·255).
static void denormalise(uint8_t *out, const float *x, int S) {
    size_t n = (size_t)S * S;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n; i++) {
            float v = x[c * n + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c];
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            out[3 * i + c] = (uint8_t)lrintf(v * 255.0f);
        }
}

int cmd_augment(int argc, char **argv) {
    const char *out = "crops.png";
    int global_size = 224, local_size = 96, n_local = 8, seed = 0, epoch = 0, index = 0;
    int bench = 0, batch_size = 32, threads = dino_get_threads(), jpeg_min_side = 0;
    FloatList gscale = {2, {0.4f, 1.0f}}, lscale = {2, {0.05f, 0.4f}};
    ArgSpec specs[] = {
        {"out", ARG_STRING, &out, "output PNG"},
        {"global_crop_size", ARG_INT, &global_size, "global crop size", ARG_RANGE(1, ARG_MAX_IMAGE_SIDE)},
        {"local_crop_size", ARG_INT, &local_size, "local crop size", ARG_RANGE(1, ARG_MAX_IMAGE_SIDE)},
        {"local_crops_number", ARG_INT, &n_local, "number of local crops", ARG_RANGE(0, TRAIN_MAX_LOCAL_CROPS)},
        {"global_crops_scale", ARG_FLOAT_LIST, &gscale, "global crop area range", ARG_RANGE(0, 1)},
        {"local_crops_scale", ARG_FLOAT_LIST, &lscale, "local crop area range", ARG_RANGE(0, 1)},
        {"seed", ARG_INT, &seed, "random seed", ARG_RANGE(-ARG_MAX_COUNT, ARG_MAX_COUNT)},
        {"epoch", ARG_INT, &epoch, "epoch (part of the random key)", ARG_RANGE(-ARG_MAX_COUNT, ARG_MAX_COUNT)},
        {"index", ARG_INT, &index, "dataset index (part of the random key)", ARG_RANGE(-ARG_MAX_COUNT, ARG_MAX_COUNT)},
        {"bench", ARG_INT, &bench, "> 0: benchmark the loader over this many batches of the dataset at PATH", ARG_RANGE(0, ARG_MAX_COUNT)},
        {"batch_size", ARG_INT, &batch_size, "images per batch (--bench)", ARG_RANGE(1, ARG_MAX_BATCH)},
        {"workers", ARG_INT, &threads, "loader worker threads (--bench; default: the global --threads)", ARG_RANGE(0, ARG_MAX_THREADS)},
        {"jpeg_min_side", ARG_INT, &jpeg_min_side, "> 0: DCT-domain JPEG downscaling keeping sides >= this (--bench; not bit-exact with PIL)", ARG_RANGE(0, ARG_MAX_COUNT)},
        {NULL, 0, NULL, NULL},
    };
    const char *pos[1] = {NULL};
    int np = args_parse("augment", "IMAGE|DATASET [--out crops.png] [--bench N]", specs, argc, argv, pos, 1);
    if (np != 1) dino_die("dino augment: give one image (or, with --bench, one dataset path)");
    if (gscale.n != 2 || lscale.n != 2 || gscale.v[0] <= 0 || gscale.v[0] > gscale.v[1] || lscale.v[0] <= 0 ||
        lscale.v[0] > lscale.v[1])
        dino_die("dino augment: crop scales need two numbers lo hi with 0 < lo <= hi");
    AugmentConfig cfg;
    augment_config_default(&cfg);
    cfg.global_size = global_size;
    cfg.local_size = local_size;
    cfg.n_local = n_local;
    cfg.global_scale[0] = gscale.v[0];
    cfg.global_scale[1] = gscale.v[1];
    cfg.local_scale[0] = lscale.v[0];
    cfg.local_scale[1] = lscale.v[1];

    if (bench > 0) {
        char err[1024];
        Dataset *ds = dataset_open(pos[0], SPLIT_TRAIN, err, sizeof err);
        if (!ds) dino_die("%s", err);
        LoaderConfig lc;
        loader_config_default(&lc);
        lc.aug = cfg;
        lc.batch_size = batch_size;
        lc.seed = (uint64_t)seed;
        lc.threads = threads;
        lc.jpeg_min_side = jpeg_min_side;
        if (dataset_size(ds) < batch_size) lc.batch_size = (int)dataset_size(ds);
        printf("%s\n", dataset_describe(ds));
        double ips = loader_bench(ds, &lc, bench);
        printf("loader: %.1f images/s (%d threads, batch %d, %d batches, 2x%d + %dx%d crops%s)\n", ips, threads,
               lc.batch_size, bench, global_size, n_local, local_size, jpeg_min_side ? ", DCT-scaled JPEG" : "");
        dataset_close(ds);
        return 0;
    }

    Image im;
    char err[1024];
    if (image_decode_file(pos[0], 0, &im, err, sizeof err)) dino_die("%s", err);
    // Layout: row 1 the original (scaled to the global crop height) and the
    // global crops; row 2 the local crops. 4-pixel white gaps.
    const int gap = 4;
    // The original keeps its aspect up to 4 crop widths; a wider one (a
    // 100,000x1 image would need a 20 GB canvas) is shown squeezed.
    double aspect_w = (double)im.w * global_size / im.h;
    int ow = aspect_w < 1 ? 1 : aspect_w > 4.0 * global_size ? 4 * global_size : (int)lrint(aspect_w);
    int row1 = ow + 2 * (global_size + gap);
    int row2 = n_local * (local_size + gap) - (n_local ? gap : 0);
    int cw = row1 > row2 ? row1 : row2;
    int ch = global_size + (n_local ? gap + local_size : 0);
    uint8_t *canvas = mallocCheck((size_t)cw * ch * 3);
    memset(canvas, 255, (size_t)cw * ch * 3);
    uint8_t *orig = mallocCheck((size_t)ow * global_size * 3);
    image_resize_region(orig, ow, global_size, im.rgb, im.w * 3, 0, 0, im.w, im.h, RESAMPLE_BICUBIC);
    paste(canvas, cw, 0, 0, orig, ow, global_size);
    free(orig);
    int maxs = global_size > local_size ? global_size : local_size;
    float *x = mallocCheck(sizeof(float) * 3 * (size_t)maxs * maxs);
    uint8_t *u = mallocCheck((size_t)maxs * maxs * 3);
    for (int c = 0; c < augment_num_crops(&cfg); c++) {
        int S = augment_crop_size(&cfg, c);
        CropParams p;
        augment_params_for(&cfg, (uint64_t)seed, epoch, index, c, im.w, im.h, &p);
        augment_apply(&im, &p, S, x, u);
        denormalise(u, x, S);
        if (c < 2) paste(canvas, cw, ow + gap + c * (global_size + gap), 0, u, S, S);
        else paste(canvas, cw, (c - 2) * (local_size + gap), global_size + gap, u, S, S);
        printf("crop %d (%s %d): box %dx%d at (%d,%d)%s%s%s%s%s\n", c, c < 2 ? "global" : "local", S, p.w, p.h, p.j,
               p.i, p.flip ? ", flip" : "", p.jitter ? ", jitter" : "", p.gray ? ", grey" : "", p.blur ? ", blur" : "",
               p.solarize ? ", solarize" : "");
    }
    if (image_write_png(out, canvas, cw, ch, err, sizeof err)) dino_die("%s", err);
    printf("wrote %s (%dx%d)\n", out, cw, ch);
    free(x);
    free(u);
    free(canvas);
    image_free(&im);
    return 0;
}
