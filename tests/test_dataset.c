// Datasets: IDX (raw and gzip, folder auto-detection, the installed
// Fashion-MNIST when present), CIFAR-10/100 binary, ImageFolder order and
// labels, plain recursive folders, list files, train/val splits, and clear
// errors for empty or missing paths. Inputs are written to a temp folder.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.h"
#include "image/decode.h"
#include "testlib.h"

static char tmp[256];

static const char *P(const char *rel) {
    static char buf[8][512];
    static int k;
    char *o = buf[k++ & 7];
    snprintf(o, 512, "%s/%s", tmp, rel);
    return o;
}

static void mkdirs(const char *rel) {
    char b[512];
    snprintf(b, sizeof b, "%s/%s", tmp, rel);
    for (char *p = b + strlen(tmp) + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(b, 0755); *p = '/'; }
    mkdir(b, 0755);
}

static void write_file(const char *path, const void *data, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, data, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

// n images of 4×3 (rows 3, cols 4): pixel value = 10·i + y·4 + x; label i % 7.
static void write_idx(const char *dir, const char *prefix, int n, int gz) {
    size_t len = 16 + (size_t)n * 12;
    uint8_t *b = calloc(1, len);
    put32(b, 0x00000803); put32(b + 4, (uint32_t)n); put32(b + 8, 3); put32(b + 12, 4);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < 12; p++) b[16 + i * 12 + p] = (uint8_t)(10 * i + p);
    char path[600];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, prefix, gz ? ".gz" : "");
    write_file(path, b, len, gz);
    uint8_t *l = calloc(1, 8 + (size_t)n);
    put32(l, 0x00000801); put32(l + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) l[8 + i] = (uint8_t)(i % 7);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, prefix, gz ? ".gz" : "");
    write_file(path, l, 8 + (size_t)n, gz);
    free(b);
    free(l);
}

static void test_idx(int gz) {
    char err[512] = "";
    const char *dir = P(gz ? "idxgz" : "idxraw");
    mkdirs(gz ? "idxgz" : "idxraw");
    write_idx(dir, "train", 20, gz);
    write_idx(dir, "t10k", 5, gz);
    Dataset *d = dataset_open(dir, SPLIT_TRAIN, err, sizeof err);
    CHECK(d != NULL, "IDX %s folder opens (%s)", gz ? "gzip" : "raw", err);
    if (!d) return;
    CHECK(dataset_size(d) == 20 && dataset_num_classes(d) == 7, "IDX train: %lld images, %d classes",
          (long long)dataset_size(d), dataset_num_classes(d));
    Image im;
    int rc = dataset_load(d, 13, 0, &im, err, sizeof err);
    int ok = rc == 0 && im.w == 4 && im.h == 3;
    for (int p = 0; ok && p < 12; p++)
        ok = im.rgb[3 * p] == 130 + p && im.rgb[3 * p + 1] == 130 + p && im.rgb[3 * p + 2] == 130 + p;
    CHECK(ok, "IDX image 13: 4x3 grey expanded to RGB, values exact");
    CHECK(dataset_label(d, 13) == 6, "IDX label 13 = %d (want 6)", dataset_label(d, 13));
    image_free(&im);
    CHECK(dataset_load(d, 20, 0, &im, err, sizeof err) == -1, "index past the end is an error: %s", err);
    dataset_close(d);
    d = dataset_open(dir, SPLIT_TEST, err, sizeof err);
    CHECK(d && dataset_size(d) == 5, "IDX test split: 5 images");
    dataset_close(d);
    // The images file itself as the path.
    char f[600];
    snprintf(f, sizeof f, "%s/train-images-idx3-ubyte%s", dir, gz ? ".gz" : "");
    d = dataset_open(f, SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_size(d) == 20 && dataset_label(d, 3) == 3, "IDX images file as the path, labels found beside it");
    dataset_close(d);
}

static void test_fashion_mnist(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    if (access(dir, R_OK) != 0) {
        printf("skip: %s not installed\n", dir);
        return;
    }
    char err[512] = "";
    Dataset *d = dataset_open(dir, SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_size(d) == 60000 && dataset_num_classes(d) == 10, "Fashion-MNIST train: %s", d ? dataset_describe(d) : err);
    if (d) {
        int want[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, ok = 1;
        for (int i = 0; i < 10; i++) ok &= dataset_label(d, i) == want[i];
        CHECK(ok, "Fashion-MNIST first train labels 9 0 0 3 0 2 7 2 5 5");
        dataset_close(d);
    }
    d = dataset_open(dir, SPLIT_TEST, err, sizeof err);
    CHECK(d && dataset_size(d) == 10000, "Fashion-MNIST test: 10000 images");
    if (d) {
        Image im;
        dataset_load(d, 0, 0, &im, err, sizeof err);
        long sum = 0;
        for (int p = 0; p < 28 * 28; p++) sum += im.rgb[3 * p + 1];
        int row[6];
        for (int x = 0; x < 6; x++) row[x] = im.rgb[(14 * 28 + 10 + x) * 3];
        CHECK(im.w == 28 && im.h == 28 && sum == 33456 && row[2] == 98 && row[3] == 136,
              "Fashion-MNIST test image 0: pixel sum %ld (numpy: 33456)", sum);
        image_free(&im);
        dataset_close(d);
    }
}

static void test_cifar(int hundred) {
    char err[512] = "";
    const char *sub = hundred ? "c100" : "c10/cifar-10-batches-bin";
    mkdirs(sub);
    size_t rec = hundred ? 3074 : 3073;
    int n = 3;
    uint8_t *b = calloc((size_t)n, rec);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + i * rec;
        if (hundred) { r[0] = 1; r[1] = (uint8_t)(50 + i); } else r[0] = (uint8_t)(i + 2);
        uint8_t *px = r + rec - 3072;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++) px[c * 1024 + p] = (uint8_t)(p + 60 * c + i);
    }
    char f[600];
    if (hundred) {
        snprintf(f, sizeof f, "%s/train.bin", P(sub)); write_file(f, b, n * rec, 0);
        snprintf(f, sizeof f, "%s/test.bin", P(sub)); write_file(f, b, rec, 0);
    } else {
        for (int k = 1; k <= 5; k++) {
            snprintf(f, sizeof f, "%s/data_batch_%d.bin", P(sub), k);
            write_file(f, b, n * rec, 0);
        }
        snprintf(f, sizeof f, "%s/test_batch.bin", P(sub)); write_file(f, b, rec, 0);
    }
    Dataset *d = dataset_open(hundred ? P("c100") : P("c10"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d != NULL, "CIFAR-%d opens (%s)", hundred ? 100 : 10, d ? dataset_describe(d) : err);
    if (d) {
        CHECK(dataset_size(d) == (hundred ? 3 : 15) && dataset_num_classes(d) == (hundred ? 100 : 10),
              "CIFAR-%d train size %lld", hundred ? 100 : 10, (long long)dataset_size(d));
        CHECK(dataset_label(d, 2) == (hundred ? 52 : 4), "CIFAR label (fine label for 100) = %d", dataset_label(d, 2));
        Image im;
        dataset_load(d, 1, 0, &im, err, sizeof err);
        int p = 37;  // planar -> interleaved
        CHECK(im.w == 32 && im.rgb[3 * p] == (uint8_t)(p + 1) && im.rgb[3 * p + 1] == (uint8_t)(p + 61) &&
                  im.rgb[3 * p + 2] == (uint8_t)(p + 121),
              "CIFAR planar RGB interleaved correctly");
        image_free(&im);
        dataset_close(d);
    }
    d = dataset_open(hundred ? P("c100") : P("c10"), SPLIT_TEST, err, sizeof err);
    CHECK(d && dataset_size(d) == 1, "CIFAR test split");
    dataset_close(d);
    free(b);
}

static void put_png(const char *rel, int value) {
    uint8_t px[2 * 2 * 3];
    memset(px, value, sizeof px);
    char err[256];
    image_write_png(P(rel), px, 2, 2, err, sizeof err);
}

static void test_folders(void) {
    char err[512] = "";
    // ImageFolder with classes b, a (sorted: a=0, b=1), nested files, a non-image.
    mkdirs("if/train/b/sub"); mkdirs("if/train/a"); mkdirs("if/val/a");
    put_png("if/train/b/z.png", 1); put_png("if/train/b/sub/c.png", 2); put_png("if/train/b/a.PNG", 3);
    put_png("if/train/a/y.png", 4);
    write_file(P("if/train/a/notes.txt"), "x", 1, 0);
    put_png("if/val/a/q.png", 5);
    Dataset *d = dataset_open(P("if"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_size(d) == 4 && dataset_num_classes(d) == 2, "ImageFolder train/: %s", d ? dataset_describe(d) : err);
    if (d) {
        // Order: a/y; then b's folder (a.PNG, z.png) before b/sub (c.png).
        int want_val[4] = {4, 3, 1, 2}, want_lab[4] = {0, 1, 1, 1}, ok = 1;
        for (int i = 0; i < 4; i++) {
            Image im;
            ok &= dataset_load(d, i, 0, &im, err, sizeof err) == 0 && im.rgb[0] == want_val[i] &&
                  dataset_label(d, i) == want_lab[i];
            image_free(&im);
        }
        CHECK(ok, "ImageFolder order and labels follow sorted(os.walk)");
        dataset_close(d);
    }
    d = dataset_open(P("if"), SPLIT_TEST, err, sizeof err);
    CHECK(d && dataset_size(d) == 1, "ImageFolder val/ for the test split");
    dataset_close(d);
    // Plain folder: images at the top and below, unlabeled.
    mkdirs("plain/deep");
    put_png("plain/1.png", 7); put_png("plain/deep/2.png", 8);
    d = dataset_open(P("plain"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_size(d) == 2 && dataset_num_classes(d) == 0 && dataset_label(d, 0) == -1,
          "plain recursive folder: %s", d ? dataset_describe(d) : err);
    dataset_close(d);
    // List file with labels, relative and absolute paths.
    char list[2048];
    snprintf(list, sizeof list, "# comment\nplain/1.png 3\n%s 1\n\n", P("plain/deep/2.png"));
    write_file(P("list.txt"), list, strlen(list), 0);
    d = dataset_open(P("list.txt"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_size(d) == 2 && dataset_num_classes(d) == 4 && dataset_label(d, 0) == 3 &&
              dataset_label(d, 1) == 1,
          "list file with labels: %s", d ? dataset_describe(d) : err);
    if (d) {
        Image im;
        CHECK(dataset_load(d, 0, 0, &im, err, sizeof err) == 0 && im.rgb[0] == 7, "list file relative path resolved");
        image_free(&im);
    }
    dataset_close(d);
    write_file(P("mixed.txt"), "a.png 1\nb.png\n", 14, 0);
    d = dataset_open(P("mixed.txt"), SPLIT_TRAIN, err, sizeof err);
    CHECK(!d && strstr(err, "label"), "list mixing labeled and unlabeled lines is an error: %s", err);
    // Errors.
    mkdirs("empty");
    d = dataset_open(P("empty"), SPLIT_TRAIN, err, sizeof err);
    CHECK(!d && strstr(err, "no image files"), "empty folder: %s", err);
    d = dataset_open(P("missing"), SPLIT_TRAIN, err, sizeof err);
    CHECK(!d && strstr(err, "no such"), "missing path: %s", err);
    d = dataset_open(P("plain/1.png"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_size(d) == 1, "a single image file is a one-image dataset");
    dataset_close(d);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/dino_test_dataset_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    test_idx(0);
    test_idx(1);
    test_fashion_mnist();
    test_cifar(0);
    test_cifar(1);
    test_folders();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("could not remove %s\n", tmp);
    return test_finish();
}
