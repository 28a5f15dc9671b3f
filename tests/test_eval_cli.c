// End-to-end tests of `dino features`, `dino knn`, `dino linear` and
// `dino attention` through the built binary (build/dino), on a tiny ViT saved
// with model_save and a small ImageFolder of PNGs written here:
// - features written by the CLI equal features computed in-process (the data
//   module's eval transform + features_from_images) to the last bit; the
//   .npy headers read back with the right shapes and int64 labels;
// - k-NN from the .npy folder and straight from the model give the same
//   (perfect, the classes are separable by colour) result;
// - attention writes every file, attn_maps.npy equals the in-process maps;
// - user errors exit with status 1 and one line: wrong architecture, an
//   unreadable image, a broken model file, labels missing for k-NN.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "data/augment.h"
#include "engine_fill.h"  // engine_fill_params
#include "eval/attnmap.h"
#include "eval/features.h"
#include "eval/knn_model.h"
#include "eval/linear_full.h"
#include "eval/npy.h"
#include "fixture.h"
#include "rng.h"
#include <math.h>
#include "image/decode.h"
#include "image/ops.h"
#include "io/model_io.h"
#include "testlib.h"
#include "tiny_vit.h"

static char DIR_[256];
static const char *DINO;  // the dino binary of this build

static int one_line(const char *s) { return *s && !strchr(s, '\n'); }

// The lines of a text file (at most max, each below 1024 bytes), or -1.
static int read_lines(const char *path, char lines[][1024], int max) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    char buf[1024];
    while (n < max && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = 0;
        snprintf(lines[n++], 1024, "%s", buf);
    }
    fclose(f);
    return n;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// A 40x36 image whose colour says its class, with a little texture.
static void make_image(uint8_t *rgb, int w, int h, int cls, int k) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            int t = (x * 7 + y * 13 + k * 29) % 40;
            p[0] = (uint8_t)(cls == 0 ? 200 + t / 2 : 30 + t);
            p[1] = (uint8_t)(80 + t);
            p[2] = (uint8_t)(cls == 1 ? 200 + t / 2 : 30 + t);
        }
}

int main(int argc, char **argv) {
    (void)argc;
    dino_set_threads(2);
    DINO = test_dino_path();
    if (!DINO) DINO = "build/dino";
    snprintf(DIR_, sizeof DIR_, "/tmp/dino_test_eval_cli_%d", (int)getpid());
    char path[1024], cmd[4096], out[16384], err[1024];
    mkdir(DIR_, 0755);

    // Tiny model: img_size 32, patch 8, D 48, 2 blocks, 3 heads, fill() weights.
    ViTConfig vc = tiny_vit_config();
    DinoModel m;
    model_build(&m, &vc, NULL, 0);
    float *params = mallocCheck(m.table.total * sizeof(float));
    engine_fill_params(&m.table, params);
    char model_path[512];
    snprintf(model_path, sizeof model_path, "%s/tiny.dino", DIR_);
    CHECK(model_save(model_path, &m, params, err, sizeof err) == 0, "tiny model saved (%s)", err);
    ViTWeights w;
    model_bind(&m, params, &w, NULL);

    // ImageFolder: train/{a,b} x 6, val/{a,b} x 3.
    const int iw = 40, ih = 36;
    uint8_t *rgb = mallocCheck((size_t)iw * ih * 3);
    const char *split[2] = {"train", "val"}, *cls[2] = {"a", "b"};
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/ds", DIR_);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/ds/%s", DIR_, split[s]);
        mkdir(path, 0755);
        for (int c = 0; c < 2; c++) {
            snprintf(path, sizeof path, "%s/ds/%s/%s", DIR_, split[s], cls[c]);
            mkdir(path, 0755);
            for (int k = 0; k < (s ? 3 : 6); k++) {
                make_image(rgb, iw, ih, c, k + 10 * s);
                snprintf(path, sizeof path, "%s/ds/%s/%s/%d.png", DIR_, split[s], cls[c], k);
                image_write_png(path, rgb, iw, ih, err, sizeof err);
            }
        }
    }

    // dino features -> .npy, compared with the in-process pipeline.
    snprintf(cmd, sizeof cmd, "%s features --threads 2 --pretrained_weights %s --data_path %s/ds "
             "--output_dir %s/feat", DINO, model_path, DIR_, DIR_);
    int rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0, "dino features runs (exit %d)", rc);
    if (rc) printf("%s", out);
    NpyInfo info;
    snprintf(path, sizeof path, "%s/feat/train_features.npy", DIR_);
    float *tf = npy_read_f32(path, &info, err, sizeof err);
    CHECK(tf && info.ndim == 2 && info.shape[0] == 12 && info.shape[1] == 48 && !strcmp(info.descr, "<f4"),
          "train_features.npy is float32 (12, 48)");
    snprintf(path, sizeof path, "%s/feat/train_labels.npy", DIR_);
    int64_t *tl = npy_read_i64(path, &info, err, sizeof err);
    CHECK(tl && info.ndim == 1 && info.shape[0] == 12 && !strcmp(info.descr, "<i8") && tl[0] == 0 && tl[11] == 1,
          "train_labels.npy is int64 (12,) with the folder classes");
    if (tf) {
        // Image 7 = train/b/1.png: decode, eval transform at crop 32, forward.
        Image im;
        snprintf(path, sizeof path, "%s/ds/train/b/1.png", DIR_);
        CHECK(image_decode_file(path, 0, &im, err, sizeof err) == 0, "decode train/b/1.png");
        float *x = mallocCheck(3 * 32 * 32 * sizeof(float)), f[48];
        eval_transform(&im, 32, x);
        struct ViTActs *a = vit_acts_create(&vc, 1, 32, 32, 0);
        FeatureConfig fc;
        feature_config_default(&fc);
        fc.crop = 32;
        features_from_images(&vc, &w, a, x, 1, &fc, f);
        // Batch 12 in the CLI vs 1 here: GEMM blocking may round differently.
        test_close("CLI feature row 7 vs the in-process eval transform + forward", f, tf + 7 * 48, 48, 3e-6, 1e-5);
        vit_acts_free(a);
        free(x);
        image_free(&im);
    }
    free(tf);
    free(tl);

    // k-NN from the files and from the model.
    snprintf(cmd, sizeof cmd, "%s knn --threads 2 --features_dir %s/feat --nb_knn 1 3", DINO, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "1-NN classifier result: Top1: 100.0000"), "dino knn --features_dir: %s",
          rc ? out : "100%");
    char first[16384];
    snprintf(first, sizeof first, "%s", strstr(out, "1-NN") ? strstr(out, "1-NN") : "");
    *strstr(first, "k-NN time") = 0;
    snprintf(cmd, sizeof cmd, "%s knn --threads 2 --pretrained_weights %s --data_path %s/ds --nb_knn 1 3 2>/dev/null", DINO,
             model_path, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, first), "dino knn from the model prints the same results as from files");
    snprintf(cmd, sizeof cmd, "%s linear --threads 2 --features_dir %s/feat --epochs 30 --lr 10", DINO, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "Top-1 test accuracy: 100.0"), "dino linear on the features reaches 100%%");

    // Full mode: augmented views through the backbone every epoch.
    snprintf(cmd, sizeof cmd, "%s linear --threads 2 --full --pretrained_weights %s --data_path %s/ds "
             "--n_last_blocks 1 --epochs 5 --lr 10 --batch_size_per_gpu 4 2>/dev/null", DINO, model_path, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "full mode") && strstr(out, "epoch 4:"), "dino linear --full runs 5 epochs (exit %d)", rc);
    if (rc == 0) printf("     %s\n", strstr(out, "Top-1") ? strstr(out, "Top-1") : out);
    {
        Image im;
        snprintf(path, sizeof path, "%s/ds/train/a/0.png", DIR_);
        image_decode_file(path, 0, &im, err, sizeof err);
        float *v1 = mallocCheck(3 * 32 * 32 * sizeof(float)), *v2 = mallocCheck(3 * 32 * 32 * sizeof(float));
        linear_train_view(&im, 32, 0, 3, 5, v1);
        linear_train_view(&im, 32, 0, 3, 5, v2);
        int same = memcmp(v1, v2, 3 * 32 * 32 * sizeof(float)) == 0;
        linear_train_view(&im, 32, 0, 4, 5, v2);
        CHECK(same && memcmp(v1, v2, 3 * 32 * 32 * sizeof(float)) != 0,
              "augmented views are keyed: same (seed, epoch, index) same view, next epoch a new one");
        free(v1);
        free(v2);
        image_free(&im);
    }

    // The library call the trainer's hook uses.
    KnnModelConfig kc;
    knn_model_config_default(&kc, NULL);
    char dsp[512];
    snprintf(dsp, sizeof dsp, "%s/ds", DIR_);
    kc.data_path = dsp;
    kc.knn.n_k = 2, kc.knn.ks[0] = 1, kc.knn.ks[1] = 3;
    KnnResult kr[2];
    rc = knn_evaluate_model(&vc, &w, &kc, kr, err, sizeof err);
    CHECK(rc == 0 && kr[0].top1 == 100.0 && kr[1].top1 == 100.0, "knn_evaluate_model: top-1 %.1f / %.1f",
          kr[0].top1, kr[1].top1);

    // Attention on a non-square image.
    snprintf(path, sizeof path, "%s/ds/val/a/0.png", DIR_);
    snprintf(cmd, sizeof cmd, "%s attention %s --threads 2 --pretrained_weights %s --out %s/att --threshold 0.6", DINO,
             path, model_path, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0, "dino attention runs (exit %d)", rc);
    if (rc) printf("%s", out);
    const char *files[] = {"img.png", "attn-head0.png", "attn-head2.png", "mask_th0.6_head1.png",
                           "mask_th0.6_all.png", "attn-grid.png"};
    int all = 1;
    for (int i = 0; i < 6; i++) {
        char fp[1024];
        snprintf(fp, sizeof fp, "%s/att/%s", DIR_, files[i]);
        int pw, ph;
        uint8_t *png = png_read_rgb(fp, &pw, &ph, err, sizeof err);
        if (!png || (i < 5 && (pw != 40 || ph != 32))) {
            all = 0;
            printf("     %s: %s %dx%d\n", files[i], png ? "wrong size" : err, png ? pw : 0, png ? ph : 0);
        }
        free(png);
    }
    CHECK(all, "attention PNGs exist at the cropped size 40x32");
    snprintf(path, sizeof path, "%s/att/attn_maps.npy", DIR_);
    float *am = npy_read_f32(path, &info, err, sizeof err);
    CHECK(am && info.ndim == 3 && info.shape[0] == 3 && info.shape[1] == 4 && info.shape[2] == 5,
          "attn_maps.npy is (3 heads, 4, 5)");
    if (am) {
        Image im;
        snprintf(path, sizeof path, "%s/ds/val/a/0.png", DIR_);
        image_decode_file(path, 0, &im, err, sizeof err);
        uint8_t *crop = mallocCheck(40 * 32 * 3);
        memcpy(crop, im.rgb, 40 * 32 * 3);  // rows of 40: the top 32 rows
        float *x = mallocCheck(3 * 40 * 32 * sizeof(float)), maps[3 * 20];
        image_to_tensor(x, crop, 40, 32, IMAGENET_MEAN, IMAGENET_STD);
        struct ViTActs *a = vit_acts_create(&vc, 1, 32, 40, 0);
        vit_forward(&vc, &w, a, x, 1, NULL);
        attnmap_cls(vit_last_attention(a), 3, 21, maps);
        CHECK(memcmp(maps, am, sizeof maps) == 0, "attn_maps.npy equals the in-process maps exactly");
        vit_acts_free(a);
        free(x);
        free(crop);
        image_free(&im);
    }
    free(am);

    // End to end against visualize_attention.py's steps in PyTorch
    // (eval_attention_e2e.bin): a training-checkpoint-shaped .pth, a 53x71
    // PNG, Resize((40, 60)) bilinear, crop to 40x56, teacher and student.
    {
        Fixture fx = fixture_load("eval_attention_e2e.bin");
        uint8_t *px = mallocCheck(53 * 71 * 3);
        float *v = mallocCheck(53 * 71 * 3 * sizeof(float));
        fixture_fill(v, 53 * 71 * 3, 6100, 0, 256);
        for (int i = 0; i < 53 * 71 * 3; i++) {
            float q = floorf(v[i]);
            px[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
        }
        char img_path[512], pth[1024];
        snprintf(img_path, sizeof img_path, "%s/e2e.png", DIR_);
        CHECK(png_write_rgb(img_path, 71, 53, px, err, sizeof err) == 0, "e2e image written");
        snprintf(pth, sizeof pth, "%s", test_fixture_path("eval_tiny_vit.pth"));
        const char *keys[2] = {"teacher", "student"};
        for (int k = 0; k < 2; k++) {
            snprintf(cmd, sizeof cmd, "%s attention %s --threads 2 --pretrained_weights %s --checkpoint_key %s "
                     "--image_size 40 60 --heads 3 --out %s/e2e_%s", DINO, img_path, pth, keys[k], DIR_, keys[k]);
            rc = test_run_command(cmd, out, sizeof out);
            CHECK(rc == 0, "dino attention on the .pth checkpoint, key %s (exit %d) %s", keys[k], rc, rc ? out : "");
            snprintf(path, sizeof path, "%s/e2e_%s/attn_maps.npy", DIR_, keys[k]);
            float *got = npy_read_f32(path, &info, err, sizeof err);
            char name[64], what[128];
            snprintf(name, sizeof name, "maps_%s", keys[k]);
            const FixtureTensor *want = fixture_get(&fx, name);
            CHECK(got && info.numel == want->numel && info.shape[1] == 5 && info.shape[2] == 7,
                  "%s maps (3, 5, 7)", keys[k]);
            if (got) {
                snprintf(what, sizeof what, "%s attention maps vs PyTorch (Resize, crop, interpolated positions)", keys[k]);
                engine_close(what, got, want->data, want->numel, 5e-6);
                float mask[3 * 35];
                attnmap_threshold(got, 3, 35, 0.6, mask);
                snprintf(name, sizeof name, "mask_%s", keys[k]);
                snprintf(what, sizeof what, "%s threshold-0.6 masks", keys[k]);
                test_close(what, mask, fixture_get(&fx, name)->data, 3 * 35, 0, 0);
            }
            free(got);
        }
        free(px);
        free(v);
        fixture_free(&fx);
    }

    // Errors: one line, exit status 1.
    snprintf(cmd, sizeof cmd, "%s attention %s/ds/val/a/0.png --pretrained_weights %s --arch vit_small --out %s/att", DINO,
             DIR_, model_path, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "different architecture") && one_line(out), "wrong architecture: %s", out);
    snprintf(path, sizeof path, "%s/not_an_image.png", DIR_);
    FILE *f = fopen(path, "w");
    fputs("this is text, not a PNG\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s attention %s --pretrained_weights %s --out %s/att", DINO, path, model_path, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "not_an_image.png") && one_line(out), "unreadable image: %s", out);
    snprintf(cmd, sizeof cmd, "%s attention %s/ds/val/a/0.png --pretrained_weights %s --out %s/att", DINO, DIR_, path, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out), "a model file that is not one: %s", out);
    snprintf(cmd, sizeof cmd, "%s knn --train_features %s/feat/train_features.npy --val_features %s/feat/val_features.npy", DINO,
             DIR_, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "labels") && one_line(out), "k-NN without labels: %s", out);
    // A plain folder of images has no labels.
    snprintf(path, sizeof path, "%s/plain", DIR_);
    mkdir(path, 0755);
    snprintf(cmd, sizeof cmd, "cp %s/ds/train/a/*.png %s/plain/", DIR_, DIR_);
    if (system(cmd) != 0) printf("     cp failed\n");
    snprintf(cmd, sizeof cmd, "%s knn --pretrained_weights %s --data_path %s/plain 2>&1 | tail -1", DINO, model_path, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(strstr(out, "needs labels") != NULL, "k-NN on an unlabelled folder: %s", out);

    // Which row is which image: <split>_paths.txt in row order.
    static char lines[16][1024];
    char want[1024];
    snprintf(path, sizeof path, "%s/feat/train_paths.txt", DIR_);
    int nl = read_lines(path, lines, 16);
    snprintf(want, sizeof want, "%s/ds/train/b/1.png", DIR_);
    CHECK(nl == 12 && !strcmp(lines[7], want), "train_paths.txt: 12 lines, row 7 is %s (%d lines, row 7 %s)",
          want, nl, nl > 7 ? lines[7] : "-");
    snprintf(path, sizeof path, "%s/feat/val_paths.txt", DIR_);
    nl = read_lines(path, lines, 16);
    snprintf(want, sizeof want, "%s/ds/val/a/0.png", DIR_);
    CHECK(nl == 6 && !strcmp(lines[0], want), "val_paths.txt: 6 lines, row 0 is val/a/0.png");

    // A plain folder is one set: features.npy, labels.npy, paths.txt; no train_/val_ copies.
    snprintf(cmd, sizeof cmd, "%s features --threads 2 --pretrained_weights %s --data_path %s/plain "
             "--output_dir %s/plain_feat", DINO, model_path, DIR_, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    snprintf(path, sizeof path, "%s/plain_feat/features.npy", DIR_);
    float *clean = npy_read_f32(path, &info, err, sizeof err);
    CHECK(rc == 0 && clean && info.shape[0] == 6, "features on a plain folder: one set of 6 rows (exit %d)", rc);
    snprintf(path, sizeof path, "%s/plain_feat/train_features.npy", DIR_);
    snprintf(want, sizeof want, "%s/plain_feat/val_features.npy", DIR_);
    CHECK(!file_exists(path) && !file_exists(want), "no train_/val_ files for a folder without splits");
    snprintf(path, sizeof path, "%s/plain_feat/paths.txt", DIR_);
    nl = read_lines(path, lines, 16);
    snprintf(want, sizeof want, "%s/plain/3.png", DIR_);
    CHECK(nl == 6 && !strcmp(lines[3], want), "paths.txt: 6 lines, row 3 is plain/3.png");

    // A corrupt image between 2.png and 3.png: refused by default, naming
    // it; left out with --skip_unreadable, the other rows unchanged.
    snprintf(path, sizeof path, "%s/plain/2b.jpg", DIR_);
    FILE *bad = fopen(path, "wb");
    fputs("\xff\xd8\xff not a JPEG after all", bad);
    fclose(bad);
    snprintf(cmd, sizeof cmd, "%s features --threads 2 --pretrained_weights %s --data_path %s/plain "
             "--output_dir %s/plain_feat2", DINO, model_path, DIR_, DIR_);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "2b.jpg") && strstr(out, "unreadable"), "a corrupt image stops dino features%s%s", rc == 1 ? "" : ": ", rc == 1 ? "" : out);
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " --skip_unreadable");
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "skipped 1 unreadable image"), "--skip_unreadable goes on and says so%s%s", rc == 0 ? "" : ": ", rc == 0 ? "" : out);
    snprintf(path, sizeof path, "%s/plain_feat2/features.npy", DIR_);
    float *kept = npy_read_f32(path, &info, err, sizeof err);
    CHECK(kept && info.shape[0] == 6 && info.shape[1] == 48, "the corrupt image's row is left out (6 rows)");
    if (kept && clean) test_close("rows after --skip_unreadable vs the clean folder", kept, clean, 6 * 48, 3e-6, 1e-5);
    free(kept);
    free(clean);
    snprintf(path, sizeof path, "%s/plain_feat2/skipped.txt", DIR_);
    nl = read_lines(path, lines, 16);
    snprintf(want, sizeof want, "%s/plain/2b.jpg", DIR_);
    CHECK(nl == 1 && !strcmp(lines[0], want), "skipped.txt names the corrupt image");
    snprintf(path, sizeof path, "%s/plain_feat2/paths.txt", DIR_);
    nl = read_lines(path, lines, 16);
    snprintf(want, sizeof want, "%s/plain/3.png", DIR_);
    CHECK(nl == 6 && !strcmp(lines[3], want), "paths.txt leaves it out too: row 3 is still plain/3.png");

    snprintf(cmd, sizeof cmd, "rm -rf %s", DIR_);
    if (system(cmd) != 0) printf("     cleanup failed\n");
    free(rgb);
    free(params);
    model_free(&m);
    return test_finish();
}
