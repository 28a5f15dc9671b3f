// The entry points that dino.c's fuzzers drive, shared by the libFuzzer
// targets (fuzz/fuzz_<reader>.c, built by `make fuzz`) and by the normal-build
// regression test (tests/test_regressions.c), so that a crashing input found
// by a fuzzer is replayed through exactly the same code. Each entry takes the
// raw bytes of one untrusted input, hands them to a reader the way dino.c
// does (as a file on disk where the reader takes a path), touches everything
// the reader returns (so ASan sees a bad pointer or length), and checks the
// reader's contract: success gives a usable object, failure gives a non-empty
// one-sentence error. A broken contract aborts (the fuzzer reports it as a
// crash). Each entry returns 1 when the input was accepted, 0 when refused.
#ifndef DINO_FUZZ_ENTRIES_H
#define DINO_FUZZ_ENTRIES_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "image/decode.h"

// Every helper is static (one copy per binary) and may go unused there.
#define FUZZ_FN static __attribute__((unused))

// Aborts with a message: the fuzzer records the input as a crash.
#define FUZZ_REQUIRE(cond, ...)                                      \
    do {                                                             \
        if (!(cond)) {                                               \
            fprintf(stderr, "fuzz contract broken at %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                            \
            fputc('\n', stderr);                                     \
            abort();                                                 \
        }                                                            \
    } while (0)

// ---------------------------------------------------------------- scratch files

// One scratch folder per process (removed at exit), so parallel fuzzers and
// tests never share files.
static char fuzz_dir_path[256];

FUZZ_FN void fuzz_dir_clean(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            fuzz_dir_clean(p);
            rmdir(p);
        } else {
            unlink(p);
        }
    }
    closedir(dp);
}

FUZZ_FN void fuzz_dir_remove(void) {
    if (!fuzz_dir_path[0]) return;
    fuzz_dir_clean(fuzz_dir_path);
    rmdir(fuzz_dir_path);
}

FUZZ_FN const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/dino_fuzz_XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

// Writes bytes to <scratch>/<name> (replacing it); returns the path (static).
FUZZ_FN const char *fuzz_put(const char *name, const uint8_t *d, size_t n) {
    static char path[8][512];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 512, "%s/%s", fuzz_dir(), name);
    char slashless[512];
    snprintf(slashless, sizeof slashless, "%s", p);
    char *sl = strrchr(slashless, '/');
    if (sl) {
        *sl = 0;
        mkdir(slashless, 0700);
    }
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f) != 0) {
        perror("fuzz: cannot write a scratch file");
        abort();
    }
    return p;
}

FUZZ_FN void fuzz_reset(void) { fuzz_dir_clean(fuzz_dir()); }

// Sums every byte so that ASan checks the whole range.
FUZZ_FN unsigned fuzz_touch(const void *p, size_t n) {
    const volatile uint8_t *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    return s;
}

FUZZ_FN void fuzz_check_err(const char *err) {
    FUZZ_REQUIRE(err[0] != 0, "a refusal with an empty error message");
    FUZZ_REQUIRE(strlen(err) < 1024, "an error message that filled the buffer");
}

// ---------------------------------------------------------------- images

// JPEG / PNG through image_decode_file, the function dataset_load calls for
// file-based datasets: once at full size and once with DCT-domain scaling.
FUZZ_FN int fuzz_entry_image(const uint8_t *d, size_t n) {
    fuzz_reset();
    const char *path = fuzz_put("img", d, n);
    int accepted = 0;
    const int sides[2] = {0, 7};
    for (int k = 0; k < 2; k++) {
        Image im = {0};
        char err[1024] = "";
        if (image_decode_file(path, sides[k], &im, err, sizeof err) == 0) {
            FUZZ_REQUIRE(im.w > 0 && im.h > 0 && im.rgb, "decoded image without pixels");
            FUZZ_REQUIRE((long long)im.w * im.h <= IMAGE_MAX_PIXELS, "image above the pixel limit");
            fuzz_touch(im.rgb, (size_t)im.w * im.h * 3);
            accepted = 1;
        } else {
            FUZZ_REQUIRE(!im.rgb, "failed decode left pixels behind");
            fuzz_check_err(err);
        }
        image_free(&im);
    }
    return accepted;
}

// ---------------------------------------------------------------- datasets

// Opens a dataset, reads its description and labels and decodes the first,
// a middle and the last image (all of them when there are few).
FUZZ_FN int fuzz_dataset_walk(const char *path, Split split) {
    char err[1024] = "";
    Dataset *ds = dataset_open(path, split, err, sizeof err);
    if (!ds) {
        fuzz_check_err(err);
        return 0;
    }
    int64_t n = dataset_size(ds);
    FUZZ_REQUIRE(n > 0, "an open dataset with %lld images", (long long)n);
    int nc = dataset_num_classes(ds);
    FUZZ_REQUIRE(nc >= 0, "negative class count");
    FUZZ_REQUIRE(strlen(dataset_describe(ds)) > 0, "empty description");
    for (int64_t i = 0; i < n; i++) {
        int32_t lab = dataset_label(ds, i);
        FUZZ_REQUIRE(lab >= -1 && (nc == 0 ? lab == -1 : lab < nc), "label %d outside %d classes",
                     (int)lab, nc);
    }
    int64_t pick[3] = {0, n / 2, n - 1};
    for (int k = 0; k < 3; k++) {
        Image im = {0};
        char e2[1024] = "";
        if (dataset_load(ds, pick[k], 0, &im, e2, sizeof e2) == 0) {
            FUZZ_REQUIRE(im.w > 0 && im.h > 0 && im.rgb, "loaded image without pixels");
            fuzz_touch(im.rgb, (size_t)im.w * im.h * 3);
        } else {
            fuzz_check_err(e2);
        }
        image_free(&im);
    }
    Image im = {0};
    char e3[1024] = "";
    FUZZ_REQUIRE(dataset_load(ds, n, 0, &im, e3, sizeof e3) != 0, "loaded an image past the end");
    dataset_close(ds);
    return 1;
}

// IDX: the input is split into an images file and a labels file (the first
// byte b says where: the images file gets rest·b/255 bytes; no labels file
// when nothing is left for it), laid out as an MNIST folder; both the folder
// and the images file are opened.
FUZZ_FN int fuzz_entry_idx(const uint8_t *d, size_t n) {
    fuzz_reset();
    if (n < 1) return 0;
    size_t rest = n - 1, cut = rest * (size_t)d[0] / 255;
    const uint8_t *img = d + 1, *lab = d + 1 + cut;
    fuzz_put("mnist/train-images-idx3-ubyte", img, cut);
    if (rest > cut) fuzz_put("mnist/train-labels-idx1-ubyte", lab, rest - cut);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/mnist", fuzz_dir());
    int a = fuzz_dataset_walk(dir, SPLIT_TRAIN);
    char file[600];
    snprintf(file, sizeof file, "%s/train-images-idx3-ubyte", dir);
    int b = fuzz_dataset_walk(file, SPLIT_TRAIN);
    return a | b;
}

// CIFAR: the first byte picks CIFAR-10 or CIFAR-100; the rest is every batch
// file of the folder (train and test), opened for both splits.
FUZZ_FN int fuzz_entry_cifar(const uint8_t *d, size_t n) {
    fuzz_reset();
    if (n < 1) return 0;
    int c100 = d[0] & 1;
    const char *names10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                             "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    const char *names100[] = {"train.bin", "test.bin"};
    char name[128];
    int nf = c100 ? 2 : 6;
    for (int k = 0; k < nf; k++) {
        snprintf(name, sizeof name, "cifar/%s", c100 ? names100[k] : names10[k]);
        fuzz_put(name, d + 1, n - 1);
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s/cifar", fuzz_dir());
    int a = fuzz_dataset_walk(dir, SPLIT_TRAIN);
    int b = fuzz_dataset_walk(dir, SPLIT_TEST);
    return a | b;
}

// List files: the input is the list itself, next to a real image (a.png) it
// may name; a line naming anything else fails to decode.
// Absolute paths are neutralised (the harness must not read arbitrary files
// of the machine: /dev/zero would never end).
FUZZ_FN int fuzz_entry_list(const uint8_t *d, size_t n) {
    fuzz_reset();
    static const uint8_t png1x1[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90,
        0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8,
        0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00,
        0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
    fuzz_put("list/a.png", png1x1, sizeof png1x1);
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, d, n);
    for (size_t i = 0; i < n; i++)
        if (copy[i] == '/' || copy[i] == '.') copy[i] = '_';  // stay inside the folder
    // ... except the two names of the real images, which we restore.
    for (size_t i = 0; i + 5 <= n; i++)
        if (!memcmp(d + i, "a.png", 5)) memcpy(copy + i, "a.png", 5);
    const char *path = fuzz_put("list/list.txt", copy, n);
    free(copy);
    return fuzz_dataset_walk(path, SPLIT_TRAIN);
}

// ---------------------------------------------------------------- model files (src/io)

#if __has_include("io/xxh64.h")
#define FUZZ_HAVE_IO 1
#include "io/checkpoint.h"
#include "io/model_io.h"
#include "io/pickle.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "io/xxh64.h"

// Native files carry an XXH64 of everything before it, so random mutations
// stop at the checksum. The entry opens the bytes as they are and then a
// "forged" copy: data_len set to fit the file (when data_offset allows) and
// the checksum recomputed, which lets the fuzzer reach the table and tensor
// checks that only someone forging a checksum could reach.
FUZZ_FN size_t fuzz_native_forge(const uint8_t *d, size_t n, uint8_t **out) {
    *out = NULL;
    if (n < 72 || memcmp(d, "DINOCKPT", 8) != 0) return 0;
    uint8_t *b = malloc(n);
    memcpy(b, d, n);
    uint64_t data_offset;
    memcpy(&data_offset, b + 32, 8);
    if (data_offset <= n - 8) {
        uint64_t data_len = n - 8 - data_offset;
        memcpy(b + 40, &data_len, 8);
    }
    uint64_t h = xxh64(b, n - 8, 0);
    memcpy(b + n - 8, &h, 8);
    *out = b;
    return n;
}

FUZZ_FN int fuzz_ckpt_walk(const char *path) {
    char err[1024] = "";
    Ckpt *c = ckpt_open(path, err, sizeof err);
    if (!c) {
        fuzz_check_err(err);
        return 0;
    }
    for (int i = 0; i < ckpt_n_meta(c); i++) {
        const char *k = NULL, *v = NULL;
        ckpt_meta_at(c, i, &k, &v);
        FUZZ_REQUIRE(k && v, "metadata entry %d without key or value", i);
        fuzz_touch(k, strlen(k));
        fuzz_touch(v, strlen(v));
        FUZZ_REQUIRE(ckpt_meta(c, k) != NULL, "metadata key not found by name");
    }
    for (int i = 0; i < ckpt_n_tensors(c); i++) {
        const CkptTensor *t = ckpt_tensor_at(c, i);
        FUZZ_REQUIRE(t && t->ndim >= 0 && t->ndim <= 8, "tensor %d: bad ndim", i);
        FUZZ_REQUIRE(memchr(t->name, 0, sizeof t->name) != NULL, "unterminated tensor name");
        size_t es = t->dtype == DT_F32 || t->dtype == DT_I32 ? 4 : t->dtype == DT_I64 ? 8 : t->dtype == DT_U8 ? 1 : 2;
        size_t numel = 1;
        for (int k = 0; k < t->ndim; k++) {
            FUZZ_REQUIRE(t->shape[k] >= 0, "negative dimension");
            numel *= (size_t)t->shape[k];
        }
        FUZZ_REQUIRE(numel == t->numel, "numel %zu does not match the shape (%zu)", t->numel, numel);
        if (t->numel) fuzz_touch(t->data, t->numel * es);
        FUZZ_REQUIRE(ckpt_tensor(c, t->name) != NULL, "tensor not found by its name");
    }
    ckpt_close(c);
    return 1;
}

// The native reader: ckpt_open on the bytes, then on the forged copy.
FUZZ_FN int fuzz_entry_checkpoint(const uint8_t *d, size_t n) {
    fuzz_reset();
    int acc = fuzz_ckpt_walk(fuzz_put("m.dino", d, n));
    uint8_t *forged;
    if (fuzz_native_forge(d, n, &forged)) {
        acc |= fuzz_ckpt_walk(fuzz_put("forged.dino", forged, n));
        free(forged);
    }
    return acc;
}

FUZZ_FN int fuzz_entry_safetensors(const uint8_t *d, size_t n) {
    fuzz_reset();
    const char *path = fuzz_put("m.safetensors", d, n);
    char err[1024] = "";
    SafeFile *f = safetensors_open(path, err, sizeof err);
    if (!f) {
        fuzz_check_err(err);
        return 0;
    }
    for (int i = 0; i < f->n_meta; i++) {
        fuzz_touch(f->meta_key[i], strlen(f->meta_key[i]));
        fuzz_touch(f->meta_value[i], strlen(f->meta_value[i]));
        FUZZ_REQUIRE(safetensors_meta(f, f->meta_key[i]) != NULL, "metadata key not found");
    }
    for (int i = 0; i < f->n; i++) {
        const SafeTensor *t = &f->t[i];
        FUZZ_REQUIRE(t->end >= t->begin && f->data_start + t->end <= f->file_size,
                     "tensor %d outside the file", i);
        FUZZ_REQUIRE(safetensors_find(f, t->name) == t, "tensor not found by its name");
        if (t->numel > (1u << 22)) continue;
        float *out = malloc((t->numel ? t->numel : 1) * sizeof(float));
        char e2[1024] = "";
        if (safetensors_read_f32(f, t, out, e2, sizeof e2) == 0) fuzz_touch(out, t->numel * 4);
        else fuzz_check_err(e2);
        free(out);
    }
    safetensors_close(f);
    return 1;
}

// Walks an unpickled tree and reads its tensors. The memo lets a pickle
// share one value many times, so the tree is a DAG that can expand
// exponentially: the walk is bounded in depth and in visits (the readers
// themselves never walk a whole tree; pickle_repr stops at depth 6 and at
// its buffer's end).
FUZZ_FN void fuzz_pickle_walk(const PickleValue *v, int depth, PthFile *pf, long *budget) {
    if (!v || depth > 200 || --*budget < 0) return;
    if (v->s) fuzz_touch(v->s, v->len);
    if (v->type == PV_TENSOR) {
        FUZZ_REQUIRE(v->ndim >= 0 && v->ndim <= 8 && v->storage, "tensor without storage");
        if (pf) {
            size_t numel = pth_tensor_numel(v);
            if (numel <= (1u << 22)) {
                float *out = malloc((numel ? numel : 1) * sizeof(float));
                char err[1024] = "";
                if (pth_tensor_read_f32(pf, v, out, err, sizeof err) == 0) fuzz_touch(out, numel * 4);
                else fuzz_check_err(err);
                free(out);
                *budget -= (long)(numel / 256);  // shared tensors are read once per visit
            }
        }
    }
    // items holds n values; a dict's are key, value, key, value (n = 2·pairs).
    if (v->type == PV_TUPLE || v->type == PV_LIST || v->type == PV_DICT) {
        FUZZ_REQUIRE(v->type != PV_DICT || v->n % 2 == 0, "a dict with %zu items", v->n);
        for (size_t i = 0; i < v->n; i++) fuzz_pickle_walk(v->items[i], depth + 1, pf, budget);
    }
    if (v->state) fuzz_pickle_walk(v->state, depth + 1, pf, budget);
}

// The pickle machine alone (data.pkl of a .pth), fed the raw bytes.
FUZZ_FN int fuzz_entry_pickle(const uint8_t *d, size_t n) {
    char err[1024] = "";
    PickleDoc *doc = pickle_parse(d, n, "data.pkl", err, sizeof err);
    if (!doc) {
        fuzz_check_err(err);
        return 0;
    }
    const PickleValue *root = pickle_root(doc);
    FUZZ_REQUIRE(root != NULL, "a parsed pickle without a root");
    long budget = 100000;
    fuzz_pickle_walk(root, 0, NULL, &budget);
    char repr[256];
    pickle_repr(root, repr, sizeof repr);
    FUZZ_REQUIRE(memchr(repr, 0, sizeof repr) != NULL, "unterminated repr");
    pickle_dict_get(root, "model");
    pickle_attr(root, "arch");
    pickle_free(doc);
    return 1;
}

// A whole .pth (zip + pickle + storages) through pth_open.
FUZZ_FN int fuzz_entry_pth(const uint8_t *d, size_t n) {
    fuzz_reset();
    const char *path = fuzz_put("m.pth", d, n);
    char err[1024] = "";
    PthFile *f = pth_open(path, err, sizeof err);
    if (!f) {
        fuzz_check_err(err);
        return 0;
    }
    long budget = 100000;
    fuzz_pickle_walk(pth_root(f), 0, f, &budget);
    pth_release_storages(f);
    pth_close(f);
    return 1;
}

// model_load, which every command that takes --pretrained_weights runs on a
// file of any format (native, .pth, safetensors), and `dino info`'s
// model_describe; native inputs are also forged as in fuzz_entry_checkpoint.
FUZZ_FN int fuzz_model_one(const char *path) {
    DinoModel m;
    float *params = NULL;
    char err[1024] = "";
    ModelLoadOptions opt = {0};
    int acc = 0;
    if (model_load(path, &opt, &m, &params, err, sizeof err) == 0) {
        FUZZ_REQUIRE(params != NULL, "a loaded model without parameters");
        fuzz_touch(params, m.table.total * sizeof(float));
        free(params);
        model_free(&m);
        acc = 1;
    } else {
        FUZZ_REQUIRE(params == NULL, "a failed load left a parameter buffer");
        fuzz_check_err(err);
    }
    FILE *devnull = fopen("/dev/null", "w");
    char e2[1024] = "";
    if (model_describe(path, &opt, devnull, 1, e2, sizeof e2) != 0) fuzz_check_err(e2);
    fclose(devnull);
    return acc;
}

FUZZ_FN int fuzz_entry_model(const uint8_t *d, size_t n) {
    fuzz_reset();
    int acc = fuzz_model_one(fuzz_put("m.bin", d, n));
    uint8_t *forged;
    if (fuzz_native_forge(d, n, &forged)) {
        acc |= fuzz_model_one(fuzz_put("forged.dino", forged, n));
        free(forged);
    }
    return acc;
}
#endif

// ---------------------------------------------------------------- evaluation inputs (src/eval)

#if __has_include("eval/npy.h")
#define FUZZ_HAVE_NPY 1
#include "eval/npy.h"

// .npy features and labels (dino knn / linear read them).
FUZZ_FN int fuzz_entry_npy(const uint8_t *d, size_t n) {
    fuzz_reset();
    const char *path = fuzz_put("a.npy", d, n);
    int acc = 0;
    NpyInfo info;
    char err[1024] = "";
    float *f = npy_read_f32(path, &info, err, sizeof err);
    if (f) {
        FUZZ_REQUIRE(info.ndim >= 0 && info.ndim <= NPY_MAX_DIMS, "bad ndim");
        fuzz_touch(f, info.numel * sizeof(float));
        free(f);
        acc = 1;
    } else {
        fuzz_check_err(err);
    }
    char e2[1024] = "";
    int64_t *l = npy_read_i64(path, &info, e2, sizeof e2);
    if (l) {
        fuzz_touch(l, info.numel * sizeof(int64_t));
        free(l);
        acc = 1;
    } else {
        fuzz_check_err(e2);
    }
    return acc;
}
#endif

#if __has_include("eval/plot.h")
#define FUZZ_HAVE_PLOT 1
#include "eval/plot.h"

// The log reader behind `dino plot`; an input starting with '#' (a line the
// reader skips) is also drawn, small, so PLplot sees the parsed values too.
FUZZ_FN int fuzz_entry_plot(const uint8_t *d, size_t n) {
    fuzz_reset();
    const char *path = fuzz_put("log.txt", d, n);
    PlotLog log;
    char err[1024] = "";
    if (plot_log_read(path, &log, err, sizeof err) != 0) {
        fuzz_check_err(err);
        return 0;
    }
    FUZZ_REQUIRE(log.n_series >= 0 && log.n_series <= PLOT_MAX_SERIES, "%d series", log.n_series);
    for (int i = 0; i < log.n_series; i++) {
        const PlotSeries *s = &log.s[i];
        FUZZ_REQUIRE(s->n >= 0 && s->n <= s->cap, "series %d: n %d cap %d", i, s->n, s->cap);
        fuzz_touch(s->x, s->n * sizeof(double));
        fuzz_touch(s->y, s->n * sizeof(double));
        FUZZ_REQUIRE(plot_log_series(&log, s->name) == s, "series not found by its name");
    }
    if (n > 0 && d[0] == '#') {
        char e2[1024] = "", png[600];
        snprintf(png, sizeof png, "%s/curves.png", fuzz_dir());
        if (plot_curves(&log, png, 160, 120, "fuzz", e2, sizeof e2) < 0) fuzz_check_err(e2);
    }
    plot_log_free(&log);
    return 1;
}
#endif

// ---------------------------------------------------------------- flags

#ifdef DINO_CLI_ARGS_H
// The flag parser: the input is split at NUL bytes into argv[1..] (at most 64
// words) and parsed against a table holding every flag type. A bad flag ends
// in dino_die (exit 1): the fuzz target links with -Wl,--wrap=dino_die and
// jumps back instead (fuzz_main.h); the regression test runs each input in a
// forked child and checks that it exits 0 or 1. --help (print, exit 0) is
// answered by printing the help to /dev/null without calling args_parse.
FUZZ_FN int fuzz_entry_args(const uint8_t *d, size_t n) {
    static char buf[4096 + 1];
    if (n > 4096) n = 4096;
    memcpy(buf, d, n);
    buf[n] = 0;
    char *argv[66];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (size_t i = 0; i < n && argc < 65;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    int i_val = 7, b_val = 0;
    float f_val = 0.5f;
    const char *s_val = "x";
    int r_val = 4;
    double d_val = 0.5;
    IntList il = {2, {10, 20}};
    FloatList fl = {1, {0.4f}};
    const ArgSpec specs[] = {
        {"batch_size_per_gpu", ARG_INT, &i_val, "an int"},
        {"lr", ARG_FLOAT, &f_val, "a float"},
        {"output_dir", ARG_STRING, &s_val, "a string"},
        {"use_fp16", ARG_BOOL, &b_val, "a bool"},
        {"nb_knn", ARG_INT_LIST, &il, "ints in a range", ARG_RANGE(1, 10000)},
        {"global_crops_scale", ARG_FLOAT_LIST, &fl, "floats"},
        {"threads", ARG_INT, &r_val, "an int in a range", ARG_RANGE(1, 1024)},
        {"momentum_teacher", ARG_DOUBLE, &d_val, "a double in a range", ARG_RANGE(0, 1)},
        {NULL, 0, NULL, NULL},
    };
    for (int k = 1; k < argc; k++)
        if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
            // args_parse would print this and exit(0).
            FILE *keep = stdout;
            stdout = fopen("/dev/null", "w");
            if (stdout) {
                args_print_help("fuzz", "[flags] [file]", specs);
                fclose(stdout);
            }
            stdout = keep;
            return 1;
        }
    const char *pos[4];
    int np = args_parse("fuzz", "[flags] [file]", specs, argc, argv, pos, 4);
    FUZZ_REQUIRE(np >= 0 && np <= 4, "%d positional arguments", np);
    for (int k = 0; k < np; k++) fuzz_touch(pos[k], strlen(pos[k]));
    FUZZ_REQUIRE(il.n >= 1 && il.n <= ARG_LIST_MAX && fl.n >= 1 && fl.n <= ARG_LIST_MAX,
                 "list lengths %d %d", il.n, fl.n);
    FUZZ_REQUIRE(b_val == 0 || b_val == 1, "bool %d", b_val);
    FUZZ_REQUIRE(isfinite(f_val) && r_val >= 1 && r_val <= 1024 && d_val >= 0 && d_val <= 1,
                 "values outside their ranges: %g %d %g", f_val, r_val, d_val);
    for (int k = 0; k < il.n; k++) FUZZ_REQUIRE(il.v[k] >= 1 && il.v[k] <= 10000, "list value %d", il.v[k]);
    fuzz_touch(s_val, strlen(s_val));
    return 1;
}
#endif

#endif
