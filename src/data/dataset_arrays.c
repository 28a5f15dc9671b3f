// In-memory datasets: IDX (MNIST, Fashion-MNIST; raw or gzip, read through
// zlib's gzread which also passes uncompressed files through) and CIFAR-10/100
// binary batches. docs/FORMATS.md §6 gives the layouts.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common.h"
#include "data/dataset_internal.h"
#include "image/decode.h"

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

// A CIFAR batch file holds at most this many records, twice the largest real
// one (CIFAR-100's train.bin, 50,000): its size is not declared anywhere, and
// a gzipped batch of zeros would otherwise be read until memory runs out.
#define CIFAR_MAX_RECORDS 100000

// Reads at most `max` decompressed bytes from f into a buffer that grows as
// the data arrives, so a header declaring more than the file holds costs only
// what is there. *len: the bytes read. NULL on a read error.
static uint8_t *gz_read_upto(gzFile f, size_t max, size_t *len) {
    size_t cap = max < (1u << 20) ? max : (1u << 20), n = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    while (buf && n < max) {
        if (n == cap) {
            size_t grown = cap > max / 2 ? max : cap * 2;
            uint8_t *nb = realloc(buf, grown);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap = grown;
        }
        size_t room = cap - n;
        int got = gzread(f, buf + n, (unsigned)(room > (1u << 30) ? (1u << 30) : room));
        if (got < 0) {
            free(buf);
            return NULL;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    *len = n;
    return buf;
}

// Reads exactly n bytes; 1 on success.
static int gz_read_exact(gzFile f, uint8_t *out, unsigned n) {
    return gzread(f, out, n) == (int)n;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

// The first 4 decompressed bytes (zeros past the end); the count read.
static int peek_magic(const char *path, uint8_t m[4]) {
    memset(m, 0, 4);
    gzFile f = gzopen(path, "rb");
    if (!f) return 0;
    int got = gzread(f, m, 4);
    gzclose(f);
    return got;
}

static int is_idx_magic(const uint8_t m[4]) {
    return m[0] == 0 && m[1] == 0 && m[2] == 0x08 && m[3] >= 1 && m[3] <= 4;
}

// A file meant as IDX whose magic is wrong: named like one (...-idx3-ubyte,
// ...idx1-ubyte.gz) or starting with the two zero bytes of every IDX magic,
// which no text list file does. Read as a list, it named no images.
static int meant_as_idx(const char *path, const uint8_t m[4], int got) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int named = strstr(base, "idx") && strstr(base, "-ubyte");
    return named || (got >= 2 && m[0] == 0 && m[1] == 0);
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

// The images file: the header first, then exactly the bytes it declares
// (trailing bytes are not read, as before: a gzip bomb behind a small header
// costs nothing). Returns the dataset, or NULL with err filled.
static Dataset *read_idx_images(const char *img, char *err, size_t errlen) {
    gzFile f = gzopen(img, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read the IDX file", img);
        return NULL;
    }
    uint8_t hdr[20] = {0};
    int ndim = gz_read_exact(f, hdr, 4) ? hdr[3] : 0;
    if (hdr[0] || hdr[1] || hdr[2] != 0x08 || (ndim != 3 && ndim != 4) ||
        !gz_read_exact(f, hdr + 4, 4 * (unsigned)ndim)) {
        snprintf(err, errlen, "%s: not an unsigned-byte IDX image file with 3 or 4 dimensions", img);
        gzclose(f);
        return NULL;
    }
    int64_t n = be32(hdr + 4);
    int rows = (int)be32(hdr + 8), cols = (int)be32(hdr + 12);
    int ch = ndim == 4 ? (int)be32(hdr + 16) : 1;
    if ((ch != 1 && ch != 3) || rows <= 0 || cols <= 0 || n <= 0) {
        snprintf(err, errlen, "%s: IDX header (%lld x %d x %d x %d) does not match the data size",
                 img, (long long)n, rows, cols, ch);
        gzclose(f);
        return NULL;
    }
    if ((int64_t)rows * cols > IMAGE_MAX_PIXELS) {
        snprintf(err, errlen, "%s: IDX images of %dx%d pixels are above the limit of %lld", img,
                 cols, rows, (long long)IMAGE_MAX_PIXELS);
        gzclose(f);
        return NULL;
    }
    // At most 2^32 images of 2^28 bytes: the product fits 64 bits.
    uint64_t per = (uint64_t)rows * cols * ch, want = per * (uint64_t)n;
    size_t len = 0;
    uint8_t *pixels = want <= SIZE_MAX ? gz_read_upto(f, (size_t)want, &len) : NULL;
    gzclose(f);
    if (!pixels || len < want) {
        snprintf(err, errlen, "%s: IDX header (%lld x %d x %d x %d) does not match the data size",
                 img, (long long)n, rows, cols, ch);
        free(pixels);
        return NULL;
    }
    Dataset *d = dataset_new(DS_ARRAY);
    d->n = n;
    d->h = rows;
    d->w = cols;
    d->c = ch;
    d->planar = 0;
    d->pixels = pixels;
    return d;
}

// The labels file beside it: its header, then exactly d->n labels.
static int read_idx_labels(const char *lab, Dataset *d, char *err, size_t errlen) {
    gzFile f = gzopen(lab, "rb");
    uint8_t hdr[8];
    size_t len = 0;
    uint8_t *lb = NULL;
    if (f && gz_read_exact(f, hdr, 8) && be32(hdr) == 0x00000801 && be32(hdr + 4) == (uint32_t)d->n)
        lb = gz_read_upto(f, (size_t)d->n, &len);
    if (f) gzclose(f);
    if (!lb || len < (size_t)d->n) {
        snprintf(err, errlen, "%s: not an IDX label file for %lld images", lab, (long long)d->n);
        free(lb);
        return -1;
    }
    d->labels = mallocCheck(sizeof(int32_t) * (size_t)d->n);
    int mx = 0;
    for (int64_t i = 0; i < d->n; i++) {
        d->labels[i] = lb[i];
        if (lb[i] > mx) mx = lb[i];
    }
    d->n_classes = mx + 1;
    free(lb);
    return 0;
}

Dataset *dataset_open_idx(const char *path, Split split, int *recognised, char *err, size_t errlen) {
    char img[4096], lab[4096];
    uint8_t m[4] = {0};
    int got = 0;
    *recognised = 0;
    int from_folder = is_dir(path);
    if (from_folder) {
        if (!find_idx_pair(path, split, img, lab, sizeof img)) return NULL;
    } else if (is_file(path) && (got = peek_magic(path, m)) == 4 && is_idx_magic(m)) {
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
    } else if (is_file(path) && meant_as_idx(path, m, got)) {
        *recognised = 1;
        snprintf(err, errlen,
                 "%s: not an IDX file: its magic is %02x %02x %02x %02x, expected 00 00 08 03 or "
                 "00 00 08 04 (unsigned-byte images)", path, m[0], m[1], m[2], m[3]);
        return NULL;
    } else {
        return NULL;
    }
    *recognised = 1;
    Dataset *d = read_idx_images(img, err, errlen);
    if (!d) return NULL;
    if (lab[0] && read_idx_labels(lab, d, err, errlen) != 0) {
        dataset_close(d);
        return NULL;
    }
    d->split_specific = from_folder;
    // Name for the description: the containing folder's name.
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", img);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    const char *name = strrchr(dir, '/');
    name = name ? name + 1 : dir;
    snprintf(d->desc, sizeof d->desc, "IDX %.200s %s: %lld images %dx%d%s, %d classes", name,
             split == SPLIT_TRAIN ? "train" : "test", (long long)d->n, d->w, d->h,
             d->c == 1 ? " grey" : "", d->n_classes);
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
        size_t len = 0, max = CIFAR_MAX_RECORDS * rec;
        gzFile gz = gzopen(f, "rb");
        uint8_t *buf = gz ? gz_read_upto(gz, max + 1, &len) : NULL;
        if (gz) gzclose(gz);
        if (buf && len > max) {
            snprintf(err, errlen, "%.4000s: holds more than %d CIFAR records, the limit", f,
                     CIFAR_MAX_RECORDS);
            free(buf);
            dataset_close(d);
            return NULL;
        }
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
    d->split_specific = 1;
    snprintf(d->desc, sizeof d->desc, "CIFAR-%d %s: %lld images 32x32, %d classes",
             cifar100 ? 100 : 10, split == SPLIT_TRAIN ? "train" : "test", (long long)d->n,
             d->n_classes);
    return d;
}
