// ResNet model files (tools/make_resnet_fixtures.py): torchvision's
// state_dict as torch.save writes it (like dino_resnet50_pretrain.pth) and a
// DINO training checkpoint in the reference's layout for a ResNet
// (teacher/student with module.backbone. and module.head. prefixes) load as
// they are, at 1/16 of resnet50's widths; their eval-mode features equal
// torchvision's (tolerance 1e-5 of the scale, as the ViT's forward); native
// and safetensors copies round-trip bit for bit; truncated and corrupted
// files are refused with a reason. Then the commands through the built
// binary: info names the ResNet, convert writes a file that loads back,
// features writes the 128-d pooled features of an ImageFolder (equal to the
// in-process forward), knn runs on them, attention, copy-detect and
// segment-video refuse in one line.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "data/augment.h"
#include "engine_fill.h"
#include "eval/npy.h"
#include "eval/retrieval_desc.h"
#include "fixture.h"
#include "image/decode.h"
#include "image/ops.h"
#include "io/model_io.h"
#include "resnet.h"
#include "rng.h"
#include "testlib.h"

static int one_line(const char *s) { return *s && !strchr(s, '\n'); }

static void tiny_config(ResNetConfig *c) {
    resnet_config_preset(c, "resnet50");
    for (int s = 0; s < RESNET_STAGES; s++) c->planes[s] /= 16;
    static const int blocks[] = {2, 1, 2, 1};
    memcpy(c->blocks, blocks, sizeof blocks);
}

// Eval-mode features of fill((B, 3, S, S), seed) through a loaded model.
static float *features_of(const DinoModel *m, float *params, int B, int S, uint64_t seed) {
    ResNetWeights w;
    model_bind_resnet(m, params, &w);
    size_t n = (size_t)B * 3 * S * S;
    float *img = mallocCheck(n * sizeof(float));
    fixture_fill(img, n, seed, -2.0f, 2.0f);
    ResNetActs *a = resnet_acts_create(&m->resnet, B, S, S, 0);
    resnet_forward(&m->resnet, &w, a, img, B, 0);
    int D = resnet_out_dim(&m->resnet);
    float *out = mallocCheck((size_t)B * D * sizeof(float));
    memcpy(out, resnet_output(a), (size_t)B * D * sizeof(float));
    resnet_acts_free(a);
    free(img);
    return out;
}

static void check_load(const Fixture *fx, const char *file, const char *key, const char *want,
                       int want_head) {
    char err[1024];
    DinoModel m;
    float *params;
    ModelLoadOptions opt = {key, MODEL_HEAD_AUTO, 0};
    int rc = model_load(test_fixture_path(file), &opt, &m, &params, err, sizeof err);
    CHECK(rc == 0, "%s (%s) loads: %s", file, key ? key : "default key", rc ? err : "ok");
    if (rc) return;
    ResNetConfig c;
    tiny_config(&c);
    CHECK(m.backbone == MODEL_BACKBONE_RESNET && !memcmp(&m.resnet, &c, sizeof c),
          "%s: the ResNet's configuration is inferred (planes 4..32, blocks 2,1,2,1, stem 7x7/2 + pool)", file);
    CHECK(m.has_head == want_head && (!want_head || (m.head.in_dim == 128 && m.head.out_dim == 64 &&
                                                      m.head.hidden == 32 && m.head.bottleneck == 16)),
          "%s: %s", file, want_head ? "the DINO head (128 -> 32 -> 16 -> 64)" : "no head");
    float *f = features_of(&m, params, 2, 64, ENGINE_IMG_SEED + 32);
    const FixtureTensor *t = fixture_get(fx, want);
    char what[160];
    snprintf(what, sizeof what, "%s (%s): eval features = torchvision's", file, key ? key : "default key");
    CHECK(t->numel == 2 * 128, "%s: fixture size", what);
    if (t->numel == 2 * 128) engine_close(what, f, t->data, t->numel, 1e-5);
    free(f);
    free(params);
    model_free(&m);
}

static void check_round_trip(const char *ext) {
    char err[1024], path[600];
    DinoModel m, m2;
    float *p, *p2;
    ModelLoadOptions opt = {NULL, MODEL_HEAD_AUTO, 0};
    if (model_load(test_fixture_path("resnet_tiny_full.pth"), &opt, &m, &p, err, sizeof err)) {
        CHECK(0, "load for the round trip: %s", err);
        return;
    }
    snprintf(path, sizeof path, "%s", test_tmp_path(ext));
    CHECK(model_save(path, &m, p, err, sizeof err) == 0, "saved as %s", ext);
    int rc = model_load(path, &opt, &m2, &p2, err, sizeof err);
    CHECK(rc == 0, "%s loads back: %s", ext, rc ? err : "ok");
    if (!rc) {
        CHECK(m2.backbone == MODEL_BACKBONE_RESNET && !memcmp(&m.resnet, &m2.resnet, sizeof m.resnet) &&
                  m2.has_head && m2.table.total == m.table.total &&
                  !memcmp(p, p2, m.table.total * sizeof(float)),
              "%s round trip: same configuration, head, and every value bit for bit (running statistics too)", ext);
        free(p2);
        model_free(&m2);
    }
    free(p);
    model_free(&m);
}

// A copy of a fixture cut to `keep` bytes (or with bytes overwritten at `at`).
static const char *damaged(const char *name, size_t keep, size_t at, const char *junk) {
    size_t n;
    uint8_t *b = test_read_file(test_fixture_path("resnet_tiny.pth"), &n);
    if (!b) return NULL;
    if (junk) memcpy(b + at, junk, strlen(junk));
    const char *path = test_tmp_path(name);
    test_write_file(path, b, keep ? keep : n);
    free(b);
    return path;
}

static void check_refusals(void) {
    char err[1024];
    DinoModel m;
    float *p;
    ModelLoadOptions opt = {NULL, MODEL_HEAD_AUTO, 0};
    const char *cut = damaged("cut.pth", 120000, 0, NULL);
    int rc = model_load(cut, &opt, &m, &p, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "cut.pth") && one_line(err), "a truncated .pth is refused: %s", err);
    // The zip's central directory is at the end: overwrite the records there.
    size_t n;
    uint8_t *b = test_read_file(test_fixture_path("resnet_tiny.pth"), &n);
    const char *bad = damaged("junk.pth", 0, n - 600, "JUNKJUNKJUNKJUNKJUNKJUNKJUNKJUNKJUNKJUNKJUNKJUNK");
    free(b);
    rc = model_load(bad, &opt, &m, &p, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "junk.pth") && one_line(err), "a .pth with a corrupted directory is refused: %s", err);
    if (rc == 0) free(p), model_free(&m);
}

// The commands through the binary.
static void check_cli(void) {
    char cmd[4096], out[16384], err[1024], path[1024];
    const char *plain = test_fixture_path("resnet_tiny.pth");
    char full[1024];
    snprintf(full, sizeof full, "%s", test_fixture_path("resnet_tiny_full.pth"));
    snprintf(cmd, sizeof cmd, "info %s", full);
    int rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "architecture: resnet (custom): 128-d, blocks [2,1,2,1]") &&
              strstr(out, "head: in=128"), "dino info names the ResNet and its head (exit %d)", rc);
    snprintf(cmd, sizeof cmd, "info %s", plain);
    rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "architecture: resnet") && strstr(out, "head: none"),
          "dino info of the plain state_dict (exit %d)", rc);

    char conv[600];
    snprintf(conv, sizeof conv, "%s", test_tmp_path("conv.safetensors"));
    snprintf(cmd, sizeof cmd, "convert %s %s", full, conv);
    rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "resnet"), "dino convert to safetensors (exit %d): %s", rc, out);

    // An ImageFolder of 64x64 images: train/{a,b} x 3, val/{a,b} x 2.
    char ds[600];
    snprintf(ds, sizeof ds, "%s", test_tmp_path("ds"));
    mkdir(ds, 0755);
    const char *split[2] = {"train", "val"}, *cls[2] = {"a", "b"};
    uint8_t *rgb = mallocCheck(64 * 64 * 3);
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/%s", ds, split[s]);
        mkdir(path, 0755);
        for (int c = 0; c < 2; c++) {
            snprintf(path, sizeof path, "%s/%s/%s", ds, split[s], cls[c]);
            mkdir(path, 0755);
            for (int k = 0; k < 3 - s; k++) {
                for (int i = 0; i < 64 * 64; i++) {
                    int t = (i * 7 + k * 29 + s * 5) % 50;
                    rgb[3 * i] = (uint8_t)(c ? 40 + t : 190 + t);
                    rgb[3 * i + 1] = (uint8_t)(90 + t);
                    rgb[3 * i + 2] = (uint8_t)(c ? 190 + t : 40 + t);
                }
                snprintf(path, sizeof path, "%s/%s/%s/%d.png", ds, split[s], cls[c], k);
                image_write_png(path, rgb, 64, 64, err, sizeof err);
            }
        }
    }
    free(rgb);
    char fdir[600];
    snprintf(fdir, sizeof fdir, "%s", test_tmp_path("feat"));
    snprintf(cmd, sizeof cmd, "features --threads 2 --pretrained_weights %s --data_path %s --crop 64 "
             "--output_dir %s", conv, ds, fdir);
    rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 0, "dino features with the converted ResNet (exit %d)", rc);
    if (rc) printf("%s\n", out);
    NpyInfo info;
    snprintf(path, sizeof path, "%s/train_features.npy", fdir);
    float *tf = npy_read_f32(path, &info, err, sizeof err);
    CHECK(tf && info.ndim == 2 && info.shape[0] == 6 && info.shape[1] == 128, "train_features.npy is (6, 128)");
    if (tf) {
        // Row 4 = train/b/1.png through the eval transform and the model in-process.
        DinoModel m;
        float *p;
        ModelLoadOptions opt = {NULL, MODEL_HEAD_NONE, 0};
        Image im;
        snprintf(path, sizeof path, "%s/train/b/1.png", ds);
        if (model_load(plain, &opt, &m, &p, err, sizeof err) == 0 &&
            image_decode_file(path, 0, &im, err, sizeof err) == 0) {
            float *x = mallocCheck(3 * 64 * 64 * sizeof(float));
            eval_transform(&im, 64, x);
            ResNetWeights w;
            model_bind_resnet(&m, p, &w);
            ResNetActs *a = resnet_acts_create(&m.resnet, 1, 64, 64, 0);
            resnet_forward(&m.resnet, &w, a, x, 1, 0);
            test_close("features row 4 = in-process forward", tf + 4 * 128, resnet_output(a), 128, 1e-6, 1e-5);
            // The retrieval descriptor: the same feature, L2-normalised.
            float d[128], ref[128];
            memcpy(ref, resnet_output(a), sizeof ref);
            double s = 0;
            for (int k = 0; k < 128; k++) s += (double)ref[k] * ref[k];
            for (int k = 0; k < 128; k++) ref[k] = (float)(ref[k] / sqrt(s));
            CHECK(retrieval_resnet_descriptor(&m.resnet, &w, x, 64, 64, 0, d, err, sizeof err) == 0,
                  "retrieval descriptor of a ResNet");
            test_close("retrieval descriptor = normalised pooled feature", d, ref, 128, 1e-6, 1e-5);
            resnet_acts_free(a);
            free(x);
            image_free(&im);
            free(p);
            model_free(&m);
        } else {
            CHECK(0, "in-process reference: %s", err);
        }
    }
    free(tf);
    snprintf(cmd, sizeof cmd, "knn --pretrained_weights %s --data_path %s --crop 64 --nb_knn 3", plain, ds);
    rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "Top1"), "dino knn with the ResNet (exit %d)", rc);
    if (rc) printf("%s\n", out);
    snprintf(cmd, sizeof cmd, "features --pretrained_weights %s --data_path %s --n_last_blocks 4 --output_dir %s",
             plain, ds, fdir);
    rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "pooled features only"),
          "features --n_last_blocks 4 of a ResNet is refused in one line: %s", out);
    snprintf(path, sizeof path, "%s/train/a/0.png", ds);
    snprintf(cmd, sizeof cmd, "attention %s --pretrained_weights %s --out %s", path, plain, test_tmp_path("att"));
    rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "a ResNet has no attention maps"),
          "dino attention refuses a ResNet in one line: %s", out);
    snprintf(cmd, sizeof cmd, "features --pretrained_weights %s --arch vit_small --data_path %s --output_dir %s",
             plain, ds, fdir);
    rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "ResNet"), "--arch vit_small against a ResNet file: %s", out);
    snprintf(cmd, sizeof cmd, "features --pretrained_weights %s --arch resnet50 --data_path %s --output_dir %s",
             plain, ds, fdir);
    rc = test_run_dino(cmd, out, sizeof out);
    CHECK(rc == 1 && one_line(out) && strstr(out, "custom ResNet, not --arch resnet50"),
          "--arch resnet50 against a reduced ResNet: %s", out);
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    test_tmpdir("resnet_io");
    Fixture fx = fixture_load("resnet_engine.bin");
    check_load(&fx, "resnet_tiny.pth", NULL, "pth.teacher", 0);
    check_load(&fx, "resnet_tiny_full.pth", NULL, "pth.teacher", 1);
    check_load(&fx, "resnet_tiny_full.pth", "student", "pth.student", 1);
    check_round_trip("rt.dino");
    check_round_trip("rt.safetensors");
    check_refusals();
    if (test_dino_path()) check_cli();
    else printf("skipped: the dino binary of this build is missing\n");
    fixture_free(&fx);
    test_tmpdir_remove();
    return test_finish();
}
