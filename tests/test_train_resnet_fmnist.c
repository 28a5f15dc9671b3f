// Training a small ResNet (--arch resnet_tiny: resnet50's widths / 16, one
// bottleneck per stage, the small conv 3x3/1 stem for 28 px images) with
// DINO, as test_train_fmnist.c does for the ViT:
//  1. a short run on Fashion-MNIST at /usr/share/datasets/fashion-mnist
//     (skipped with a message when absent): --preset fmnist with resnet_tiny,
//     20 iterations of batch 16 through train_run; every loss finite, log.txt
//     well formed, no collapse warning, and the teacher does not collapse to
//     one dimension (its batch-mean entropy stays high);
//  2. the in-training k-NN (`dino train --eval_knn_every 1`) on the ResNet
//     feature path: one epoch on a small labelled IDX dataset written here
//     (four classes of images, a bright square in one of four places), and
//     log.txt's epoch record carries knn_top1.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "rng.h"
#include "testlib.h"
#include "train/trainer.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static void short_run(void) {
    char out[128], path[256], cmd[400];
    snprintf(out, sizeof out, "/tmp/dino_test_resnet_fmnist_%d", (int)getpid());
    TrainConfig c;
    train_config_default(&c);
    train_config_preset_fmnist(&c);
    c.arch = "resnet_tiny";
    c.output_dir = out;
    c.out_dim = 256;
    c.head_hidden_dim = 64;
    c.head_bottleneck_dim = 32;
    c.batch_size_per_gpu = 16;
    c.local_crops_number = 2;
    c.epochs = 10;
    c.warmup_epochs = 0;
    c.freeze_last_layer = 0;
    c.num_workers = 0;
    c.log_every_steps = 1;
    c.quiet = 0;  // the start-up lines, into the stderr file
    c.stop_after_steps = 20;
    snprintf(path, sizeof path, "%s.stderr", out);
    fflush(stderr);
    FILE *saved = fdopen(dup(fileno(stderr)), "w");
    if (!freopen(path, "w", stderr)) return;
    char err[512] = "";
    double t0 = dino_now();
    int rc = train_run(&c, NULL, err, sizeof err);
    double secs = dino_now() - t0;
    fflush(stderr);
    dup2(fileno(saved), fileno(stderr));
    fclose(saved);
    CHECK(rc == 0, "train_run --arch resnet_tiny on Fashion-MNIST finished 20 iterations in %.1f s%s%s", secs,
          *err ? ": " : "", err);
    size_t n = 0;
    char *line = NULL;
    FILE *f = fopen(path, "r");
    int warned = 0, named = 0;
    while (f && getline(&line, &n, f) > 0) {
        if (strstr(line, "collapse")) warned = 1;
        if (strstr(line, "model: resnet_tiny: 128-d")) named = 1;
        if (strstr(line, "warning")) printf("  stderr: %s", line);
    }
    if (f) fclose(f);
    CHECK(named, "the start-up line names the backbone (model: resnet_tiny: 128-d, ...)");
    CHECK(!warned, "no collapse warning");
    snprintf(path, sizeof path, "%s/log.txt", out);
    f = fopen(path, "r");
    double hbar_min = 1e9, first = 0, last = 0;
    int steps = 0, finite = 1;
    while (f && getline(&line, &n, f) > 0) {
        const char *p = strstr(line, "\"loss\": ");
        if (!strstr(line, "\"type\": \"step\"") || !p) continue;
        double loss = strtod(p + 8, NULL);
        double hb = strtod(strstr(line, "\"teacher_mean_entropy\": ") + 24, NULL);
        finite &= isfinite(loss) && isfinite(hb);
        hbar_min = fmin(hbar_min, hb);
        if (!steps) first = loss;
        last = loss;
        steps++;
    }
    if (f) fclose(f);
    free(line);
    CHECK(steps == 20 && finite, "log.txt: %d step records, all finite (loss %.4f -> %.4f)", steps, first, last);
    // test_train_fmnist.c's bound: a collapse to one dimension takes the
    // batch-mean entropy to the per-sample entropy, near 0.
    double hmax = log(fmin(256.0, 2.0 * c.batch_size_per_gpu));
    CHECK(hbar_min > 0.5 * hmax, "no collapse to one dimension: batch-mean entropy >= %.3f (want > ln(min(K, 2B)) / 2 = %.3f)",
          hbar_min, 0.5 * hmax);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.stderr'", out, out);
    if (system(cmd) != 0) printf("could not clean %s\n", out);
}

static void be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

// n images of 28x28 in IDX files <dir>/<prefix>-images-idx3-ubyte and -labels-idx1-ubyte:
// class k = i % 4 has a bright 10x10 square in quadrant k over noise.
static void write_idx(const char *dir, const char *prefix, int n, uint64_t seed) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *fi = fopen(p, "wb");
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *fl = fopen(p, "wb");
    if (!fi || !fl) return;
    be32(fi, 0x803), be32(fi, (uint32_t)n), be32(fi, 28), be32(fi, 28);
    be32(fl, 0x801), be32(fl, (uint32_t)n);
    float *noise = malloc(28 * 28 * sizeof(float));
    for (int i = 0; i < n; i++) {
        int k = i % 4, y0 = (k / 2) * 14 + 2, x0 = (k % 2) * 14 + 2;
        fixture_fill(noise, 28 * 28, seed + (uint64_t)i, 0.0f, 60.0f);
        unsigned char img[28 * 28];
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                int in = y >= y0 && y < y0 + 10 && x >= x0 && x < x0 + 10;
                img[y * 28 + x] = (unsigned char)(in ? 255 - noise[y * 28 + x] : noise[y * 28 + x]);
            }
        fwrite(img, 1, sizeof img, fi);
        unsigned char lab = (unsigned char)k;
        fwrite(&lab, 1, 1, fl);
    }
    free(noise);
    fclose(fi);
    fclose(fl);
}

static void knn_hook(void) {
    if (!test_dino_path()) {
        printf("  k-NN hook skipped: no dino binary\n");
        return;
    }
    char dir[128], out[160], args[1024], buf[8192];
    snprintf(dir, sizeof dir, "/tmp/dino_test_resnet_knn_%d", (int)getpid());
    snprintf(out, sizeof out, "%s/run", dir);
    mkdir(dir, 0755);
    write_idx(dir, "train", 64, 100);
    write_idx(dir, "t10k", 32, 1000);
    snprintf(args, sizeof args,
             "train --preset fmnist --arch resnet_tiny --data_path %s --output_dir %s --epochs 1 --warmup_epochs 0 "
             "--batch_size_per_gpu 16 --local_crops_number 2 --out_dim 256 --head_hidden_dim 64 "
             "--head_bottleneck_dim 32 --eval_knn_every 1 --num_workers 0 --threads 2 --quiet true",
             dir, out);
    int rc = test_run_dino(args, buf, sizeof buf);
    char path[256];
    snprintf(path, sizeof path, "%s/log.txt", out);
    FILE *f = fopen(path, "r");
    char line[8192];
    double top1 = -1;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"knn_top1\": ");
        if (p) top1 = strtod(p + 12, NULL);
    }
    if (f) fclose(f);
    CHECK(rc == 0 && top1 >= 0 && top1 <= 100,
          "dino train --arch resnet_tiny --eval_knn_every 1: log.txt records knn_top1 %.2f (exit %d)", top1, rc);
    if (rc || top1 < 0) printf("%s\n", buf);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    knn_hook();
    struct stat st;
    if (stat(FMNIST, &st) != 0) {
        printf("skipped: %s is not there (scripts/setup.sh installs it)\n", FMNIST);
        return test_finish();
    }
    short_run();
    return test_finish();
}
