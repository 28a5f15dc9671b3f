// `dino segment-video --pretrained_weights M --frames DIR --mask FIRST.png
// --output_dir OUT`: the reference's video object segmentation by label
// propagation (eval_video_segmentation.py, docs/DOWNSTREAM.md) on one video:
// the frames are DIR's .jpg/.jpeg/.png files in name order, the first frame's
// objects come from an indexed PNG (0 background, 1..K objects). Writes one
// indexed PNG per frame, named like the frame, in the mask's palette (the
// first is the given mask, as the reference writes it), and overlay.png, a
// grid of frames with the masks blended in, to look at.
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "eval/attnmap.h"
#include "eval/segvideo.h"
#include "image/decode.h"
#include "image/ops.h"
#include "image/palette_png.h"

enum { STRIP_MAX_FRAMES = 12, STRIP_COLS = 6, STRIP_MAX_SIDE = 256 };

static int is_frame_name(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot || n[0] == '.') return 0;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    return !strcmp(ext, "jpg") || !strcmp(ext, "jpeg") || !strcmp(ext, "png");
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// The frame files of dir in name order (malloc'd names); dies when there are none.
static char **list_frames(const char *dir, int *n) {
    DIR *dp = opendir(dir);
    if (!dp) dino_die("cannot open the frames folder %s", dir);
    int cap = 64, k = 0;
    char **names = mallocCheck(sizeof(char *) * cap);
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!is_frame_name(e->d_name)) continue;
        if (k == cap) names = realloc(names, sizeof(char *) * (cap *= 2));
        if (!names) dino_die("out of memory listing %s", dir);
        names[k++] = strdup(e->d_name);
    }
    closedir(dp);
    if (k == 0) dino_die("%s holds no frames (.jpg, .jpeg or .png files)", dir);
    qsort(names, (size_t)k, sizeof(char *), cmp_names);
    *n = k;
    return names;
}

// OUT/<frame name with .png>.
static void output_path(char *path, size_t n, const char *out, const char *frame) {
    const char *dot = strrchr(frame, '.');
    snprintf(path, n, "%s/%.*s.png", out, (int)(dot - frame), frame);
}

static void load_frame(const char *dir, const char *name, int want_w, int want_h, Image *im) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (image_decode_file(path, 0, im, err, sizeof err) != 0) dino_die("%s", err);
    if (want_w && (im->w != want_w || im->h != want_h))
        dino_die("%s is %dx%d but the first frame is %dx%d; every frame of a video must have one size",
                 path, im->w, im->h, want_w, want_h);
}

// The first frame and its mask: an indexed PNG of the frame's size whose
// labels all have a palette colour.
static void load_first(const char *mask_path, const char *frames_dir, const char *name, LabelMap *mask,
                       Image *first) {
    char err[1024];
    if (label_png_read(mask_path, mask, err, sizeof err) != 0) dino_die("%s", err);
    if (!mask->indexed)
        dino_die("%s is a greyscale PNG, not an indexed (palette) PNG; the first-frame mask must be one, as DAVIS annotations are",
                 mask_path);
    load_frame(frames_dir, name, 0, 0, first);
    if (mask->w != first->w || mask->h != first->h)
        dino_die("%s is %dx%d but the first frame %s/%s is %dx%d", mask_path, mask->w, mask->h, frames_dir,
                 name, first->w, first->h);
    int maxl = 0;
    for (size_t i = 0; i < (size_t)mask->w * mask->h; i++)
        if (mask->labels[i] > maxl) maxl = mask->labels[i];
    if (maxl >= mask->ncolors)
        dino_die("%s holds label %d but its palette has %d colours", mask_path, maxl, mask->ncolors);
}

int cmd_segment_video(int argc, char **argv) {
    const char *frames_dir = NULL, *mask_path = NULL, *out = NULL;
    int quiet = 0;
    SegVideoConfig sc;
    segvideo_config_default(&sc);
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        EVAL_MODEL_FILE_ARG_SPECS(ma),
        {"frames", ARG_STRING, &frames_dir, "folder of the video's frames (.jpg/.jpeg/.png, in name order)"},
        {"mask", ARG_STRING, &mask_path, "the first frame's objects: an indexed PNG (0 background, 1..K)"},
        {"output_dir", ARG_STRING, &out, "folder for the masks (one PNG per frame) and overlay.png"},
        {"n_last_frames", ARG_INT, &sc.n_last_frames, "previous frames in the context besides the first", ARG_RANGE(0, SEGVIDEO_MAX_CONTEXT)},
        {"size_mask_neighborhood", ARG_INT, &sc.neighborhood, "only source patches this close count (0: all)", ARG_RANGE(0, ARG_MAX_IMAGE_SIDE)},
        {"topk", ARG_INT, &sc.topk, "affinities kept per target patch", ARG_RANGE(1, KNN_MAX_NEIGHBOURS)},
        {"image_size", ARG_INT, &sc.image_size, "the resized frame's shorter side", ARG_RANGE(1, ARG_MAX_IMAGE_SIDE)},
        {"quiet", ARG_BOOL, &quiet, "no progress lines"},
        {NULL, 0, NULL, NULL},
    };
    args_parse("segment-video", "--pretrained_weights FILE --frames DIR --mask FIRST.png --output_dir OUT [flags]",
               specs, argc, argv, NULL, 0);
    if (!ma.pretrained_weights) dino_die("dino segment-video needs --pretrained_weights FILE");
    if (!frames_dir) dino_die("dino segment-video needs --frames DIR");
    if (!mask_path) dino_die("dino segment-video needs --mask FIRST.png (the first frame's objects)");
    if (!out) dino_die("dino segment-video needs --output_dir DIR");
    if (sc.n_last_frames < 0 || sc.n_last_frames > 1000) dino_die("--n_last_frames must lie in [0, 1000], got %d", sc.n_last_frames);
    if (sc.topk < 1) dino_die("--topk must be at least 1, got %d", sc.topk);
    if (sc.neighborhood < 0) dino_die("--size_mask_neighborhood must be 0 or more, got %d", sc.neighborhood);
    if (sc.image_size < 1 || sc.image_size > 8192) dino_die("--image_size must lie in [1, 8192], got %d", sc.image_size);

    char err[1024], path[4096];
    int nframes;
    char **names = list_frames(frames_dir, &nframes);
    LabelMap mask;
    Image first;
    load_first(mask_path, frames_dir, names[0], &mask, &first);

    EvalModel em;
    eval_model_load(&ma, &em);
    eval_model_require_vit(&ma, &em, "video segmentation propagates labels over a ViT's patch tokens; "
                           "a ResNet has none");
    char err_dir[1024];
    if (dino_make_dirs(out, err_dir, sizeof err_dir)) dino_die("%s", err_dir);
    // Masks are named like the frames: writing them beside .png frames would overwrite the video.
    char *real_out = realpath(out, NULL), *real_frames = realpath(frames_dir, NULL);
    if (real_out && real_frames && !strcmp(real_out, real_frames))
        dino_die("--output_dir %s is the frames folder; the masks would overwrite the frames", out);
    free(real_out), free(real_frames);

    double t_first = dino_now();  // the first frame's features are computed here
    SegVideo *sv = segvideo_begin(&sc, &em.m.vit, &em.w, first.rgb, first.w, first.h, mask.labels, err, sizeof err);
    if (!sv) dino_die("%s/%s: %s", frames_dir, names[0], err);
    t_first = dino_now() - t_first;
    int rw, rh, gw, gh, C;
    segvideo_grid(sv, &rw, &rh, &gw, &gh, &C);
    if (!quiet)
        fprintf(stderr, "%d frames of %dx%d, resized to %dx%d: %dx%d patches of %d (%s), %d object%s\n", nframes,
                first.w, first.h, rw, rh, gw, gh, em.m.vit.patch, em.desc, C - 1, C == 2 ? "" : "s");

    // The overlay grid: up to STRIP_MAX_FRAMES frames spread over the video, as thumbnails.
    int nstrip = nframes < STRIP_MAX_FRAMES ? nframes : STRIP_MAX_FRAMES;
    double shrink = (double)STRIP_MAX_SIDE / (first.w > first.h ? first.w : first.h);
    if (shrink > 1) shrink = 1;
    int tw = (int)(first.w * shrink + 0.5), th = (int)(first.h * shrink + 0.5);
    if (tw < 1) tw = 1;
    if (th < 1) th = 1;
    uint8_t **tiles = callocCheck((size_t)nstrip, sizeof(uint8_t *));
    uint8_t *blend = mallocCheck((size_t)first.w * first.h * 3);
    int next_tile = 0;

    uint8_t *labels = mallocCheck((size_t)first.w * first.h);
    double t0 = dino_now() - t_first;
    for (int f = 0; f < nframes; f++) {
        Image im = first;
        double tf = dino_now();
        if (f > 0) {
            load_frame(frames_dir, names[f], first.w, first.h, &im);
            if (segvideo_next(sv, im.rgb, labels, err, sizeof err) != 0) dino_die("%s/%s: %s", frames_dir, names[f], err);
        } else {
            memcpy(labels, mask.labels, (size_t)first.w * first.h);
        }
        output_path(path, sizeof path, out, names[f]);
        if (label_png_write(path, labels, first.w, first.h, mask.palette, mask.ncolors, err, sizeof err) != 0)
            dino_die("%s", err);
        int want_tile = nstrip == 1 ? 0 : (int)((double)next_tile * (nframes - 1) / (nstrip - 1) + 0.5);
        if (next_tile < nstrip && f == want_tile) {
            segvideo_overlay(im.rgb, labels, first.w, first.h, mask.palette, mask.ncolors, blend);
            tiles[next_tile] = mallocCheck((size_t)tw * th * 3);
            image_resize_region(tiles[next_tile], tw, th, blend, first.w * 3, 0, 0, first.w, first.h,
                                RESAMPLE_BILINEAR);
            next_tile++;
        }
        if (!quiet)
            fprintf(stderr, "frame %d/%d %s -> %s (%.2f s)\n", f + 1, nframes, names[f], path,
                    dino_now() - tf + (f == 0 ? t_first : 0));
        if (f > 0) image_free(&im);
    }
    int gH, gW;
    uint8_t *grid = attnmap_grid((const uint8_t *const *)tiles, next_tile, th, tw,
                                 next_tile < STRIP_COLS ? next_tile : STRIP_COLS, 4, &gH, &gW);
    snprintf(path, sizeof path, "%s/overlay.png", out);
    if (png_write_rgb(path, gW, gH, grid, err, sizeof err) != 0) dino_die("%s", err);
    printf("%s: %d frames segmented in %.1f s; wrote %d masks and %s\n", frames_dir, nframes, dino_now() - t0,
           nframes, path);

    free(grid);
    for (int k = 0; k < nstrip; k++) free(tiles[k]);
    free(tiles), free(blend), free(labels);
    for (int f = 0; f < nframes; f++) free(names[f]);
    free(names);
    segvideo_free(sv);
    eval_model_free(&em);
    image_free(&first);
    label_map_free(&mask);
    return 0;
}
