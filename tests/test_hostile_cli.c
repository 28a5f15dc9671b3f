// Hostile command lines (docs/RELIABILITY.md, "Hostile inputs, round 2"):
// numbers that are not whole words, values far outside what a flag can mean,
// sizes of 0, and a finished training run that is run again. Every case runs
// the real `dino` binary under a memory cap and a wall-clock limit
// (tests/bounded.h) and must end with exit 0 and the right result, or exit 1
// and one line that names the flag and the value.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bounded.h"
#include "testlib.h"

// A refusal must come well within these: it happens before any data is read
// (OpenBLAS alone reserves about 400 MB of address space at start-up).
#define REFUSE_SECONDS 10.0
#define REFUSE_MB 1024
// The tiny training run below takes about a second and needs 500 MB of
// address space; its bounds are 60x and 4x that (the memory cap is dropped
// under ASan by tests/bounded.c).
#define TRAIN_SECONDS 60.0
#define TRAIN_MB 2048

static char g_data[512];

// A 32-image 28x28 IDX training set with labels (MNIST layout).
static void make_data(void) {
    snprintf(g_data, sizeof g_data, "%s", test_tmp_path("data"));
    mkdir(g_data, 0755);
    char p[600];
    const int n = 32;
    uint8_t *img = malloc(16 + n * 784);
    const uint8_t hi[16] = {0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28};
    memcpy(img, hi, 16);
    uint64_t s = 12345;
    for (int i = 0; i < n * 784; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        img[16 + i] = (uint8_t)(s >> 56);
    }
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", g_data);
    test_write_file(p, img, 16 + n * 784);
    free(img);
    uint8_t lab[8 + 32] = {0, 0, 8, 1, 0, 0, 0, n};
    for (int i = 0; i < n; i++) lab[8 + i] = (uint8_t)(i % 10);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", g_data);
    test_write_file(p, lab, sizeof lab);
}

// The one line of b's output that says "error:" (a busy machine adds a
// warning before it); "" when there is none or more than one.
static const char *error_line(const Bounded *b) {
    static char line[512];
    line[0] = 0;
    const char *e = strstr(b->output, "error:");
    if (!e || strstr(e + 1, "error:")) return line;
    while (e > b->output && e[-1] != '\n') e--;
    size_t n = strcspn(e, "\n");
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), e);
    return line;
}

// The last line of b's output, for messages.
static const char *last_line(const Bounded *b) {
    static char line[512];
    size_t n = strlen(b->output);
    while (n > 0 && b->output[n - 1] == '\n') n--;
    size_t start = n;
    while (start > 0 && b->output[start - 1] != '\n') start--;
    snprintf(line, sizeof line, "%.*s", (int)(n - start < sizeof line ? n - start : sizeof line - 1),
             b->output + start);
    return line;
}

// Runs dino with argv and checks a clean refusal: exit 1 within the bounds,
// and one error line that holds every one of `needles` (NULL-terminated).
static void expect_refusal(const char *const *argv, const char *const *needles) {
    char cmd[512] = "";
    for (int i = 0; argv[i]; i++) {
        strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 2);
        strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
    }
    Bounded b;
    if (bounded_dino(argv, REFUSE_SECONDS, REFUSE_MB, &b) != 0) {
        CHECK(0, "dino %s: could not start build/dino", cmd);
        return;
    }
    const char *line = error_line(&b);
    int named = line[0] != 0;
    for (int i = 0; needles[i]; i++)
        if (!strstr(line, needles[i])) named = 0;
    CHECK(b.exit_code == 1 && !b.timed_out && named && !strstr(b.output, "internal error"),
          "dino %s: exit %d (signal %d, %.1f s) with one line naming the flag and value: %s", cmd,
          b.exit_code, b.signal, b.seconds, line);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

// Numbers must be whole words: `1abc` is not 1.
static void test_strict_numbers(void) {
    expect_refusal(ARGV("version", "--threads", "1abc"), ARGV("--threads", "1abc"));
    expect_refusal(ARGV("version", "--threads=2x"), ARGV("--threads", "2x"));
    expect_refusal(ARGV("version", "--threads", "99999999999"), ARGV("--threads", "99999999999"));
    expect_refusal(ARGV("train", "--epochs", "3e"), ARGV("--epochs", "3e"));
    expect_refusal(ARGV("train", "--epochs", "99999999999"), ARGV("--epochs", "99999999999"));
    expect_refusal(ARGV("train", "--lr", "0.001x"), ARGV("--lr", "0.001x"));
    expect_refusal(ARGV("knn", "--temperature", "0.07z"), ARGV("--temperature", "0.07z"));
    expect_refusal(ARGV("knn", "--temperature", "nan"), ARGV("--temperature", "nan"));
    expect_refusal(ARGV("knn", "--temperature", "1e99"), ARGV("--temperature", "1e99"));
    expect_refusal(ARGV("knn", "--nb_knn=10,2x"), ARGV("--nb_knn", "2x"));
    expect_refusal(ARGV("plot", "log.txt", "--width", " 300"), ARGV("--width", " 300"));
}

// Values far outside a flag's meaning are refused with the allowed range, not
// by an allocation that fails later.
static void test_ranges(void) {
    expect_refusal(ARGV("train", "--data_path", g_data, "--batch_size_per_gpu", "2147483647"),
                   ARGV("--batch_size_per_gpu", "2147483647", "4096"));
    expect_refusal(ARGV("train", "--data_path", g_data, "--global_crop_size", "100000"),
                   ARGV("--global_crop_size", "100000", "1024"));
    expect_refusal(ARGV("train", "--data_path", g_data, "--out_dim", "2000000000"),
                   ARGV("--out_dim", "2000000000", "262144"));
    expect_refusal(ARGV("train", "--data_path", g_data, "--num_workers", "100000"),
                   ARGV("--num_workers", "100000"));
    expect_refusal(ARGV("train", "--data_path", g_data, "--momentum_teacher", "2"),
                   ARGV("--momentum_teacher", "2"));
    expect_refusal(ARGV("train", "--data_path", g_data, "--blur_sigma", "0", "1e9"),
                   ARGV("--blur_sigma", "1e9"));
    expect_refusal(ARGV("features", "--crop", "2000"), ARGV("--crop", "2000", "1024"));
    expect_refusal(ARGV("features", "--batch_size_per_gpu", "2147483647"),
                   ARGV("--batch_size_per_gpu", "2147483647"));
    expect_refusal(ARGV("linear", "--num_labels", "2000000000"), ARGV("--num_labels", "2000000000"));
    expect_refusal(ARGV("linear", "--val_freq", "-1"), ARGV("--val_freq", "-1"));
    expect_refusal(ARGV("knn", "--num_classes", "2000000000"), ARGV("--num_classes", "2000000000"));
    expect_refusal(ARGV("knn", "--nb_knn", "10", "2000000000"), ARGV("--nb_knn", "2000000000"));
    expect_refusal(ARGV("segment-video", "--n_last_frames", "100000"), ARGV("--n_last_frames", "100000"));
    expect_refusal(ARGV("segment-video", "--topk", "0"), ARGV("--topk", "0"));
    expect_refusal(ARGV("bench", "forward", "--batch", "2147483647"), ARGV("--batch", "2147483647"));
    expect_refusal(ARGV("bench", "train", "--iters", "2147483647"), ARGV("--iters", "2147483647"));
    expect_refusal(ARGV("augment", "x.png", "--global_crop_size", "100000"),
                   ARGV("--global_crop_size", "100000"));
    expect_refusal(ARGV("version", "--threads", "100000"), ARGV("--threads", "100000"));

    // --help shows the range.
    Bounded b;
    int ran = bounded_dino(ARGV("plot", "--help"), REFUSE_SECONDS, REFUSE_MB, &b) == 0;
    CHECK(ran && b.exit_code == 0 && strstr(b.output, "image width in pixels [default: 1200; allowed 100 to 10000]"),
          "dino plot --help shows --width's range 100 to 10000");
}

// Sizes of 0, and sizes the patch grid cannot hold: the message names the
// flag that is wrong.
static void test_zero_sizes(void) {
    expect_refusal(ARGV("train", "--data_path", g_data, "--global_crop_size", "0"),
                   ARGV("--global_crop_size", "0"));
    expect_refusal(ARGV("train", "--data_path", g_data, "--local_crop_size", "0"),
                   ARGV("--local_crop_size", "0"));
    expect_refusal(ARGV("train", "--data_path", g_data, "--patch_size", "0"),
                   ARGV("--patch_size", "0"));
    expect_refusal(ARGV("train", "--data_path", "/nonexistent", "--patch_size", "16",
                        "--global_crop_size", "40"),
                   ARGV("--global_crop_size 40", "--patch_size 16"));
}

// ---------------------------------------------------------------- idempotent resume

typedef struct {
    char *bytes;  // every file's name, size and contents, in name order
    size_t n;
} Snapshot;

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static Snapshot snapshot(const char *dir) {
    Snapshot s = {NULL, 0};
    char *names[64];
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    for (int i = 0; i < n; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        size_t len = 0;
        uint8_t *data = test_read_file(p, &len);
        char head[300];
        int hn = snprintf(head, sizeof head, "%s %zu\n", names[i], len);
        s.bytes = realloc(s.bytes, s.n + hn + len);
        memcpy(s.bytes + s.n, head, hn);
        if (data) memcpy(s.bytes + s.n + hn, data, len);
        s.n += hn + len;
        free(data);
        free(names[i]);
    }
    return s;
}

static int same_snapshot(const Snapshot *a, const Snapshot *b) {
    return a->n == b->n && a->n > 0 && !memcmp(a->bytes, b->bytes, a->n);
}

// `dino train` on a tiny model: 4 iterations per epoch, 3 epochs. `stop` is
// the --stop_after_steps value or NULL.
static void train(const char *out, const char *stop, Bounded *b) {
    const char *argv[64] = {"train", "--data_path", g_data, "--output_dir", out,
                            "--patch_size", "4", "--img_size", "16", "--embed_dim", "16",
                            "--depth", "2", "--num_heads", "2", "--out_dim", "32",
                            "--head_hidden_dim", "16", "--head_bottleneck_dim", "8",
                            "--global_crop_size", "16", "--local_crop_size", "8",
                            "--local_crops_number", "2", "--batch_size_per_gpu", "8",
                            "--epochs", "3", "--warmup_epochs", "1", "--num_workers", "1",
                            "--log_every_steps", "1", "--saveckp_freq", "1"};
    int a = 0;
    while (argv[a]) a++;
    if (stop) {
        argv[a++] = "--stop_after_steps";
        argv[a++] = stop;
    }
    argv[a] = NULL;
    if (bounded_dino(argv, TRAIN_SECONDS, TRAIN_MB, b) != 0) b->exit_code = -2;
}

// The training position recorded in OUT/checkpoint.dino, from `dino info`.
static int checkpoint_step_is(const char *out, const char *want) {
    char p[600];
    snprintf(p, sizeof p, "%s/checkpoint.dino", out);
    Bounded b;
    if (bounded_dino(ARGV("info", p), REFUSE_SECONDS, REFUSE_MB, &b) != 0 || b.exit_code != 0) return 0;
    return strstr(b.output, want) != NULL;
}

static void test_rerun_is_noop(void) {
    const char *out = test_tmp_path("run");
    Bounded b;
    train(out, "6", &b);
    CHECK(b.exit_code == 0 && !b.timed_out, "tiny run stopped after 6 steps: exit %d in %.1f s: %s",
          b.exit_code, b.seconds, last_line(&b));
    Snapshot s0 = snapshot(out);
    train(out, "6", &b);
    Snapshot s1 = snapshot(out);
    CHECK(b.exit_code == 0 && !b.timed_out && strstr(b.output, "nothing to do"),
          "the same command again exits 0 saying it has nothing to do: exit %d: %s", b.exit_code,
          last_line(&b));
    CHECK(same_snapshot(&s0, &s1), "... and changes no byte of the output folder (%zu bytes before, %zu after)",
          s0.n, s1.n);
    CHECK(checkpoint_step_is(out, "global_step: 6\n"), "the checkpoint is still at global step 6");

    // Global steps: a higher stop continues from where the run is.
    train(out, "9", &b);
    Snapshot s2 = snapshot(out);
    CHECK(b.exit_code == 0 && !same_snapshot(&s1, &s2) && checkpoint_step_is(out, "global_step: 9\n"),
          "--stop_after_steps 9 continues the run to global step 9: exit %d: %s", b.exit_code,
          last_line(&b));
    train(out, "9", &b);
    Snapshot s3 = snapshot(out);
    CHECK(b.exit_code == 0 && same_snapshot(&s2, &s3), "... and again changes nothing: exit %d: %s",
          b.exit_code, last_line(&b));
    // A lower stop than the run's position also has nothing to do.
    train(out, "3", &b);
    Snapshot s4 = snapshot(out);
    CHECK(b.exit_code == 0 && same_snapshot(&s2, &s4), "--stop_after_steps 3 after step 9 changes nothing: exit %d: %s",
          b.exit_code, last_line(&b));

    // To the end, then again: all epochs done.
    train(out, NULL, &b);
    Snapshot s5 = snapshot(out);
    CHECK(b.exit_code == 0 && !same_snapshot(&s4, &s5), "the run trains to its end: exit %d: %s", b.exit_code,
          last_line(&b));
    train(out, NULL, &b);
    Snapshot s6 = snapshot(out);
    CHECK(b.exit_code == 0 && same_snapshot(&s5, &s6) && strstr(b.output, "nothing to do"),
          "a finished run run again changes no byte and says it has nothing to do: exit %d: %s",
          b.exit_code, last_line(&b));
    train(out, "6", &b);
    Snapshot s7 = snapshot(out);
    CHECK(b.exit_code == 0 && same_snapshot(&s5, &s7), "... also with a --stop_after_steps it passed: exit %d",
          b.exit_code);
    Snapshot all[] = {s0, s1, s2, s3, s4, s5, s6, s7};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i].bytes);
}

// ---------------------------------------------------------------- small front-end fixes

static void test_version_and_usage(void) {
    Bounded v, fl;
    int ran = bounded_dino(ARGV("version"), REFUSE_SECONDS, REFUSE_MB, &v) == 0 &&
              bounded_dino(ARGV("--version"), REFUSE_SECONDS, REFUSE_MB, &fl) == 0;
    CHECK(ran && v.exit_code == 0 && fl.exit_code == 0 && strstr(fl.output, "dino.c (built") &&
              !strcmp(v.output, fl.output),
          "dino --version prints what dino version prints: exit %d: %s", ran ? fl.exit_code : -1,
          ran ? bounded_first_line(&fl) : "");
    const char *usage[2][2] = {{"forward", "usage: dino bench forward [flags]\n"},
                               {"train", "usage: dino bench train [flags]\n"}};
    for (int i = 0; i < 2; i++) {
        Bounded h;
        ran = bounded_dino(ARGV("bench", usage[i][0], "--help"), REFUSE_SECONDS, REFUSE_MB, &h) == 0;
        CHECK(ran && h.exit_code == 0 && !strncmp(h.output, usage[i][1], strlen(usage[i][1])),
              "dino bench %s --help: the usage line names the command once: %s", usage[i][0],
              ran ? bounded_first_line(&h) : "");
    }
    expect_refusal(ARGV("bench", "forward", "extra"), ARGV("extra"));
}

int main(void) {
    test_tmpdir("hostile_cli");
    make_data();
    test_version_and_usage();
    test_strict_numbers();
    test_ranges();
    test_zero_sizes();
    test_rerun_is_noop();
    test_tmpdir_remove();
    return test_finish();
}
