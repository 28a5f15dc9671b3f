// In-memory datasets: IDX (MNIST, Fashion-MNIST; raw or gzip, read through
// zlib's gzread which also passes uncompressed files through) and CIFAR-10/100
// binary batches. FORMATS.md §A5 gives the layouts.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common.h"
#include "data/dataset_internal.h"

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

// Reads a whole (possibly gzipped) file. NULL on failure.
static uint8_t *read_gz(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        int got = gzread(f, buf + n, (unsigned)(cap - n > (1u << 30) ? (1u << 30) : cap - n));
        if (got < 0) { free(buf); buf = NULL; break; }
        if (got == 0) break;
        n += (size_t)got;
    }
    gzclose(f);
    *len = n;
    return buf;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

// Peeks at the first 4 decompressed bytes: an unsigned-byte IDX magic?
static int looks_idx(const char *path) {
    gzFile f = gzopen(path, "rb");
    if (!f) return 0;
    uint8_t m[4];
    int got = gzread(f, m, 4);
    gzclose(f);
    return got == 4 && m[0] == 0 && m[1] == 0 && m[2] == 0x08 && m[3] >= 1 && m[3] <= 4;
}

// Finds the images file for `split` in folder `dir`; labels path alongside.
static int find_idx_pair(const char *dir, Split split, char *img, char *lab, size_t cap) {
    const char *prefix = split == SPLIT_TRAIN ? "train" : "t10k";
    const char *seps[] = {"-images-idx3-ubyte", "-images.idx3-ubyte"};
    const char *lseps[] = {"-labels-idx1-ubyte", "-labels.idx1-ubyte"};
    const char *exts[] = {"", ".gz"};
    for (int s = 0; s < 2; s++)
        for (int e = 0; e < 2; e++) {
            snprintf(img, cap, "%s/%s%s%s", dir, prefix, seps[s], exts[e]);
            if (!is_file(img)) continue;
            lab[0] = 0;
            for (int le = 0; le < 2; le++) {
                snprintf(lab, cap, "%s/%s%s%s", dir, prefix, lseps[s], exts[le]);
                if (is_file(lab)) return 1;
            }
            lab[0] = 0;
            return 1;
        }
    return 0;
}

Dataset *dataset_open_idx(const char *path, Split split, int *recognised, char *err, size_t errlen) {
    char img[4096], lab[4096];
    *recognised = 0;
    if (is_dir(path)) {
        if (!find_idx_pair(path, split, img, lab, sizeof img)) return NULL;
    } else if (is_file(path) && looks_idx(path)) {
        snprintf(img, sizeof img, "%s", path);
        // A labels file next to it: the same name with "images" -> "labels", idx3 -> idx1.
        snprintf(lab, sizeof lab, "%s", path);
        char *base = strrchr(lab, '/');
        base = base ? base + 1 : lab;
        char *p = strstr(base, "images");
        if (p) memcpy(p, "labels", 6);
        p = strstr(base, "idx3");
        if (p) p[3] = '1';
        if (!strcmp(lab, img) || !is_file(lab)) lab[0] = 0;
    } else {
        return NULL;
    }
    *recognised = 1;
    size_t len = 0;
    uint8_t *buf = read_gz(img, &len);
    if (!buf) {
        snprintf(err, errlen, "%s: cannot read the IDX file", img);
        return NULL;
    }
    int ndim = len >= 4 ? buf[3] : 0;
    if (len < 4 || buf[0] || buf[1] || buf[2] != 0x08 || (ndim != 3 && ndim != 4) ||
        len < 4 + 4 * (size_t)ndim) {
        snprintf(err, errlen, "%s: not an unsigned-byte IDX image file with 3 or 4 dimensions", img);
        free(buf);
        return NULL;
    }
    int64_t n = be32(buf + 4);
    int rows = (int)be32(buf + 8), cols = (int)be32(buf + 12);
    int ch = ndim == 4 ? (int)be32(buf + 16) : 1;
    size_t off = 4 + 4 * (size_t)ndim;
    size_t per = (size_t)rows * cols * ch;
    // n is compared by division: per·n overflows size_t for a forged header
    // (found by fuzz_idx: 721M images of 33554432x50331648 passed the check).
    if ((ch != 1 && ch != 3) || rows <= 0 || cols <= 0 || n <= 0 || (size_t)n > (len - off) / per) {
        snprintf(err, errlen, "%s: IDX header (%lld x %d x %d x %d) does not match the data size",
                 img, (long long)n, rows, cols, ch);
        free(buf);
        return NULL;
    }
    Dataset *d = dataset_new(DS_ARRAY);
    d->n = n;
    d->h = rows;
    d->w = cols;
    d->c = ch;
    d->planar = 0;
    d->pixels = mallocCheck(per * (size_t)n);
    memcpy(d->pixels, buf + off, per * (size_t)n);
    free(buf);
    if (lab[0]) {
        uint8_t *lb = read_gz(lab, &len);
        if (!lb || len < 8 || be32(lb) != 0x00000801 || be32(lb + 4) != (uint32_t)n ||
            len < 8 + (size_t)n) {
            snprintf(err, errlen, "%s: not an IDX label file for %lld images", lab, (long long)n);
            free(lb);
            dataset_close(d);
            return NULL;
        }
        d->labels = mallocCheck(sizeof(int32_t) * (size_t)n);
        int mx = 0;
        for (int64_t i = 0; i < n; i++) {
            d->labels[i] = lb[8 + i];
            if (lb[8 + i] > mx) mx = lb[8 + i];
        }
        d->n_classes = mx + 1;
        free(lb);
    }
    // Name for the description: the containing folder's name.
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", img);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    const char *name = strrchr(dir, '/');
    name = name ? name + 1 : dir;
    snprintf(d->desc, sizeof d->desc, "IDX %.200s %s: %lld images %dx%d%s, %d classes", name,
             split == SPLIT_TRAIN ? "train" : "test", (long long)n, cols, rows,
             ch == 1 ? " grey" : "", d->n_classes);
    return d;
}

// ---------------------------------------------------------------- CIFAR

Dataset *dataset_open_cifar(const char *path, Split split, int *recognised, char *err,
                            size_t errlen) {
    *recognised = 0;
    char dir[4096], f[8192];
    snprintf(dir, sizeof dir, "%s", path);
    if (is_dir(path)) {
        // Accept the archive's inner folders too.
        const char *subs[] = {"cifar-10-batches-bin", "cifar-100-binary"};
        for (int s = 0; s < 2; s++) {
            snprintf(f, sizeof f, "%s/%s", path, subs[s]);
            if (is_dir(f)) snprintf(dir, sizeof dir, "%.4000s", f);
        }
    } else {
        return NULL;
    }
    const char *files10_train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                   "data_batch_4.bin", "data_batch_5.bin"};
    const char *files10_test[] = {"test_batch.bin"};
    const char *files100_train[] = {"train.bin"};
    const char *files100_test[] = {"test.bin"};
    int cifar100 = 0;
    snprintf(f, sizeof f, "%s/data_batch_1.bin", dir);
    if (!is_file(f)) {
        snprintf(f, sizeof f, "%s/train.bin", dir);
        char t2[8192];
        snprintf(t2, sizeof t2, "%s/test.bin", dir);
        if (!is_file(f) || !is_file(t2)) return NULL;
        cifar100 = 1;
    }
    *recognised = 1;
    const char **files = cifar100 ? (split == SPLIT_TRAIN ? files100_train : files100_test)
                                  : (split == SPLIT_TRAIN ? files10_train : files10_test);
    int nfiles = (!cifar100 && split == SPLIT_TRAIN) ? 5 : 1;
    size_t rec = cifar100 ? 3074 : 3073;
    Dataset *d = dataset_new(DS_ARRAY);
    d->h = d->w = 32;
    d->c = 3;
    d->planar = 1;
    d->n_classes = cifar100 ? 100 : 10;
    size_t total = 0;
    for (int k = 0; k < nfiles; k++) {
        snprintf(f, sizeof f, "%s/%s", dir, files[k]);
        size_t len = 0;
        uint8_t *buf = read_gz(f, &len);
        if (!buf || len == 0 || len % rec) {
            snprintf(err, errlen, "%.4000s: %s", f,
                     buf ? "size is not a whole number of CIFAR records" : "cannot read the file");
            free(buf);
            dataset_close(d);
            return NULL;
        }
        size_t m = len / rec;
        d->pixels = reallocCheck(d->pixels, (total + m) * 3072);
        d->labels = reallocCheck(d->labels, (total + m) * sizeof(int32_t));
        for (size_t i = 0; i < m; i++) {
            const uint8_t *r = buf + i * rec;
            int label = cifar100 ? r[1] : r[0];  // CIFAR-100: <coarse><fine>; we use fine
            if (label >= d->n_classes) {
                snprintf(err, errlen, "%s: record %zu has label %d, above %d classes", f, i, label,
                         d->n_classes);
                free(buf);
                dataset_close(d);
                return NULL;
            }
            d->labels[total + i] = label;
            memcpy(d->pixels + (total + i) * 3072, r + (rec - 3072), 3072);
        }
        total += m;
        free(buf);
    }
    d->n = (int64_t)total;
    snprintf(d->desc, sizeof d->desc, "CIFAR-%d %s: %lld images 32x32, %d classes",
             cifar100 ? 100 : 10, split == SPLIT_TRAIN ? "train" : "test", (long long)d->n,
             d->n_classes);
    return d;
}
