// Hostile data inputs (docs/RELIABILITY.md, "Hostile inputs, round 2"). Every
// case runs in a child under a memory cap and a wall-clock limit
// (tests/bounded.h), each about ten times what the fixed code needs, and must
// end cleanly: a correct result, or exit status 1 with one clear line. Inputs
// are written here at test time:
// - a folder with an 89,000,000x1 PNG (87 KB) and a 100,000x1 PNG: the
//   evaluation Resize's size overflowed int or asked for 19.7 GB; now the
//   image is skipped and counted like a corrupt one; `attention
//   --image_size 224` on the wide PNG checks its limits before allocating;
// - folders holding symlinks to "." or to the root: each real folder is
//   walked once (two such links made the walk exponential);
// - a dataset without a readable image, read by two loader threads: one
//   error, returned once.
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "bounded.h"
#include "common.h"
#include "data/loader.h"
#include "engine_fill.h"  // engine_fill_params
#include "image/decode.h"
#include "io/model_io.h"
#include "model.h"
#include "testlib.h"
#include "tiny_vit.h"

// A w×h grey PNG of zeros, written row by row: a 89,000,000x1 one is 87 KB.
static void write_grey_png(const char *path, int w, int h) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    uint8_t *row = callocCheck((size_t)w, 1);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    png_init_io(png, f);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(row);
}

static void make_dir(const char *path) {
    if (mkdir(path, 0755) != 0) {
        perror(path);
        exit(2);
    }
}

// A small readable image.
static void write_good_png(const char *path) {
    uint8_t rgb[40 * 36 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    char err[256];
    if (image_write_png(path, rgb, 40, 36, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
}

static int one_line(const char *s) {
    const char *nl = strchr(s, '\n');
    return *s && (!nl || !nl[1]);
}

// ---------------------------------------------------------------- extreme aspect ratios

typedef struct {
    const char *dir;
    int crop;
} EvalLoad;

// The evaluation loader over dir: exit 0 when the one readable image comes
// back and the other one is skipped and counted.
static int eval_loader_skips(void *arg) {
    const EvalLoad *a = arg;
    char err[1024];
    Dataset *ds = dataset_open(a->dir, SPLIT_TRAIN, err, sizeof err);
    if (!ds) return printf("%s\n", err), 2;
    LoaderConfig lc;
    loader_config_default(&lc);
    lc.mode = LOADER_EVAL;
    lc.eval_crop = a->crop;
    lc.batch_size = 2;
    lc.shuffle = 0;
    lc.drop_last = 0;
    lc.threads = 1;
    Loader *l = loader_create(ds, &lc, NULL, 0);
    loader_start(l, 0, 0);
    const Batch *b = loader_next(l);
    int ok = b && b->B == 2 && b->indices[0] == 0 && b->indices[1] == 0 && loader_bad_count(l) == 1;
    printf("batch %d, indices %lld %lld, %lld skipped\n", b ? b->B : -1, b ? (long long)b->indices[0] : -1,
           b ? (long long)b->indices[1] : -1, (long long)loader_bad_count(l));
    loader_free(l);
    dataset_close(ds);
    return ok ? 0 : 1;
}

static void check_extreme_aspect(void) {
    // a_good.png sorts first: index 0 is readable, index 1 is the wide image.
    char dirs[2][512];
    snprintf(dirs[0], sizeof dirs[0], "%s", test_tmp_path("wide89m"));
    snprintf(dirs[1], sizeof dirs[1], "%s", test_tmp_path("wide100k"));
    const int widths[2] = {89000000, 100000};
    for (int k = 0; k < 2; k++) {
        make_dir(dirs[k]);
        char p[1100];
        snprintf(p, sizeof p, "%s/a_good.png", dirs[k]);
        write_good_png(p);
        snprintf(p, sizeof p, "%s/b_wide.png", dirs[k]);
        write_grey_png(p, widths[k], 1);
        EvalLoad a = {dirs[k], 224};
        Bounded r;
        // The 89M-pixel image itself decodes to 267 MB; the resize would need 19.7 GB
        // (100,000x1) or overflowed int (89,000,000x1).
        int ran = bounded_call(eval_loader_skips, &a, 30, 1200, &r);
        CHECK(ran == 0 && r.exit_code == 0 && r.seconds < 30,
              "a %dx1 PNG at crop 224 is skipped and counted (%.1f s): %s", widths[k], r.seconds,
              bounded_first_line(&r));
    }
}

// `dino features` and `dino attention` on the wide images, through the binary.
static void check_extreme_aspect_cli(const char *model) {
    for (int k = 0; k < 2; k++) {
        char dir[600], out[600];
        snprintf(dir, sizeof dir, "%s", test_tmp_path(k ? "wide100k" : "wide89m"));
        snprintf(out, sizeof out, "%s", test_tmp_path("feat"));
        const char *argv[] = {"features", "--pretrained_weights", model, "--data_path", dir, "--crop", "224",
                              "--batch_size_per_gpu", "2", "--output_dir", out, NULL};
        Bounded r;
        int ran = bounded_dino(argv, 30, 1500, &r);
        CHECK(ran == 0 && r.exit_code == 1 && !r.timed_out &&
                  strstr(r.output, "b_wide.png") && strstr(r.output, "above the limit") &&
                  strstr(r.output, "1 unreadable image") && !strstr(r.output, "internal error"),
              "features --crop 224 on a folder with a %s PNG: the image is named, skipped and counted "
              "(exit %d, %.1f s): %s", k ? "100,000x1" : "89,000,000x1", r.exit_code, r.seconds, r.output);
    }
    char img[600], att[600];
    snprintf(img, sizeof img, "%s/b_wide.png", test_tmp_path("wide100k"));
    snprintf(att, sizeof att, "%s", test_tmp_path("att"));
    const char *argv[] = {"attention", img, "--pretrained_weights", model, "--image_size", "224",
                          "--out", att, NULL};
    Bounded r;
    int ran = bounded_dino(argv, 20, 512, &r);
    CHECK(ran == 0 && r.exit_code == 1 && one_line(r.output) &&
              strstr(r.output, "--image_size 224") && strstr(r.output, "above the limit"),
          "attention --image_size 224 on a 100,000x1 PNG: one line before any big allocation "
          "(exit %d, %.1f s): %s", r.exit_code, r.seconds, r.output);
    // the augment preview shows a panorama squeezed instead of a 20 GB canvas
    char png[600];
    snprintf(png, sizeof png, "%s", test_tmp_path("aug.png"));
    const char *aug[] = {"augment", img, "--out", png, NULL};
    ran = bounded_dino(aug, 20, 512, &r);
    CHECK(ran == 0 && r.exit_code == 0 && !r.timed_out && access(png, F_OK) == 0,
          "augment on a 100,000x1 PNG: the preview is written within 512 MB (exit %d, %.1f s)", r.exit_code,
          r.seconds);
}

// ---------------------------------------------------------------- symlinked folders

typedef struct {
    const char *dir;
    int64_t want_n;
    int want_classes;
} OpenCount;

static int open_and_count(void *arg) {
    const OpenCount *a = arg;
    char err[1024];
    Dataset *ds = dataset_open(a->dir, SPLIT_TRAIN, err, sizeof err);
    if (!ds) return printf("%s\n", err), 2;
    printf("%s\n", dataset_describe(ds));
    int ok = dataset_size(ds) == a->want_n && dataset_num_classes(ds) == a->want_classes;
    dataset_close(ds);
    return ok ? 0 : 1;
}

static void link_or_die(const char *target, const char *path) {
    if (symlink(target, path) != 0) {
        perror(path);
        exit(2);
    }
}

static void check_symlink_loops(void) {
    char p[600];
    // One symlink to ".": the image was counted 41 times; two made the walk
    // branch twice per level down to depth 64.
    for (int links = 1; links <= 2; links++) {
        const char *dir = test_tmp_path(links == 1 ? "loop1" : "loop2");
        make_dir(dir);
        snprintf(p, sizeof p, "%s/img.png", dir);
        write_good_png(p);
        for (int k = 0; k < links; k++) {
            snprintf(p, sizeof p, "%s/self%d", dir, k);
            link_or_die(".", p);
        }
        OpenCount a = {dir, 1, 0};
        Bounded r;
        int ran = bounded_call(open_and_count, &a, 5, 256, &r);
        CHECK(ran == 0 && r.exit_code == 0 && r.seconds < 5,
              "a folder with %d symlink(s) to '.': one image, listed once (%.2f s): %s", links, r.seconds,
              bounded_first_line(&r));
    }
    // ImageFolder: class a holds two links back to the root, class c is a link
    // to class a. Each real folder is walked once per class: a and b hold
    // their own image, c lists a's as ImageFolder does.
    const char *root = test_tmp_path("loopcls");
    make_dir(root);
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/%c", root, 'a' + c);
        make_dir(p);
        snprintf(p, sizeof p, "%s/%c/img.png", root, 'a' + c);
        write_good_png(p);
    }
    snprintf(p, sizeof p, "%s/a/up", root);
    link_or_die("..", p);
    snprintf(p, sizeof p, "%s/a/up2", root);
    link_or_die("..", p);
    snprintf(p, sizeof p, "%s/c", root);
    link_or_die("a", p);
    OpenCount a = {root, 3, 3};
    Bounded r;
    int ran = bounded_call(open_and_count, &a, 5, 256, &r);
    CHECK(ran == 0 && r.exit_code == 0 && r.seconds < 5,
          "class folders linking back to the root or to another class: 3 images, 3 classes (%.2f s): %s", r.seconds,
          bounded_first_line(&r));
}

// ---------------------------------------------------------------- loader errors

// Two loader threads over a dataset without one readable image: loader_next
// ends, and the error is returned once (the library prints nothing itself).
static int all_bad_two_threads(void *arg) {
    const char *dir = arg;
    char err[1024];
    Dataset *ds = dataset_open(dir, SPLIT_TRAIN, err, sizeof err);
    if (!ds) return printf("%s\n", err), 2;
    LoaderConfig lc;
    loader_config_default(&lc);
    lc.mode = LOADER_EVAL;
    lc.eval_crop = 32;
    lc.batch_size = 4;
    lc.threads = 2;
    lc.max_warnings = 0;
    Loader *l = loader_create(ds, &lc, NULL, 0);
    loader_start(l, 0, 0);
    const Batch *b = loader_next(l);
    const char *why = loader_error(l);
    int ok = !b && why && strstr(why, "no readable image") && !loader_next(l);
    printf("%s\n", why ? why : "(no error)");
    loader_free(l);
    dataset_close(ds);
    return ok ? 0 : 1;
}

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++) n++;
    return n;
}

static void check_all_bad_threads(void) {
    const char *dir = test_tmp_path("allbad");
    make_dir(dir);
    char p[600];
    for (int k = 0; k < 8; k++) {
        snprintf(p, sizeof p, "%s/bad%d.png", dir, k);
        test_write_file(p, "not a png", 9);
    }
    for (int rep = 0; rep < 5; rep++) {
        Bounded r;
        int ran = bounded_call(all_bad_two_threads, (void *)dir, 10, 512, &r);
        CHECK(ran == 0 && r.exit_code == 0 &&
                  count_of(r.output, "no readable image") == 1,
              "no readable image, two loader threads (try %d): one error returned once: %s", rep,
              r.output);
    }
}

// `dino train` on it with two loader workers: the error printed once, exit 1.
static void check_all_bad_train_cli(void) {
    char data[600], out[600];
    snprintf(data, sizeof data, "%s", test_tmp_path("allbad"));
    snprintf(out, sizeof out, "%s", test_tmp_path("train_out"));
    const char *argv[] = {"train", "--data_path", data, "--output_dir", out, "--arch", "vit_tiny",
                          "--global_crop_size", "32", "--local_crop_size", "16", "--out_dim", "256",
                          "--batch_size_per_gpu", "2", "--num_workers", "2", "--epochs", "1",
                          "--warmup_epochs", "0", "--threads", "1", NULL};
    Bounded r;
    int ran = bounded_dino(argv, 30, 2048, &r);
    const char *last = strstr(r.output, "error: ");
    CHECK(ran == 0 && r.exit_code == 1 && count_of(r.output, "no readable image") == 1 && last &&
              one_line(last),
          "train, no readable image, two workers: one error line, exit 1 (exit %d, %.1f s): %s",
          r.exit_code, r.seconds, r.output);
}

// ---------------------------------------------------------------- gzip bombs

// One gzip member holding n bytes of p (gzread reads concatenated members as
// one stream, so a member of zeros written k times is a cheap bomb).
static uint8_t *gz_member(const void *p, size_t n, size_t *len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)n);
    uint8_t *out = mallocCheck(cap);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

// path: a gzip stream of head (n bytes) followed by zero_mb MiB of zeros.
static void write_gz_bomb(const char *path, const void *head, size_t n, int zero_mb) {
    size_t hl, zl;
    uint8_t *h = gz_member(head, n, &hl);
    uint8_t *zeros = callocCheck(16 << 20, 1);
    uint8_t *z = gz_member(zeros, 16 << 20, &zl);
    FILE *f = fopen(path, "wb");
    fwrite(h, 1, hl, f);
    for (int k = 0; k < zero_mb / 16; k++) fwrite(z, 1, zl, f);
    fclose(f);
    free(h);
    free(zeros);
    free(z);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void check_gz_bombs(void) {
    // IDX: headers for 4 images of 28x28 and their labels, then 304 MiB of
    // zeros each; read under a 256 MB cap, only the declared bytes are read.
    const char *dir = test_tmp_path("idxbomb");
    make_dir(dir);
    char p[600];
    uint8_t img[16 + 4 * 784], lab[8 + 4];
    memset(img, 0, sizeof img);
    put_be32(img, 0x803), put_be32(img + 4, 4), put_be32(img + 8, 28), put_be32(img + 12, 28);
    put_be32(lab, 0x801), put_be32(lab + 4, 4);
    for (int k = 0; k < 4; k++) lab[8 + k] = (uint8_t)(k + 5);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_gz_bomb(p, img, sizeof img, 304);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    write_gz_bomb(p, lab, sizeof lab, 304);
    OpenCount a = {dir, 4, 9};
    Bounded r;
    int ran = bounded_call(open_and_count, &a, 10, 256, &r);
    CHECK(ran == 0 && r.exit_code == 0 && r.seconds < 10,
          "IDX images and labels each followed by 304 MiB of zeros (gzip): 4 images read under 256 MB "
          "(%.2f s): %s", r.seconds, bounded_first_line(&r));

    // CIFAR-10: a gzipped data_batch_1.bin of zeros one record longer than
    // CIFAR_MAX_RECORDS is refused (it used to be read whatever its size).
    const char *cdir = test_tmp_path("cifarbomb");
    make_dir(cdir);
    uint8_t rec[3073] = {0};
    for (int k = 1; k <= 5; k++) {
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", cdir, k);
        test_write_file(p, rec, sizeof rec);
    }
    snprintf(p, sizeof p, "%s/data_batch_1.bin", cdir);
    write_gz_bomb(p, rec, sizeof rec, 304);  // 1 + 103,770 records
    OpenCount c = {cdir, 0, 0};
    ran = bounded_call(open_and_count, &c, 20, 1024, &r);
    CHECK(ran == 0 && r.exit_code == 2 && strstr(r.output, "data_batch_1.bin: holds more than 100000"),
          "a gzipped CIFAR batch of 103,771 records: refused at the record limit (%.2f s): %s", r.seconds,
          bounded_first_line(&r));
}

// ---------------------------------------------------------------- list and IDX files

typedef struct {
    const char *path;
    const char *want;  // in the error
} OpenRefused;

static int open_refused(void *arg) {
    const OpenRefused *a = arg;
    char err[1024] = "";
    Dataset *ds = dataset_open(a->path, SPLIT_TRAIN, err, sizeof err);
    printf("%s\n", ds ? dataset_describe(ds) : err);
    dataset_close(ds);
    return !ds && strstr(err, a->want) ? 0 : 1;
}

static void expect_refused(const char *path, const char *want, const char *what) {
    OpenRefused a = {path, want};
    Bounded r;
    int ran = bounded_call(open_refused, &a, 5, 256, &r);
    CHECK(ran == 0 && r.exit_code == 0 && r.seconds < 5, "%s: refused (%.2f s): %s", what, r.seconds,
          bounded_first_line(&r));
}

// A list file: "a.png\n", then `line` (len bytes), then "b.png\n".
static const char *write_list(const char *name, const char *line, size_t len) {
    const char *path = test_tmp_path(name);
    FILE *f = fopen(path, "wb");
    fputs("a.png\n", f);
    fwrite(line, 1, len, f);
    fputs("\nb.png\n", f);
    fclose(f);
    return path;
}

static void check_list_lines(void) {
    size_t big = 10u << 20;
    char *line = mallocCheck(big);
    memset(line, 'x', big);
    // 10 MB on one line: it used to become 1,281 images.
    expect_refused(write_list("list_10mb.txt", line, big), "list_10mb.txt: line 2 is longer than 8191 characters",
                   "a list with a 10 MB line");
    // 9,000 characters and a label: fgets split it and blamed the labels.
    memcpy(line + 8990, " 3", 2);
    expect_refused(write_list("list_9000.txt", line, 8992), "line 2 is longer than 8191 characters",
                   "a list with a 9,000-character labelled line");
    // A NUL byte on line 2, not elsewhere.
    expect_refused(write_list("list_nul.txt", "c.p\0ng", 7), "line 2 holds a NUL byte (at character 4)",
                   "a list with a NUL byte");
    // 8,191 characters: read whole, as before.
    OpenCount a = {write_list("list_8191.txt", line, 8191), 3, 0};
    Bounded r;
    int ran = bounded_call(open_and_count, &a, 5, 256, &r);
    CHECK(ran == 0 && r.exit_code == 0, "a list with an 8,191-character line: 3 images: %s",
          bounded_first_line(&r));
    free(line);
}

static void check_idx_magic(void) {
    uint8_t hdr[16 + 4] = {0, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2};
    const char *named = test_tmp_path("train-images-idx3-ubyte");
    test_write_file(named, hdr, sizeof hdr);
    expect_refused(named, "not an IDX file: its magic is 00 00 0d 03", "an IDX-named file with magic 00 00 0d 03");
    hdr[2] = 0x09;
    const char *plain = test_tmp_path("digits.bin");
    test_write_file(plain, hdr, sizeof hdr);
    expect_refused(plain, "not an IDX file: its magic is 00 00 09 03", "a file starting with IDX-like zeros");
}

// ---------------------------------------------------------------- main

static void save_tiny_model(const char *path) {
    ViTConfig vc = tiny_vit_config();
    DinoModel m;
    model_build(&m, &vc, NULL, 0);
    float *params = mallocCheck(m.table.total * sizeof(float));
    engine_fill_params(&m.table, params);
    char err[512] = "";
    int rc = model_save(path, &m, params, err, sizeof err);
    CHECK(rc == 0, "tiny model saved (%s)", err);
    free(params);
    model_free(&m);
}

int main(void) {
    test_tmpdir("hostile_data");
    // Library cases first: bounded_call forks, before any OpenMP region runs here.
    check_symlink_loops();
    check_all_bad_threads();
    check_gz_bombs();
    check_list_lines();
    check_idx_magic();
    check_extreme_aspect();
    char model[600];
    snprintf(model, sizeof model, "%s", test_tmp_path("tiny.dino"));
    save_tiny_model(model);
    check_extreme_aspect_cli(model);
    check_all_bad_train_cli();
    test_tmpdir_remove();
    return test_finish();
}
