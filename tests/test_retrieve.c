// `dino retrieve` and its pieces against restatements of the reference's
// eval_image_retrieval.py in Pillow and PyTorch
// (tools/make_retrieval_fixtures.py):
// - the revisited ground truth read by the safe pickle reader from three
//   pickles of one synthetic gnd (Python lists at protocol 2, numpy arrays at
//   protocols 2 and 4), equal to the numbers the tool wrote;
// - Pillow's thumbnail sizes and LANCZOS pixels, torch's bilinear
//   interpolate, and the CLS descriptor (single- and multi-scale) of the tiny
//   ViT of eval_tiny_vit.pth;
// - end to end through build/dino: a query that is a copy of one image of a
//   folder finds it first at similarity 1; the benchmark on a synthetic
//   roxford5k layout whose queries copy one of their easy positives scores
//   mP@1 = 100 (Medium and Easy); a missing ground truth is one line;
// - `dino copy-detect` on a Copydays-shaped folder built here: JPEG
//   recompressions at quality 30 of random textures find their original
//   first (mAP 1.000), with and without whitening and distractors; a folder
//   without original/ and a block of the wrong size are one-line errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "eval/retrieval_desc.h"
#include "eval/retrieval_input.h"
#include "eval/revisited_gnd.h"
#include "fixture.h"
#include "image/decode.h"
#include "image/ops.h"
#include "io/model_io.h"
#include "model.h"
#include "rng.h"
#include "testlib.h"

static const char *DINO;  // the dino binary of this build

static int same_ints(const int *a, int na, const FixtureTensor *t) {
    if ((size_t)na != t->numel) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != (int)t->data[i]) return 0;
    return 1;
}

static void gnd_pickles(void) {
    Fixture fx = fixture_load("retrieval_gnd.bin");
    const float *sizes = fixture_get(&fx, "sizes")->data;
    const char *files[3] = {"retrieval_gnd_list_p2.pkl", "retrieval_gnd_np_p2.pkl", "retrieval_gnd_np_p4.pkl"};
    for (int f = 0; f < 3; f++) {
        RevisitedGnd g;
        char err[1024];
        int rc = revisited_gnd_load(test_fixture_path(files[f]), &g, err, sizeof err);
        CHECK(rc == 0, "%s reads (%s)", files[f], rc ? err : "ok");
        if (rc) continue;
        int ok = g.n == (int)sizes[0] && g.nq == (int)sizes[1] && !strcmp(g.imlist[3], "db_03") &&
                 !strcmp(g.qimlist[2], "query_2");
        for (int q = 0; ok && q < g.nq; q++) {
            char k[32];
            snprintf(k, sizeof k, "q%d_easy", q);
            ok &= same_ints(g.q[q].easy, g.q[q].n_easy, fixture_get(&fx, k));
            snprintf(k, sizeof k, "q%d_hard", q);
            ok &= same_ints(g.q[q].hard, g.q[q].n_hard, fixture_get(&fx, k));
            snprintf(k, sizeof k, "q%d_junk", q);
            ok &= same_ints(g.q[q].junk, g.q[q].n_junk, fixture_get(&fx, k));
            snprintf(k, sizeof k, "q%d_bbx", q);
            const float *b = fixture_get(&fx, k)->data;
            for (int j = 0; j < 4; j++) ok &= g.q[q].has_bbx && fabs(g.q[q].bbx[j] - b[j]) < 1e-4;
        }
        CHECK(ok, "%s: names, easy/hard/junk indices (one hard list empty) and boxes equal the tool's", files[f]);
        revisited_gnd_free(&g);
    }
    fixture_free(&fx);

    // Broken files: one line naming the file and the problem.
    char err[1024];
    RevisitedGnd g;
    const char *path = test_tmp_path("truncated.pkl");
    size_t n;
    uint8_t *bytes = test_read_file(test_fixture_path("retrieval_gnd_np_p4.pkl"), &n);
    test_write_file(path, bytes, n / 2);
    CHECK(revisited_gnd_load(path, &g, err, sizeof err) == -1 && strstr(err, "truncated.pkl") && !strchr(err, '\n'),
          "a truncated ground truth is refused: %s", err);
    // The list pickle with index 3 of db_03 raised past the database (12 images): K 3 -> K 99.
    free(bytes);
    bytes = test_read_file(test_fixture_path("retrieval_gnd_list_p2.pkl"), &n);
    const char easy_key[] = "X\x04\0\0\0" "easy";
    uint8_t *at = memmem(bytes, n, easy_key, sizeof easy_key - 1);
    int patched = 0;
    for (uint8_t *p = at; at && p + 1 < bytes + n && p < at + 32; p++)
        if (p[0] == 'K' && !patched) p[1] = 99, patched = 1;
    path = test_tmp_path("bad_index.pkl");
    test_write_file(path, bytes, n);
    CHECK(patched && revisited_gnd_load(path, &g, err, sizeof err) == -1 && strstr(err, "'easy'") &&
              strstr(err, "not an index of the database"),
          "an index outside the database is refused: %s", err);
    free(bytes);
    CHECK(revisited_gnd_load(test_tmp_path("none.pkl"), &g, err, sizeof err) == -1 && strstr(err, "none.pkl"),
          "a missing ground truth: %s", err);
}

static void image_from_fill(Image *im, int w, int h, uint64_t seed) {
    float *v = malloc(sizeof(float) * (size_t)w * h * 3);
    fixture_fill(v, (size_t)w * h * 3, seed, 0, 256);
    im->w = w, im->h = h;
    im->rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) {
        float q = floorf(v[i]);
        im->rgb[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
    }
    free(v);
}

static void inputs_and_descriptors(void) {
    Fixture fx = fixture_load("retrieval_inputs.bin");
    const FixtureTensor *ts = fixture_get(&fx, "thumb_sizes");
    int bad = 0;
    for (int i = 0; i < (int)ts->shape[0]; i++) {
        const float *c = ts->data + i * 5;
        int tw, th;
        retrieval_thumbnail_size((int)c[0], (int)c[1], (int)c[2], &tw, &th);
        if (tw != (int)c[3] || th != (int)c[4]) {
            bad++;
            printf("     %dx%d in %d: %dx%d, Pillow %dx%d\n", (int)c[0], (int)c[1], (int)c[2], tw, th, (int)c[3],
                   (int)c[4]);
        }
    }
    CHECK(bad == 0, "thumbnail sizes equal Pillow's in %d cases of awkward aspect ratios", (int)ts->shape[0]);

    Image src;
    image_from_fill(&src, 71, 53, 2601);
    const char *names[2] = {"lanczos_small", "lanczos_near"};
    for (int k = 0; k < 2; k++) {
        const FixtureTensor *t = fixture_get(&fx, names[k]);
        int w = (int)t->shape[1], h = (int)t->shape[0];
        uint8_t *px = malloc((size_t)w * h * 3);
        image_resize_region(px, w, h, src.rgb, src.w * 3, 0, 0, src.w, src.h, RESAMPLE_LANCZOS);
        float *f = malloc(sizeof(float) * (size_t)w * h * 3);
        for (int i = 0; i < w * h * 3; i++) f[i] = px[i];
        char what[128];
        snprintf(what, sizeof what, "LANCZOS 71x53 -> %dx%d equals Pillow's, pixel for pixel", w, h);
        test_close(what, f, t->data, t->numel, 0, 0);
        free(px), free(f);
    }
    image_free(&src);

    // Whole thumbnails, Image.reduce first where Pillow's reducing_gap asks for it.
    const char *th_names[4] = {"thumb_a", "thumb_b", "thumb_c", "thumb_d"};
    for (int k = 0; k < 4; k++) {
        char key[32];
        snprintf(key, sizeof key, "%s_cfg", th_names[k]);
        const float *c = fixture_get(&fx, key)->data;
        const FixtureTensor *want = fixture_get(&fx, th_names[k]);
        Image im;
        image_from_fill(&im, (int)c[0], (int)c[1], (uint64_t)c[3]);
        int tw, th;
        float *t = retrieval_thumbnail_tensor(&im, (int)c[2], &tw, &th);
        int ok = tw == want->shape[1] && th == want->shape[0];
        if (ok) {
            // back to pixels: the tensor is (x/255 - mean)/std of each byte
            float *px = malloc(sizeof(float) * (size_t)tw * th * 3);
            for (int ch = 0; ch < 3; ch++)
                for (int i = 0; i < tw * th; i++) {
                    float v = (t[(size_t)ch * tw * th + i] * IMAGENET_STD[ch] + IMAGENET_MEAN[ch]) * 255.0f;
                    px[(size_t)i * 3 + ch] = roundf(v);
                }
            char what[160];
            snprintf(what, sizeof what, "thumbnail of %dx%d in %d (%dx%d) equals Pillow's thumbnail, pixel for pixel",
                     (int)c[0], (int)c[1], (int)c[2], tw, th);
            test_close(what, px, want->data, want->numel, 0, 0);
            free(px);
        } else {
            CHECK(0, "thumbnail size %dx%d vs Pillow's %dx%d", tw, th, (int)want->shape[1], (int)want->shape[0]);
        }
        free(t);
        image_free(&im);
    }

    float *x = malloc(sizeof(float) * 3 * 23 * 31);
    fixture_fill(x, 3 * 23 * 31, 2602, -2, 2);
    const char *in[2] = {"interp_r2", "interp_half"};
    const double sc[2] = {1.0 / sqrt(2.0), 0.5};
    for (int k = 0; k < 2; k++) {
        const FixtureTensor *t = fixture_get(&fx, in[k]);
        int oh, ow;
        float *y = retrieval_rescale(x, 3, 23, 31, sc[k], &oh, &ow);
        CHECK(y && oh == t->shape[1] && ow == t->shape[2], "interpolate x%.4f: %dx%d as torch's", sc[k], ow, oh);
        char what[128];
        snprintf(what, sizeof what, "bilinear interpolate x%.4f equals torch's", sc[k]);
        if (y && oh == t->shape[1] && ow == t->shape[2]) test_close(what, y, t->data, t->numel, 1e-6, 1e-6);
        free(y);
    }
    free(x);

    // Descriptors of a 45x37 image through the tiny ViT.
    ModelLoadOptions opt = {.checkpoint_key = "teacher", .head = MODEL_HEAD_NONE, .heads = 3};
    DinoModel m;
    float *params = NULL;
    char err[1024];
    int rc = model_load(test_fixture_path("eval_tiny_vit.pth"), &opt, &m, &params, err, sizeof err);
    CHECK(rc == 0, "eval_tiny_vit.pth loads (%s)", rc ? err : "ok");
    if (rc == 0) {
        ViTWeights w;
        model_bind(&m, params, &w, NULL);
        Image im;
        image_from_fill(&im, 45, 37, 2603);
        int tw, th;
        float *t = retrieval_thumbnail_tensor(&im, 40, &tw, &th);
        const FixtureTensor *px = fixture_get(&fx, "thumb_px");
        CHECK(tw == px->shape[1] && th == px->shape[0], "thumbnail of 45x37 in 40: %dx%d", tw, th);
        float d[48];
        for (int ms = 0; ms < 2; ms++) {
            rc = retrieval_cls_descriptor(&m.vit, &w, t, th, tw, ms, d, err, sizeof err);
            CHECK(rc == 0, "descriptor %s (%s)", ms ? "multiscale" : "single-scale", rc ? err : "ok");
            const FixtureTensor *want = fixture_get(&fx, ms ? "desc_multi" : "desc_single");
            test_close(ms ? "multiscale CLS descriptor (1, 1/sqrt2, 1/2) equals the reference's"
                          : "single-scale CLS descriptor equals the reference's",
                       d, want->data, 48, 2e-6, 1e-5);
        }
        free(t);
        // Copy detection: bicubic 32x32, CLS ++ GeM.
        float sq[3 * 32 * 32], cd[96];
        retrieval_square_tensor(&im, 32, sq);
        struct ViTActs *a = vit_acts_create(&m.vit, 1, 32, 32, 0);
        retrieval_copy_descriptors(&m.vit, &w, a, sq, 1, cd);
        vit_acts_free(a);
        test_close("copy-detection descriptor (CLS ++ GeM p=4) equals the reference's", cd,
                   fixture_get(&fx, "desc_copy")->data, 96, 2e-6, 1e-5);
        image_free(&im);
        free(params);
        model_free(&m);
    }
    fixture_free(&fx);
}

static void write_image(const char *path, uint64_t seed, int jpeg) {
    Image im;
    image_from_fill(&im, 48, 40, seed);
    // Smooth the noise a little so that JPEG keeps the image recognisable.
    image_gaussian_blur(im.rgb, im.w, im.h, 1.5f);
    char err[512];
    int rc = jpeg ? image_write_jpeg(path, im.rgb, im.w, im.h, 95, err, sizeof err)
                  : image_write_png(path, im.rgb, im.w, im.h, err, sizeof err);
    if (rc) printf("     %s\n", err);
    image_free(&im);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    uint8_t *b = test_read_file(from, &n);
    test_write_file(to, b, n);
    free(b);
}

static void end_to_end(void) {
    const char *model = test_fixture_path("eval_tiny_vit.pth");
    char path[1024], path2[1024], cmd[4096], out[16384];
    const char *dir = test_tmp_path("folder");
    snprintf(path, sizeof path, "%s", dir);
    mkdir(path, 0755);
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/img%d.png", dir, i);
        write_image(path, 2700 + i, 0);
    }
    snprintf(path, sizeof path, "%s/img3.png", dir);
    snprintf(path2, sizeof path2, "%s", test_tmp_path("query.png"));
    copy_file(path, path2);
    for (int ms = 0; ms < 2; ms++) {
        snprintf(cmd, sizeof cmd, "%s retrieve --threads 2 --heads 3 --pretrained_weights %s --data_path %s "
                 "--query %s --topk 3%s 2>/dev/null", DINO, model, dir, path2, ms ? " --multiscale" : "");
        int rc = test_run_command(cmd, out, sizeof out);
        char want[1200];
        snprintf(want, sizeof want, "\n   1  1.0000  %s/img3.png\n   2  ", dir);
        CHECK(rc == 0 && strstr(out, want) && !strstr(out, "\n   4 "),
              "retrieve%s: the copy of img3 finds img3 first at similarity 1, 3 lines%s%s",
              ms ? " --multiscale" : "", rc || !strstr(out, want) ? ": " : "", rc || !strstr(out, want) ? out : "");
    }

    // The benchmark on a synthetic roxford5k layout.
    RevisitedGnd g;
    char err[1024];
    if (revisited_gnd_load(test_fixture_path("retrieval_gnd_list_p2.pkl"), &g, err, sizeof err) != 0) {
        CHECK(0, "ground truth for the end-to-end benchmark: %s", err);
        return;
    }
    const char *root = test_tmp_path("bench");
    mkdir(root, 0755);
    snprintf(path, sizeof path, "%s/roxford5k", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/roxford5k/jpg", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/roxford5k/gnd_roxford5k.pkl", root);
    copy_file(test_fixture_path("retrieval_gnd_list_p2.pkl"), path);
    for (int i = 0; i < g.n; i++) {
        snprintf(path, sizeof path, "%s/roxford5k/jpg/%s.jpg", root, g.imlist[i]);
        write_image(path, 2800 + i, 1);
    }
    for (int q = 0; q < g.nq; q++) {
        snprintf(path, sizeof path, "%s/roxford5k/jpg/%s.jpg", root, g.imlist[g.q[q].easy[0]]);
        snprintf(path2, sizeof path2, "%s/roxford5k/jpg/%s.jpg", root, g.qimlist[q]);
        copy_file(path, path2);
    }
    snprintf(cmd, sizeof cmd, "%s retrieve --threads 2 --heads 3 --pretrained_weights %s --dataset roxford5k "
             "--data_path %s --imsize 40 2>/dev/null", DINO, model, root);
    int rc = test_run_command(cmd, out, sizeof out);
    double mapM = -1, mapH = -1, m1 = -1, h1 = -1, e1 = -1;
    const char *l1 = strstr(out, ">> roxford5k: mAP M: "), *l2 = strstr(out, ">> roxford5k: mP@k[ 1  5 10] M: [");
    const char *l3 = strstr(out, "mP@k[ 1  5 10] E: [");
    if (l1) sscanf(l1, ">> roxford5k: mAP M: %lf, H: %lf", &mapM, &mapH);
    if (l2) sscanf(l2, ">> roxford5k: mP@k[ 1  5 10] M: [%lf %*f %*f], H: [%lf", &m1, &h1);
    if (l3) sscanf(l3, "mP@k[ 1  5 10] E: [%lf", &e1);
    CHECK(rc == 0 && mapM >= 0 && mapM <= 100 && mapH >= 0 && mapH <= 100 && h1 >= 0 && h1 <= 100,
          "retrieve --dataset roxford5k prints mAP M %.2f, H %.2f and mP@k in the reference's layout%s%s", mapM,
          mapH, rc ? ": " : "", rc ? out : "");
    CHECK(m1 == 100 && e1 == 100,
          "queries that copy an easy positive find it first: mP@1 Medium %.2f, Easy %.2f", m1, e1);
    revisited_gnd_free(&g);

    snprintf(cmd, sizeof cmd, "%s retrieve --heads 3 --pretrained_weights %s --dataset rparis6k --data_path %s",
             DINO, model, root);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "gnd_rparis6k.pkl") && !strchr(out, '\n'), "a missing ground truth: %s", out);
}

static void copy_detect(void) {
    const char *model = test_fixture_path("eval_tiny_vit.pth");
    char path[1024], cmd[4096], out[16384], err[512];
    const char *root = test_tmp_path("copydays");
    const char *sub[] = {"", "/original", "/strong", "/jpegqual", "/jpegqual/30", "/whit", "/distr"};
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "%s%s", root, sub[i]);
        mkdir(path, 0755);
    }
    for (int i = 0; i < 8; i++) {
        Image im;
        image_from_fill(&im, 64, 48, 2900 + i);
        image_gaussian_blur(im.rgb, im.w, im.h, 1.5f);
        snprintf(path, sizeof path, "%s/original/im%02d_o.jpg", root, i);
        image_write_jpeg(path, im.rgb, im.w, im.h, 95, err, sizeof err);
        Image back;
        image_decode_file(path, 0, &back, err, sizeof err);
        snprintf(path, sizeof path, "%s/jpegqual/30/im%02d_o.jpg", root, i);
        image_write_jpeg(path, back.rgb, back.w, back.h, 30, err, sizeof err);
        if (i < 3) {  // 'strong': positives by the first 4 characters of the name
            image_hflip(back.rgb, back.w, back.h);
            snprintf(path, sizeof path, "%s/strong/im%02d_flipped.jpg", root, i);
            image_write_jpeg(path, back.rgb, back.w, back.h, 70, err, sizeof err);
        }
        image_free(&back);
        image_free(&im);
        snprintf(path, sizeof path, "%s/distr/d%d.jpg", root, i);
        write_image(path, 3100 + i, 1);
    }
    // More whitening images than the 96 dimensions, or the PCA has a null space.
    for (int i = 0; i < 128; i++) {
        snprintf(path, sizeof path, "%s/whit/w%03d.png", root, i);
        write_image(path, 3200 + i, 0);
    }
    for (int wh = 0; wh < 2; wh++) {
        snprintf(cmd, sizeof cmd, "%s copy-detect --threads 2 --heads 3 --pretrained_weights %s --data_path %s "
                 "--imsize 32 --batch_size_per_gpu 5%s 2>/dev/null", DINO, model, root,
                 wh ? " --whitening_path %s/whit --distractors_path %s/distr" : "");
        char full[4200];
        snprintf(full, sizeof full, cmd, root, root);
        int rc = test_run_command(full, out, sizeof out);
        double strong = -1;
        const char *s = strstr(out, "eval on strong mAP=");
        if (s) sscanf(s, "eval on strong mAP=%lf", &strong);
        CHECK(rc == 0 && strstr(out, "eval on original mAP=1.000") && strstr(out, "eval on jpegqual/30 mAP=1.000") &&
                  strong >= 0 && strong <= 1,
              "copy-detect%s: quality-30 copies find their original first (mAP 1.000), strong mAP %.3f in [0, 1]%s%s",
              wh ? " with whitening and distractors" : "", strong, rc ? ": " : "", rc ? out : "");
    }
    snprintf(cmd, sizeof cmd, "%s copy-detect --heads 3 --pretrained_weights %s --data_path %s/whit", DINO, model, root);
    int rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "not a Copydays folder") && !strchr(out, '\n'), "no original/: %s", out);
    snprintf(path, sizeof path, "%s/jpegqual/30/im00_o.jpg", root);
    remove(path);
    snprintf(cmd, sizeof cmd, "%s copy-detect --heads 3 --imsize 32 --pretrained_weights %s --data_path %s", DINO,
             model, root);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "jpegqual/30 holds 7 .jpg images but original/ holds 8") != NULL,
          "a block of the wrong size: %s", strstr(out, "error") ? strstr(out, "error") : out);
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    dino_set_threads(2);
    DINO = test_dino_path();
    if (!DINO) DINO = "build/dino";
    test_tmpdir("retrieve");
    gnd_pickles();
    inputs_and_descriptors();
    end_to_end();
    copy_detect();
    test_tmpdir_remove();
    return test_finish();
}
