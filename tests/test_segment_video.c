// Video object segmentation end to end, and the pieces it is built from:
// - the frame resize equals cv2.resize(INTER_LINEAR) and the mask resize
//   Pillow's NEAREST, exactly, up and down (tools/make_video_fixtures.py);
// - indexed PNGs round-trip labels and palette; RGB PNGs are refused;
// - `dino segment-video` then `dino davis-eval` through the built binary on a
//   synthetic video made here: two textured objects of distinctive colours
//   moving over a textured background, with ground-truth masks, and a tiny
//   ViT with the reference's random initialisation (untrained). Outputs
//   exist (one indexed PNG per frame in the mask's palette, the overlay),
//   the printed scores lie in range, and propagation follows the moving
//   objects: its J beats repeating the first frame's mask (scored the same way);
// - the whole pipeline against a restatement of eval_video_segmentation.py
//   (tools/make_video_fixtures.py) with the tiny ViT of eval_tiny_vit.pth on
//   the same video as PNG frames: the soft masks at patch resolution of every
//   frame (the context queue filled and emptied) in-process, and the labels
//   `dino segment-video` writes, equal wherever two channels are not near a tie;
// - user errors are one line with exit status 1: an RGB mask, frames of
//   different sizes, an empty folder, the frames folder as the output, a
//   missing result file.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "eval/segvideo.h"
#include "eval/attnmap.h"
#include "fixture.h"
#include "image/decode.h"
#include "image/palette_png.h"
#include "image/resize_video.h"
#include "io/model_io.h"
#include "model.h"
#include "testlib.h"
#include "tiny_vit.h"

static const char *DINO;  // the dino binary of this build

static int one_line(const char *s) { return *s && !strchr(s, '\n'); }

static uint8_t *bytes_of(const FixtureTensor *t) {
    uint8_t *b = malloc(t->numel);
    for (size_t i = 0; i < t->numel; i++) b[i] = (uint8_t)t->data[i];
    return b;
}

static void resize_against_fixture(void) {
    Fixture fx = fixture_load("video_resize.bin");
    const FixtureTensor *cases = fixture_get(&fx, "cases");
    for (int i = 0; i < (int)cases->shape[0]; i++) {
        int w = (int)cases->data[4 * i], h = (int)cases->data[4 * i + 1];
        int W = (int)cases->data[4 * i + 2], H = (int)cases->data[4 * i + 3];
        char name[32];
        snprintf(name, sizeof name, "cv%d_in", i);
        uint8_t *in = bytes_of(fixture_get(&fx, name));
        snprintf(name, sizeof name, "cv%d_out", i);
        uint8_t *want = bytes_of(fixture_get(&fx, name));
        uint8_t *got = malloc((size_t)W * H * 3);
        resize_cv_linear(got, W, H, in, w, h, 3);
        int differ = 0;
        for (size_t k = 0; k < (size_t)W * H * 3; k++) differ += got[k] != want[k];
        CHECK(differ == 0, "cv2.resize INTER_LINEAR %dx%d -> %dx%d: every byte equal (%d differ)", w, h, W, H, differ);
        free(in), free(want), free(got);

        snprintf(name, sizeof name, "nn%d_in", i);
        in = bytes_of(fixture_get(&fx, name));
        snprintf(name, sizeof name, "nn%d_out", i);
        want = bytes_of(fixture_get(&fx, name));
        got = malloc((size_t)W * H);
        resize_pil_nearest(got, W, H, in, w, h);
        differ = 0;
        for (size_t k = 0; k < (size_t)W * H; k++) differ += got[k] != want[k];
        CHECK(differ == 0, "Pillow NEAREST %dx%d -> %dx%d: every label equal (%d differ)", w, h, W, H, differ);
        free(in), free(want), free(got);
    }
    // Pillow's running sum at DAVIS sizes: which source column each output column reads.
    const FixtureTensor *spans = fixture_get(&fx, "spans");
    for (int i = 0; i < (int)spans->shape[0]; i++) {
        int a = (int)spans->data[2 * i], b = (int)spans->data[2 * i + 1];
        char name[32];
        snprintf(name, sizeof name, "nnmap%d", i);
        const float *map = fixture_get(&fx, name)->data;
        uint8_t *lo = malloc((size_t)a), *hi = malloc((size_t)a), *glo = malloc((size_t)b), *ghi = malloc((size_t)b);
        for (int x = 0; x < a; x++) lo[x] = (uint8_t)(x & 255), hi[x] = (uint8_t)(x >> 8);
        resize_pil_nearest(glo, b, 1, lo, a, 1);
        resize_pil_nearest(ghi, b, 1, hi, a, 1);
        int differ = 0;
        for (int x = 0; x < b; x++) differ += glo[x] + 256 * ghi[x] != (int)map[x];
        CHECK(differ == 0, "Pillow NEAREST %d -> %d columns: every source index equal (%d differ)", a, b, differ);
        free(lo), free(hi), free(glo), free(ghi);
    }
    fixture_free(&fx);
    int fw, fh;
    video_frame_size(854, 480, 480, &fw, &fh);
    CHECK(fw == 832 && fh == 480, "a DAVIS 854x480 frame is resized to 832x480 (got %dx%d)", fw, fh);
    video_frame_size(480, 910, 480, &fw, &fh);
    CHECK(fw == 480 && fh == 896, "a portrait 480x910 frame is resized to 480x896 (got %dx%d)", fw, fh);
}

static const uint8_t PALETTE[9] = {0, 0, 0, 128, 0, 0, 0, 128, 0};

static void palette_png_roundtrip(const char *dir) {
    char path[1024], err[256] = "";
    uint8_t lab[6 * 5];
    for (int i = 0; i < 30; i++) lab[i] = (uint8_t)(i * 7 % 3);
    snprintf(path, sizeof path, "%s/lab.png", dir);
    CHECK(label_png_write(path, lab, 6, 5, PALETTE, 3, err, sizeof err) == 0, "an indexed PNG is written (%s)", err);
    LabelMap m;
    int rc = label_png_read(path, &m, err, sizeof err);
    CHECK(rc == 0 && m.indexed && m.w == 6 && m.h == 5 && m.ncolors == 3 && !memcmp(m.labels, lab, 30) &&
              !memcmp(m.palette, PALETTE, 9),
          "it reads back: the same labels, indexed, the same 3-colour palette");
    if (rc == 0) label_map_free(&m);
    lab[3] = 3;
    CHECK(label_png_write(path, lab, 6, 5, PALETTE, 3, err, sizeof err) == -1, "a label without a colour is refused (%s)", err);
    // A truncated file: refused with its name, no crash.
    size_t len = 0;
    uint8_t *bytes = test_read_file(path, &len);
    snprintf(path, sizeof path, "%s/cut.png", dir);
    test_write_file(path, bytes, len / 2);
    free(bytes);
    rc = label_png_read(path, &m, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "cut.png"), "a truncated PNG is refused, naming it (%s)", err);
    uint8_t rgb[6 * 5 * 3] = {0};
    snprintf(path, sizeof path, "%s/rgb.png", dir);
    image_write_png(path, rgb, 6, 5, err, sizeof err);
    rc = label_png_read(path, &m, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "rgb.png") && strstr(err, "RGB"), "an RGB PNG is refused as a label map (%s)", err);
}

// The synthetic video: W x H frames, a textured grey-green background, object 1
// (yellow, textured) moving right and object 2 (blue, textured) moving left.
enum { W = 160, H = 80, NF = 6 };

static int object_at(int f, int x, int y) {
    int x1 = 8 + 8 * f, y1 = 10;  // 32x32
    int x2 = 124 - 6 * f, y2 = 50;  // 24x24
    if (x >= x1 && x < x1 + 32 && y >= y1 && y < y1 + 32) return 1;
    if (x >= x2 && x < x2 + 24 && y >= y2 && y < y2 + 24) return 2;
    return 0;
}

static void make_frame(int f, uint8_t *rgb, uint8_t *labels) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgb + ((size_t)y * W + x) * 3;
            int t = (x * 13 + y * 7) % 23, u = ((x / 3) * 5 + (y / 2) * 11) % 17;
            int o = object_at(f, x, y);
            labels[y * W + x] = (uint8_t)o;
            if (o == 1) p[0] = (uint8_t)(220 + t), p[1] = (uint8_t)(190 + u), p[2] = (uint8_t)(20 + t);
            else if (o == 2) p[0] = (uint8_t)(20 + u), p[1] = (uint8_t)(40 + t), p[2] = (uint8_t)(200 + 2 * u);
            else p[0] = (uint8_t)(100 + 2 * t), p[1] = (uint8_t)(120 + 2 * u), p[2] = (uint8_t)(90 + t);
        }
}

// Against the restated reference: PNG frames (no JPEG decoder in the way), the
// model from eval_tiny_vit.pth, --image_size 64, 3 previous frames, window 4.
static void against_reference(const char *dir) {
    Fixture fx = fixture_load("video_e2e.bin");
    const float *cfg = fixture_get(&fx, "cfg")->data;
    SegVideoConfig sc = {.image_size = (int)cfg[0], .n_last_frames = (int)cfg[1], .neighborhood = (int)cfg[2],
                         .topk = (int)cfg[3]};
    int nf = (int)cfg[4];
    char frames[600], path[4096], err[512] = "", cmd[8192], out[16384];
    snprintf(frames, sizeof frames, "%s/png_frames", dir);
    mkdir(frames, 0755);
    uint8_t *rgb[NF], *lab = malloc((size_t)W * H), *first = malloc((size_t)W * H);
    for (int f = 0; f < nf && f < NF; f++) {
        rgb[f] = malloc((size_t)W * H * 3);
        make_frame(f, rgb[f], f == 0 ? first : lab);
        snprintf(path, sizeof path, "%s/%05d.png", frames, f);
        image_write_png(path, rgb[f], W, H, err, sizeof err);
    }
    snprintf(path, sizeof path, "%s/first.png", dir);
    label_png_write(path, first, W, H, PALETTE, 3, err, sizeof err);

    const char *model = test_fixture_path("eval_tiny_vit.pth");
    ModelLoadOptions opt = {.checkpoint_key = "teacher", .head = MODEL_HEAD_NONE, .heads = 3};
    DinoModel m;
    float *params = NULL;
    int rc = model_load(model, &opt, &m, &params, err, sizeof err);
    CHECK(rc == 0, "eval_tiny_vit.pth loads (%s)", rc ? err : "ok");
    if (rc) return;
    ViTWeights vw;
    model_bind(&m, params, &vw, NULL);
    SegVideo *sv = segvideo_begin(&sc, &m.vit, &vw, rgb[0], W, H, first, err, sizeof err);
    CHECK(sv != NULL, "propagation starts (%s)", sv ? "ok" : err);
    if (!sv) return;
    int rw, rh, gw, gh, C;
    segvideo_grid(sv, &rw, &rh, &gw, &gh, &C);
    for (int f = 1; f < nf; f++) {
        rc = segvideo_next(sv, rgb[f], lab, err, sizeof err);
        char name[32], what[160];
        snprintf(name, sizeof name, "seg%d", f);
        const FixtureTensor *want = fixture_get(&fx, name);
        CHECK(rc == 0 && (int)want->numel == C * gw * gh, "frame %d propagates, %d channels of %dx%d", f, C, gw, gh);
        snprintf(what, sizeof what, "frame %d: soft mask equals the restated reference's (%d context frames)", f,
                 1 + (f - 1 < sc.n_last_frames ? f - 1 : sc.n_last_frames));
        if (rc == 0 && (int)want->numel == C * gw * gh)
            test_close(what, segvideo_soft_mask(sv), want->data, want->numel, 1e-6, 1e-5);
    }
    segvideo_free(sv);

    snprintf(cmd, sizeof cmd, "%s segment-video --quiet --heads 3 --pretrained_weights %s --frames %s --mask %s "
             "--output_dir %s/ref_out --image_size %d --n_last_frames %d --size_mask_neighborhood %d --topk %d",
             DINO, model, frames, path, dir, sc.image_size, sc.n_last_frames, sc.neighborhood, sc.topk);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0, "dino segment-video runs on the .pth model (exit %d)", rc);
    if (rc) printf("%s\n", out);
    LabelMap want, ties;
    int ok = label_png_read(test_fixture_path("video_e2e_labels.png"), &want, err, sizeof err) == 0 &&
             label_png_read(test_fixture_path("video_e2e_ties.png"), &ties, err, sizeof err) == 0;
    CHECK(ok && want.w == W && want.h == H * (nf - 1), "the reference's labels read (%s)", ok ? "ok" : err);
    if (ok) {
        long differ = 0, near = 0, objects = 0;
        for (int f = 1; f < nf; f++) {
            snprintf(path, sizeof path, "%s/ref_out/%05d.png", dir, f);
            LabelMap got;
            if (label_png_read(path, &got, err, sizeof err) != 0) {
                differ += W * H;
                continue;
            }
            for (size_t i = 0; i < (size_t)W * H; i++) {
                size_t j = (size_t)(f - 1) * W * H + i;
                objects += want.labels[j] != 0;
                if (ties.labels[j]) near++;
                else differ += got.labels[i] != want.labels[j];
            }
            label_map_free(&got);
        }
        CHECK(differ == 0 && objects > 0, "segment-video's masks equal the reference's at every pixel without a near tie "
              "(%ld differ, %ld near ties, %ld object pixels, %d frames)", differ, near, objects, nf - 1);
        label_map_free(&want), label_map_free(&ties);
    }
    for (int f = 0; f < nf && f < NF; f++) free(rgb[f]);
    free(lab), free(first), free(params);
    model_free(&m);
    fixture_free(&fx);
}

// J-Mean from davis-eval's printout: the second value of the line after the global header.
static int parse_global(const char *out, double v[7]) {
    const char *h = strstr(out, "J&F-Mean");
    if (!h) return 0;
    const char *line = strchr(h, '\n');
    if (!line) return 0;
    return sscanf(line + 1, "%lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7;
}

int main(int argc, char **argv) {
    (void)argc;
    dino_set_threads(2);
    DINO = test_dino_path();
    if (!DINO) DINO = "build/dino";
    const char *dir = test_tmpdir("segment_video");
    char path[4096], cmd[8192], out[16384], err[256] = "";

    resize_against_fixture();
    palette_png_roundtrip(dir);
    against_reference(dir);

    // A tiny untrained ViT (patch 8, D 48, 2 blocks), the reference's random init.
    ViTConfig vc = tiny_vit_config();
    DinoModel m;
    model_build(&m, &vc, NULL, 0);
    float *params = calloc(m.table.total, sizeof(float));
    ViTWeights vw;
    model_bind(&m, params, &vw, NULL);
    vit_init(&vc, &vw, 26);
    char model_path[512];
    snprintf(model_path, sizeof model_path, "%s/tiny.dino", dir);
    CHECK(model_save(model_path, &m, params, err, sizeof err) == 0, "tiny model saved (%s)", err);

    // Frames as JPEG (the usual input), ground truth as indexed PNGs.
    char frames[512], ann[512], res[512], still[512];
    snprintf(frames, sizeof frames, "%s/frames", dir);
    snprintf(ann, sizeof ann, "%s/ann", dir);
    snprintf(res, sizeof res, "%s/res", dir);
    snprintf(still, sizeof still, "%s/still", dir);
    mkdir(frames, 0755), mkdir(ann, 0755), mkdir(still, 0755);
    uint8_t *rgb = malloc((size_t)W * H * 3), *lab = malloc((size_t)W * H), *first = malloc((size_t)W * H);
    for (int f = 0; f < NF; f++) {
        make_frame(f, rgb, lab);
        if (f == 0) memcpy(first, lab, (size_t)W * H);
        snprintf(path, sizeof path, "%s/%05d.jpg", frames, f);
        image_write_jpeg(path, rgb, W, H, 95, err, sizeof err);
        snprintf(path, sizeof path, "%s/%05d.png", ann, f);
        label_png_write(path, lab, W, H, PALETTE, 3, err, sizeof err);
        // The trivial baseline: the first mask repeated.
        snprintf(path, sizeof path, "%s/%05d.png", still, f);
        label_png_write(path, first, W, H, PALETTE, 3, err, sizeof err);
    }

    // --image_size 64: 160x80 frames become 128x64, a 16x8 grid of patches.
    snprintf(cmd, sizeof cmd, "%s segment-video --threads 2 --pretrained_weights %s --frames %s --mask %s/00000.png "
             "--output_dir %s --image_size 64 --size_mask_neighborhood 4", DINO, model_path, frames, ann, res);
    int rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0, "dino segment-video runs (exit %d)", rc);
    if (rc) printf("%s\n", out);
    CHECK(strstr(out, "resized to 128x64") && strstr(out, "frame 6/6"), "it reports the resized size and a progress line per frame");
    int outputs_ok = 1;
    for (int f = 0; f < NF; f++) {
        snprintf(path, sizeof path, "%s/%05d.png", res, f);
        LabelMap lm;
        if (label_png_read(path, &lm, err, sizeof err) != 0) {
            outputs_ok = 0;
            printf("  %s\n", err);
            continue;
        }
        outputs_ok &= lm.indexed && lm.w == W && lm.h == H && lm.ncolors == 3 && !memcmp(lm.palette, PALETTE, 9);
        if (f == 0) outputs_ok &= !memcmp(lm.labels, first, (size_t)W * H);
        label_map_free(&lm);
    }
    CHECK(outputs_ok, "one indexed PNG per frame, named like the frame, at the frame's size, in the mask's palette; the first is the mask");
    snprintf(path, sizeof path, "%s/overlay.png", res);
    int ow = 0, oh = 0;
    uint8_t *ov = png_read_rgb(path, &ow, &oh, err, sizeof err);
    CHECK(ov && ow > 6 * W && oh > H, "overlay.png holds the 6 frames in a row (%dx%d)", ow, oh);
    free(ov);

    snprintf(cmd, sizeof cmd, "%s davis-eval --results %s --annotations %s/", DINO, res, ann);  // "ann/" names ann
    rc = test_run_command(cmd, out, sizeof out);
    double g[7] = {0}, s[7] = {0};
    int parsed = rc == 0 && parse_global(out, g);  // before the checks that print g
    CHECK(parsed, "dino davis-eval runs and prints the global table (exit %d)", rc);
    printf("%s\n", out);
    int in_range = 1;
    for (int k = 0; k < 7; k++) in_range &= (k == 3 || k == 6) ? g[k] >= -1 && g[k] <= 1 : g[k] >= 0 && g[k] <= 1;
    CHECK(parsed && in_range, "J&F, J and F means and recalls lie in [0, 1], decays in [-1, 1]");
    CHECK(strstr(out, "ann_1") && strstr(out, "ann_2"), "the per-sequence table names both objects");
    snprintf(cmd, sizeof cmd, "%s davis-eval --results %s --annotations %s", DINO, still, ann);
    rc = test_run_command(cmd, out, sizeof out);
    int still_ok = rc == 0 && parse_global(out, s);
    CHECK(still_ok, "the still baseline scores too");
    CHECK(g[1] > s[1] + 0.1, "propagation follows the moving objects: J %.3f beats the first mask repeated, J %.3f",
          g[1], s[1]);
    snprintf(path, sizeof path, "%s/global_results-val.csv", res);
    struct stat st;
    CHECK(stat(path, &st) == 0, "davis-eval writes global_results-val.csv into the results folder");

    // DAVIS's layout: a folder per sequence, the ones to score listed in a file.
    char tree[600];
    snprintf(tree, sizeof tree, "%s/tree", dir);
    mkdir(tree, 0755);
    snprintf(path, sizeof path, "%s/ann", tree);
    CHECK(symlink(res, path) == 0, "results tree made");
    snprintf(path, sizeof path, "%s/val.txt", dir);
    test_write_file(path, "ann\n", 4);
    snprintf(cmd, sizeof cmd, "%s davis-eval --results %s --annotations %s --sequences %s", DINO, tree, dir, path);
    rc = test_run_command(cmd, out, sizeof out);
    double t[7] = {0};
    int listed_ok = rc == 0 && parse_global(out, t) && t[0] == g[0] && strstr(out, "ann_2");
    CHECK(listed_ok,
          "--sequences scores the listed sequence folders, with the same numbers (J&F %.3f)", t[0]);

    // User errors: one line, exit 1.
    snprintf(path, sizeof path, "%s/colour.png", dir);
    {
        uint8_t *g3 = calloc((size_t)W * H * 3, 1);
        image_write_png(path, g3, W, H, err, sizeof err);
        free(g3);
    }
    snprintf(cmd, sizeof cmd, "%s segment-video --pretrained_weights %s --frames %s --mask %s --output_dir %s/e1",
             DINO, model_path, frames, path, dir);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "colour.png") && strstr(out, "indexed"),
          "an RGB mask, not an indexed PNG: one line naming it (%s)", out);
    snprintf(path, sizeof path, "%s/00006.jpg", frames);
    uint8_t *small = calloc(40 * 20 * 3, 1);
    image_write_jpeg(path, small, 40, 20, 90, err, sizeof err);
    snprintf(cmd, sizeof cmd, "%s segment-video --quiet --image_size 64 --pretrained_weights %s --frames %s --mask %s/00000.png --output_dir %s/e2",
             DINO, model_path, frames, ann, dir);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "00006.jpg") && strstr(out, "40x20"),
          "a frame of another size: one line naming it (%s)", out);
    unlink(path);
    free(small);
    snprintf(path, sizeof path, "%s/empty", dir);
    mkdir(path, 0755);
    snprintf(cmd, sizeof cmd, "%s segment-video --pretrained_weights %s --frames %s --mask %s/00000.png --output_dir %s/e3",
             DINO, model_path, path, ann, dir);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "empty") && strstr(out, "no frames"),
          "an empty frames folder: one line (%s)", out);
    snprintf(cmd, sizeof cmd, "%s segment-video --pretrained_weights %s --frames %s --mask %s/00000.png --output_dir %s/",
             DINO, model_path, frames, ann, frames);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "overwrite"), "the frames folder as the output folder: refused (%s)", out);
    snprintf(path, sizeof path, "%s/00003.png", res);
    unlink(path);
    snprintf(cmd, sizeof cmd, "%s davis-eval --results %s --annotations %s", DINO, res, ann);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "00003.png") && strstr(out, "missing"),
          "a missing result file: one line naming it (%s)", out);

    free(rgb), free(lab), free(first), free(params);
    model_free(&m);
    test_tmpdir_remove();
    return test_finish();
}
