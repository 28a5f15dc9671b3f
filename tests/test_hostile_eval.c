// Hostile inputs to the evaluation commands (docs/RELIABILITY.md, "Hostile
// inputs, round 2"): each case runs under a memory cap and a wall-clock limit
// (tests/bounded.h) and must end cleanly, with a correct result or one clear
// line, within bounds about ten times what the fixed code needs:
// - --val_freq 0 (was SIGFPE), a batch of 0 in the full-mode probe;
// - k-NN voting whose cost grew with the largest label (1e8: 12 s);
// - labels of 2e9, 2^31-1, 2^40 and --num_classes/--num_labels 2e9 (was an
//   8 GB buffer per thread, or a wrong "number of classes");
// - --batch_size_per_gpu 100000 on 8 images and --crop 2000 (huge buffers);
// - NaN and Inf features or a diverging loss in the linear probe (was
//   "Top-1 100.0");
// - labels of shape (2, 4);
// - k = 2^21 (neighbour lists of 12 GiB).
// Library cases run in forked children before this process starts OpenMP.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounded.h"
#include "common.h"
#include "data/dataset.h"
#include "eval/features.h"
#include "eval/knn.h"
#include "eval/linear.h"
#include "eval/linear_full.h"
#include "eval/npy.h"
#include "image/decode.h"
#include "io/model_io.h"
#include "model.h"
#include "rng.h"
#include "testlib.h"
#include "tiny_vit.h"

// The memory cap of every case, generous for inputs of a few KB (dropped
// under ASan by tests/bounded.c).
#define MEM_MB 1024

static char DIR_[512];
static char MODEL[600];

static const char *path_in(const char *sub, const char *name) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s/%s", DIR_, sub, name);
    return buf[k];
}

// Two classes, separable by the sign of feature 0: rows of dimension d.
static void separable(float *x, int64_t *y, int64_t n, int d, uint64_t seed) {
    Rng r;
    rng_stream(&r, RNG_TEST, seed, 0, 0, 0);
    for (int64_t i = 0; i < n; i++) {
        y[i] = i % 2;
        for (int j = 0; j < d; j++) x[i * d + j] = (float)rng_uniform(&r) - 0.5f;
        x[i * d] = y[i] ? 2.0f : -2.0f;
    }
}

static void write_or_die(int rc, const char *err) {
    if (rc != 0) {
        printf("cannot write a test input: %s\n", err);
        exit(1);
    }
}

// DIR/<sub>/{train,val}_{features,labels}.npy: 8 samples of dimension 4.
static void write_feature_dir(const char *sub) {
    char err[512], d[1024];
    snprintf(d, sizeof d, "%s/%s", DIR_, sub);
    mkdir(d, 0755);
    float x[32];
    int64_t y[8], fs[2] = {8, 4}, ls[1] = {8};
    separable(x, y, 8, 4, 1);
    write_or_die(npy_write_f32(path_in(sub, "train_features.npy"), 2, fs, x, err, sizeof err), err);
    write_or_die(npy_write_i64(path_in(sub, "train_labels.npy"), 1, ls, y, err, sizeof err), err);
    separable(x, y, 8, 4, 2);
    write_or_die(npy_write_f32(path_in(sub, "val_features.npy"), 2, fs, x, err, sizeof err), err);
    write_or_die(npy_write_i64(path_in(sub, "val_labels.npy"), 1, ls, y, err, sizeof err), err);
}

// The feature folder `sub` with train_labels[3] = label.
static void write_label_dir(const char *sub, int64_t label) {
    write_feature_dir(sub);
    char err[512];
    float x[32];
    int64_t y[8], ls[1] = {8};
    separable(x, y, 8, 4, 1);
    y[3] = label;
    write_or_die(npy_write_i64(path_in(sub, "train_labels.npy"), 1, ls, y, err, sizeof err), err);
}

static int exited_cleanly(const Bounded *b, int want_code) {
    return !b->timed_out && !b->signal && b->exit_code == want_code;
}

// Runs dino with up to 16 args; prints the outcome for the log.
static Bounded run_dino(const char *const *argv, double limit_s, size_t mem_mb) {
    Bounded b;
    if (bounded_dino(argv, limit_s, mem_mb, &b) != 0) {
        printf("     cannot run build/dino\n");
        memset(&b, 0, sizeof b);
        b.exit_code = -1;
    }
    return b;
}

// The line of b's output that holds `needle` (static), or "" when none does.
static const char *line_with(const Bounded *b, const char *needle) {
    static char line[600];
    const char *p = strstr(b->output, needle);
    line[0] = 0;
    if (!p) return line;
    while (p > b->output && p[-1] != '\n') p--;
    size_t n = strcspn(p, "\n");
    if (n >= sizeof line) n = sizeof line - 1;
    memcpy(line, p, n);
    line[n] = 0;
    return line;
}

// ---------------------------------------------------------------- 1. val_freq

static void val_freq_zero(void) {
    write_feature_dir("vf");
    char fd[1024];
    snprintf(fd, sizeof fd, "%s/vf", DIR_);
    // --lr 1: the first step outweighs the N(0, 0.01) init, so the separable
    // classes are learnt whatever the init draws.
    const char *argv[] = {"linear", "--features_dir", fd, "--epochs", "2", "--val_freq", "0", "--lr", "1", NULL};
    Bounded b = run_dino(argv, 20, MEM_MB);
    // 0 validates only after the last epoch
    int ok = exited_cleanly(&b, 0) && strstr(b.output, "Top-1 test accuracy: 100.0") &&
             strstr(b.output, "epoch 0: lr 0.5 train loss") && !strstr(line_with(&b, "epoch 0:"), "val");
    CHECK(ok && b.seconds < 10, "linear --val_freq 0: exit %d signal %d in %.2f s: %s", b.exit_code,
          b.signal, b.seconds, strstr(b.output, "Top-1") ? line_with(&b, "Top-1") : bounded_first_line(&b));
    // --output_dir: missing parents are made; a file in the way is refused before training.
    char od[1024], weight[1200];
    snprintf(od, sizeof od, "%s/vf/probe/out", DIR_);
    snprintf(weight, sizeof weight, "%s/linear_weight.npy", od);
    const char *nested[] = {"linear", "--features_dir", fd, "--epochs", "1", "--output_dir", od, NULL};
    b = run_dino(nested, 20, MEM_MB);
    CHECK(exited_cleanly(&b, 0) && access(weight, F_OK) == 0,
          "linear --output_dir makes missing folders: exit %d: %s", b.exit_code, bounded_first_line(&b));
    const char *blocked[] = {"linear", "--features_dir", fd, "--epochs", "1", "--output_dir", weight, NULL};
    b = run_dino(blocked, 20, MEM_MB);
    CHECK(exited_cleanly(&b, 1) && strstr(line_with(&b, "error"), "in the way") && !strstr(b.output, "epoch 0"),
          "linear --output_dir onto a file is refused before training: exit %d: %s", b.exit_code,
          line_with(&b, "error"));
    const char *neg[] = {"linear", "--features_dir", fd, "--epochs", "2", "--val_freq", "-3", NULL};
    b = run_dino(neg, 20, MEM_MB);
    CHECK(exited_cleanly(&b, 1) && strstr(line_with(&b, "val_freq"), "-3"),
          "linear --val_freq -3 is refused: exit %d: %s", b.exit_code, line_with(&b, "val_freq"));
}

static int probe_val_freq_zero(void *arg) {
    (void)arg;
    float x[32], xv[32];
    int64_t y[8], yv[8];
    separable(x, y, 8, 4, 1);
    separable(xv, yv, 8, 4, 2);
    LinearConfig cfg;
    linear_config_default(&cfg);
    cfg.epochs = 3;
    cfg.val_freq = 0;
    cfg.lr = 1.0f;  // learns the separable classes whatever the init draws
    LinearResult res;
    char err[512];
    if (linear_probe(&cfg, x, y, 8, xv, yv, 8, 4, 2, NULL, &res, err, sizeof err) != 0) {
        printf("%s\n", err);
        return 1;
    }
    // Validated once, after the last epoch.
    return res.best_epoch == 2 && res.best_top1 == 100.0 ? 0 : 2;
}

// ---------------------------------------------------------------- 2, 3. k-NN classes

// Many test rows, one training label just below the class limit: the vote
// must not scan every class (it cost rows × k × classes).
static int knn_large_label(void *arg) {
    (void)arg;
    const int64_t ntr = 64, nte = 2000;
    const int d = 4;
    float *tr = mallocCheck(ntr * d * sizeof(float)), *te = mallocCheck(nte * d * sizeof(float));
    int64_t *trl = mallocCheck(ntr * sizeof(int64_t)), *tel = mallocCheck(nte * sizeof(int64_t));
    separable(tr, trl, ntr, d, 3);
    separable(te, tel, nte, d, 4);
    trl[5] = KNN_MAX_CLASSES - 1;
    KnnConfig cfg;
    knn_config_default(&cfg);
    KnnResult res[KNN_MAX_K];
    char err[512];
    int rc = knn_evaluate(tr, trl, ntr, te, tel, nte, d, &cfg, res, err, sizeof err);
    if (rc) printf("%s\n", err);
    else printf("10-NN top-1 %.2f\n", res[0].top1);
    return rc == 0 && res[0].top1 > 90 ? 0 : 1;
}

static void knn_labels(void) {
    char fd[1024];
    const char *big[] = {"100000000", "2000000000", "2147483647", "1099511627776"};
    const int64_t val[] = {100000000, 2000000000, 2147483647, (int64_t)1 << 40};
    for (int i = 0; i < 4; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "lab%d", i);
        write_label_dir(sub, val[i]);
        snprintf(fd, sizeof fd, "%s/%s", DIR_, sub);
        const char *cmds[2] = {"knn", "linear"};
        for (int c = 0; c < 2; c++) {
            const char *argv[] = {cmds[c], "--features_dir", fd, "--epochs", "1", NULL};
            if (c == 0) argv[3] = NULL;
            Bounded b = run_dino(argv, 10, MEM_MB);
            const char *l = line_with(&b, big[i]);
            CHECK(exited_cleanly(&b, 1) && b.seconds < 5 && strstr(l, "train_labels.npy") &&
                      strstr(l, "16777216"),
                  "%s with a training label of %s: exit %d in %.2f s: %s", cmds[c], big[i],
                  b.exit_code, b.seconds, l[0] ? l : bounded_first_line(&b));
        }
    }
    snprintf(fd, sizeof fd, "%s/vf", DIR_);
    const char *nc[] = {"knn", "--features_dir", fd, "--num_classes", "2000000000", NULL};
    Bounded b = run_dino(nc, 10, MEM_MB);
    CHECK(exited_cleanly(&b, 1) && b.seconds < 5 && strstr(line_with(&b, "num_classes"), "2000000000"),
          "knn --num_classes 2000000000: exit %d in %.2f s: %s", b.exit_code, b.seconds,
          bounded_first_line(&b));
    const char *nl[] = {"linear", "--features_dir", fd, "--num_labels", "2000000000", NULL};
    b = run_dino(nl, 10, MEM_MB);
    CHECK(exited_cleanly(&b, 1) && b.seconds < 5 && strstr(line_with(&b, "num_labels"), "2000000000"),
          "linear --num_labels 2000000000: exit %d in %.2f s: %s", b.exit_code, b.seconds,
          bounded_first_line(&b));
}

// The library refuses what no flag range can see: num_classes in the config.
static int knn_many_classes(void *arg) {
    (void)arg;
    float x[32], xv[32];
    int64_t y[8], yv[8];
    separable(x, y, 8, 4, 1);
    separable(xv, yv, 8, 4, 2);
    KnnConfig cfg;
    knn_config_default(&cfg);
    cfg.num_classes = 2000000000;
    KnnResult res[KNN_MAX_K];
    char err[512];
    int rc = knn_evaluate(x, y, 8, xv, yv, 8, 4, &cfg, res, err, sizeof err);
    printf("%s\n", err);
    return rc == -1 && strstr(err, "16777216") ? 0 : 1;
}

// k = 2^21 over 2^21 training and 512 test samples: 12 GiB of neighbour lists.
static int knn_huge_k(void *arg) {
    (void)arg;
    const int64_t ntr = (int64_t)1 << 21, nte = 512;
    float *tr = mallocCheck(ntr * sizeof(float)), *te = mallocCheck(nte * sizeof(float));
    int64_t *trl = callocCheck(ntr, sizeof(int64_t)), *tel = callocCheck(nte, sizeof(int64_t));
    for (int64_t i = 0; i < ntr; i++) tr[i] = 1.0f;
    for (int64_t i = 0; i < nte; i++) te[i] = 1.0f;
    KnnConfig cfg;
    knn_config_default(&cfg);
    cfg.n_k = 1;
    cfg.ks[0] = 1 << 21;
    KnnResult res[KNN_MAX_K];
    char err[512];
    int rc = knn_evaluate(tr, trl, ntr, te, tel, nte, 1, &cfg, res, err, sizeof err);
    printf("%s\n", rc ? err : "searched");
    return rc == -1 && strstr(err, "limit") ? 0 : 1;
}

static int linear_many_classes(void *arg) {
    (void)arg;
    float x[32], xv[32];
    int64_t y[8], yv[8];
    separable(x, y, 8, 4, 1);
    separable(xv, yv, 8, 4, 2);
    LinearConfig cfg;
    linear_config_default(&cfg);
    cfg.epochs = 1;
    LinearResult res;
    char err[512];
    int rc = linear_probe(&cfg, x, y, 8, xv, yv, 8, 4, 2000000000, NULL, &res, err, sizeof err);
    printf("%s\n", err);
    if (rc != -1 || !strstr(err, "2000000000")) return 1;
    // Within the class limit but too many weights for its dimension.
    float *wide = callocCheck(8 * 4096, sizeof(float));
    for (int i = 0; i < 8; i++) wide[i * 4096] = y[i] ? 1.0f : -1.0f;
    rc = linear_probe(&cfg, wide, y, 8, wide, y, 8, 4096, 10000000, NULL, &res, err, sizeof err);
    printf("%s\n", err);
    free(wide);
    return rc == -1 && strstr(err, "limit") ? 0 : 2;
}

// Labels stored as uint64 with one above INT64_MAX: refused, not read as negative.
static void labels_u64(void) {
    write_feature_dir("u64");
    const char *dict = "{'descr': '<u8', 'fortran_order': False, 'shape': (8,), }";
    uint8_t buf[128 + 64];
    memset(buf, ' ', 128);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = 128 - 10, buf[9] = 0;
    memcpy(buf + 10, dict, strlen(dict));
    buf[127] = '\n';
    uint64_t y[8] = {0, 1, 0, ((uint64_t)1 << 63) + 5, 0, 1, 0, 1};
    memcpy(buf + 128, y, sizeof y);
    test_write_file(path_in("u64", "train_labels.npy"), buf, sizeof buf);
    char fd[1024];
    snprintf(fd, sizeof fd, "%s/u64", DIR_);
    const char *argv[] = {"knn", "--features_dir", fd, NULL};
    Bounded b = run_dino(argv, 10, MEM_MB);
    const char *l = line_with(&b, "train_labels.npy");
    CHECK(exited_cleanly(&b, 1) && strstr(l, "element 3") && strstr(l, "64-bit"),
          "a uint64 label of 2^63+5: %s", l[0] ? l : bounded_first_line(&b));
}

// ---------------------------------------------------------------- 6. non-finite

static void linear_non_finite(void) {
    const char *bad[2] = {"nan", "inf"};
    for (int v = 0; v < 2; v++) {
        char sub[32], fd[1024], err[512];
        snprintf(sub, sizeof sub, "nf%d", v);
        write_feature_dir(sub);
        float x[32];
        int64_t y[8], fs[2] = {8, 4};
        separable(x, y, 8, 4, 1);
        x[2 * 4 + 3] = v ? INFINITY : NAN;
        write_or_die(npy_write_f32(path_in(sub, "train_features.npy"), 2, fs, x, err, sizeof err), err);
        snprintf(fd, sizeof fd, "%s/%s", DIR_, sub);
        const char *argv[] = {"linear", "--features_dir", fd, "--epochs", "2", NULL};
        Bounded b = run_dino(argv, 10, MEM_MB);
        const char *l = line_with(&b, "finite");
        CHECK(exited_cleanly(&b, 1) && !strstr(b.output, "Top-1") && strstr(l, "train_features.npy") &&
                  strstr(l, "sample 2"),
              "linear on features holding %s: exit %d: %s", bad[v], b.exit_code, l[0] ? l : bounded_first_line(&b));
    }
}

// A learning rate so large that the weights overflow after the first step
// (identical rows, 7 of 8 in class 0, so the gradient cannot vanish): the
// loss is not finite and no accuracy may come out.
static int linear_diverges(void *arg) {
    (void)arg;
    float x[32];
    int64_t y[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < 32; i++) x[i] = i % 4 ? 0.5f : 1e20f;
    LinearConfig cfg;
    linear_config_default(&cfg);
    cfg.epochs = 3;
    cfg.lr = 1e30f;
    LinearResult res;
    char err[512];
    int rc = linear_probe(&cfg, x, y, 8, x, y, 8, 4, 2, NULL, &res, err, sizeof err);
    printf("%s\n", rc ? err : "trained");
    return rc == -1 && strstr(err, "finite") ? 0 : 1;
}

// ---------------------------------------------------------------- 7. label shape

static void labels_2d(void) {
    write_feature_dir("l2d");
    char err[512], fd[1024];
    int64_t y[8] = {0, 1, 0, 1, 0, 1, 0, 1}, s[2] = {2, 4};
    write_or_die(npy_write_i64(path_in("l2d", "val_labels.npy"), 2, s, y, err, sizeof err), err);
    snprintf(fd, sizeof fd, "%s/l2d", DIR_);
    const char *argv[] = {"knn", "--features_dir", fd, NULL};
    Bounded b = run_dino(argv, 10, MEM_MB);
    const char *l = line_with(&b, "1-D");
    CHECK(exited_cleanly(&b, 1) && strstr(l, "val_labels.npy") && strstr(l, "got shape (2, 4)"),
          "labels of shape (2, 4): %s", l[0] ? l : bounded_first_line(&b));
}

// ---------------------------------------------------------------- 4, 8. features

// A tiny model (img 32, patch 8, D 48, 2 blocks, 3 heads) and an ImageFolder
// with 8 training and 2 validation images of 40x36.
static void write_model_and_images(void) {
    ViTConfig vc = tiny_vit_config();
    DinoModel m;
    model_build(&m, &vc, NULL, 0);
    float *params = callocCheck(m.table.total, sizeof(float));
    ViTWeights w;
    model_bind(&m, params, &w, NULL);
    vit_init(&m.vit, &w, 1);
    char err[512];
    snprintf(MODEL, sizeof MODEL, "%s/tiny.dino", DIR_);
    write_or_die(model_save(MODEL, &m, params, err, sizeof err), err);
    free(params);
    model_free(&m);
    const int iw = 40, ih = 36;
    uint8_t *rgb = mallocCheck((size_t)iw * ih * 3);
    char path[1200];
    const char *split[2] = {"train", "val"}, *cls[2] = {"a", "b"};
    snprintf(path, sizeof path, "%s/ds", DIR_);
    mkdir(path, 0755);
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/ds/%s", DIR_, split[s]);
        mkdir(path, 0755);
        for (int c = 0; c < 2; c++) {
            snprintf(path, sizeof path, "%s/ds/%s/%s", DIR_, split[s], cls[c]);
            mkdir(path, 0755);
            for (int k = 0; k < (s ? 1 : 4); k++) {
                for (int i = 0; i < iw * ih * 3; i++) rgb[i] = (uint8_t)(c ? 200 - i % 50 : 30 + (i * 7 + k) % 60);
                snprintf(path, sizeof path, "%s/ds/%s/%s/%d.png", DIR_, split[s], cls[c], k);
                write_or_die(image_write_png(path, rgb, iw, ih, err, sizeof err), err);
            }
        }
    }
    free(rgb);
}

typedef struct {
    int batch, crop;
} FeatureCase;

// features_extract over the 8 training images with the case's batch and crop.
static int extract_case(void *arg) {
    const FeatureCase *fcase = arg;
    char err[512];
    DinoModel m;
    float *params;
    ModelLoadOptions opt;
    memset(&opt, 0, sizeof opt);
    opt.head = MODEL_HEAD_NONE;
    if (model_load(MODEL, &opt, &m, &params, err, sizeof err) != 0) {
        printf("%s\n", err);
        return 3;
    }
    ViTWeights w;
    model_bind(&m, params, &w, NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/ds", DIR_);
    Dataset *ds = dataset_open(path, SPLIT_TRAIN, err, sizeof err);
    if (!ds) {
        printf("%s\n", err);
        return 3;
    }
    FeatureConfig fc;
    feature_config_default(&fc);
    fc.crop = fcase->crop;
    fc.batch_size = fcase->batch;
    fc.threads = 0;
    float *x = mallocCheck(8 * 48 * sizeof(float));
    int64_t y[8];
    int rc = features_extract(&m.vit, &w, ds, &fc, x, y, err, sizeof err);
    printf("%s\n", rc ? err : "extracted");
    free(x);
    dataset_close(ds);
    free(params);
    model_free(&m);
    return rc == 0 ? 0 : strstr(err, "limit") ? 1 : 2;
}

// The full-mode probe with a batch of 0 (was an endless loop) and val_freq 0.
static int full_probe_case(void *arg) {
    const int *batch = arg;
    char err[512], path[1024];
    DinoModel m;
    float *params;
    ModelLoadOptions opt;
    memset(&opt, 0, sizeof opt);
    opt.head = MODEL_HEAD_NONE;
    if (model_load(MODEL, &opt, &m, &params, err, sizeof err) != 0) return 3;
    ViTWeights w;
    model_bind(&m, params, &w, NULL);
    snprintf(path, sizeof path, "%s/ds", DIR_);
    Dataset *ds = dataset_open(path, SPLIT_TRAIN, err, sizeof err);
    if (!ds) return 3;
    FeatureConfig fc;
    feature_config_default(&fc);
    fc.crop = 32;
    LinearConfig lcfg;
    linear_config_default(&lcfg);
    lcfg.epochs = 2;
    lcfg.batch_size = *batch;
    lcfg.val_freq = 0;
    float xv[2 * 48] = {0};
    int64_t yv[2] = {0, 1};
    LinearResult res;
    int rc = linear_probe_full(&m.vit, &w, ds, xv, yv, 2, &fc, &lcfg, 2, NULL, &res, err, sizeof err);
    printf("%s\n", rc ? err : "trained");
    dataset_close(ds);
    free(params);
    model_free(&m);
    return rc == 0 ? 0 : strstr(err, "batch") ? 1 : 2;
}

static void features_cli(void) {
    char data[1024], out[1024];
    snprintf(data, sizeof data, "%s/ds", DIR_);
    snprintf(out, sizeof out, "%s/feat", DIR_);
    const char *batch[] = {"features", "--pretrained_weights", MODEL, "--data_path", data, "--output_dir",
                           out, "--batch_size_per_gpu", "4096", NULL};
    Bounded b = run_dino(batch, 20, MEM_MB);
    // The largest batch the flag allows runs on 8 images (the cap itself is
    // checked by extract_case; 100000 is refused by the flag's range,
    // test_hostile_cli).
    CHECK(exited_cleanly(&b, 0) && b.seconds < 10,
          "features --batch_size_per_gpu 4096 on 8 images: exit %d in %.2f s: %s", b.exit_code,
          b.seconds, bounded_first_line(&b));
    const char *commands[2] = {"features", "knn"};
    for (int c = 0; c < 2; c++) {
        const char *crop[] = {commands[c], "--pretrained_weights", MODEL, "--data_path", data,
                              "--output_dir", out, "--crop", "2000", NULL};
        if (c == 1) crop[5] = "--threads", crop[6] = "1";
        b = run_dino(crop, 10, MEM_MB);
        const char *l = line_with(&b, "2000");
        CHECK(exited_cleanly(&b, 1) && b.seconds < 5 && strstr(l, "crop") && !strstr(b.output, "internal error"),
              "%s --crop 2000: exit %d in %.2f s: %s", commands[c], b.exit_code, b.seconds,
              l[0] ? l : bounded_first_line(&b));
    }
}

// ---------------------------------------------------------------- vote equivalence

// The reference's dense vote, for comparison: every class scored, ranked by
// (score desc, class asc).
static void dense_vote(const float *sim, const int64_t *idx, int kmax, int64_t nte,
                       const int64_t *trl, const int64_t *tel, int nc, int k, float T,
                       int64_t *c1, int64_t *c5) {
    float *score = mallocCheck((size_t)nc * sizeof(float));
    *c1 = *c5 = 0;
    int kk = k < kmax ? k : kmax, top = k < 5 ? k : 5;
    for (int64_t i = 0; i < nte; i++) {
        memset(score, 0, (size_t)nc * sizeof(float));
        for (int j = 0; j < kk; j++) score[trl[idx[i * kmax + j]]] += expf(sim[i * kmax + j] / T);
        int64_t t = tel[i], rank = 0;
        for (int c = 0; c < nc; c++)
            if (score[c] > score[t] || (score[c] == score[t] && c < t)) rank++;
        *c1 += rank == 0;
        *c5 += rank < top;
    }
    free(score);
}

// Sparse voting equals the dense vote, also where exp(sim/T) underflows to 0
// or overflows to inf (ties among absent and present classes).
static void vote_matches_dense(void) {
    const int64_t ntr = 300, nte = 200;
    const int d = 6, kmax = 50, nc = 40;
    float *tr = mallocCheck(ntr * d * sizeof(float)), *te = mallocCheck(nte * d * sizeof(float));
    int64_t *trl = mallocCheck(ntr * sizeof(int64_t)), *tel = mallocCheck(nte * sizeof(int64_t));
    Rng r;
    rng_stream(&r, RNG_TEST, 9, 0, 0, 0);
    for (int64_t i = 0; i < ntr * d; i++) tr[i] = (float)rng_uniform(&r) - 0.5f;
    for (int64_t i = 0; i < nte * d; i++) te[i] = (float)rng_uniform(&r) - 0.5f;
    for (int64_t i = 0; i < ntr; i++) trl[i] = rng_below(&r, nc);
    for (int64_t i = 0; i < nte; i++) tel[i] = rng_below(&r, nc);
    knn_l2_normalize(tr, ntr, d);
    knn_l2_normalize(te, nte, d);
    float *sim = mallocCheck(nte * kmax * sizeof(float));
    int64_t *idx = mallocCheck(nte * kmax * sizeof(int64_t));
    knn_search(tr, ntr, te, nte, d, kmax, sim, idx);
    const float temps[3] = {0.07f, 0.001f, 50.0f};
    int all = 1;
    for (int t = 0; t < 3; t++) {
        KnnConfig cfg;
        knn_config_default(&cfg);
        int ks[5] = {1, 3, 7, 20, 50};
        cfg.n_k = 5;
        memcpy(cfg.ks, ks, sizeof ks);
        cfg.temperature = temps[t];
        KnnResult res[KNN_MAX_K];
        knn_vote(sim, idx, kmax, nte, trl, tel, &cfg, res);
        for (int q = 0; q < 5; q++) {
            int64_t c1, c5;
            dense_vote(sim, idx, kmax, nte, trl, tel, nc, ks[q], temps[t], &c1, &c5);
            int ok = fabs(res[q].top1 - 100.0 * c1 / nte) < 1e-9 && fabs(res[q].top5 - 100.0 * c5 / nte) < 1e-9;
            if (!ok)
                printf("     T=%g k=%d: got %.3f/%.3f, dense %.3f/%.3f\n", temps[t], ks[q], res[q].top1,
                       res[q].top5, 100.0 * c1 / nte, 100.0 * c5 / nte);
            all &= ok;
        }
    }
    CHECK(all, "knn_vote equals the dense all-class vote at T = 0.07, 0.001 (inf scores), 50");
    free(tr); free(te); free(trl); free(tel); free(sim); free(idx);
}

static void check_call(const char *what, int (*fn)(void *), void *arg, double limit_s, size_t mem_mb,
                       int want) {
    Bounded b;
    int rc = bounded_call(fn, arg, limit_s, mem_mb, &b);
    CHECK(rc == 0 && exited_cleanly(&b, want) && b.seconds < limit_s / 2,
          "%s: exit %d (want %d), signal %d, %.2f s (bound %.0f s, %zu MB): %s", what, b.exit_code, want,
          b.signal, b.seconds, limit_s / 2, mem_mb, bounded_first_line(&b));
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    snprintf(DIR_, sizeof DIR_, "%s", test_tmpdir("hostile_eval"));
    write_model_and_images();

    // Library cases first: forked children must not inherit a started OpenMP pool.
    check_call("linear_probe with val_freq 0 validates after the last epoch only", probe_val_freq_zero, NULL,
               20, MEM_MB, 0);
    check_call("k-NN with a label of 2^24-1 among 64 training and 2000 test samples", knn_large_label, NULL,
               20, MEM_MB, 0);
    check_call("knn_evaluate with num_classes 2e9 is refused naming the limit", knn_many_classes, NULL, 10, MEM_MB, 0);
    check_call("knn_evaluate with k = 2^21 over 512 test samples is refused naming the limit", knn_huge_k,
               NULL, 10, MEM_MB, 0);
    check_call("linear_probe with 2e9 classes, or 1e7 classes of dimension 4096, is refused",
               linear_many_classes, NULL, 10, MEM_MB, 0);
    check_call("linear_probe whose loss overflows refuses to report an accuracy", linear_diverges, NULL, 10, MEM_MB, 0);
    FeatureCase big_batch = {100000, 32}, big_crop = {128, 2000};
    check_call("features_extract with batch 100000 on 8 images", extract_case, &big_batch, 20, MEM_MB, 0);
    check_call("features_extract with crop 2000 is refused naming the limit", extract_case, &big_crop, 10, MEM_MB, 1);
    int zero = 0, two = 2;
    check_call("linear_probe_full with batch 0 is refused", full_probe_case, &zero, 10, MEM_MB, 1);
    check_call("linear_probe_full with val_freq 0 trains", full_probe_case, &two, 30, MEM_MB, 0);

    // The dino binary (exec'd, no fork of this process's state).
    val_freq_zero();
    knn_labels();
    linear_non_finite();
    labels_2d();
    labels_u64();
    features_cli();

    vote_matches_dense();
    test_tmpdir_remove();
    return test_finish();
}
