// dataset.h: recognises what one path holds and opens it; the file-based
// sources live here (torchvision ImageFolder order: classes = sorted
// sub-folders, files found recursively and sorted per folder as
// sorted(os.walk) gives them; a plain recursive folder; a list file of
// "path [label]" lines). IDX and CIFAR are in dataset_arrays.c, the
// accessors every kind shares in dataset_core.c.
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common.h"
#include "data/dataset_internal.h"
#include "image/decode.h"

// ---------------------------------------------------------------- file lists

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// torchvision's IMG_EXTENSIONS (case-insensitive), so indices match its
// ImageFolder; formats we cannot decode are skipped by the loader.
static int has_image_ext(const char *name) {
    static const char *exts[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
    size_t n = strlen(name);
    for (size_t k = 0; k < sizeof exts / sizeof *exts; k++) {
        size_t e = strlen(exts[k]);
        if (n >= e && !strcasecmp(name + n - e, exts[k])) return 1;
    }
    return 0;
}

typedef struct {
    char **v;
    int64_t n, cap;
} StrVec;

static void sv_push(StrVec *s, char *x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = reallocCheck(s->v, sizeof(char *) * (size_t)s->cap);
    }
    s->v[s->n++] = x;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = mallocCheck(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

// Sorted names in dir (no "." / ".."), files or dirs as asked.
static StrVec list_dir(const char *dir, int want_dirs) {
    StrVec out = {0};
    DIR *dp = opendir(dir);
    if (!dp) return out;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *full = join(dir, e->d_name);
        int d = is_dir(full);
        free(full);
        if (d == want_dirs) sv_push(&out, strdup(e->d_name));
    }
    closedir(dp);
    if (out.n) qsort(out.v, (size_t)out.n, sizeof(char *), cmp_str);
    return out;
}

static void sv_free(StrVec *s) {
    for (int64_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

// The folders already walked, by (device, inode), in an open-addressing hash
// set: symlinks to "." (two of them double the walk at every level) or to
// any folder seen before are followed once, so each real folder is listed once.
typedef struct {
    dev_t dev;
    ino_t ino;
} DirId;

typedef struct {
    DirId *ids;
    uint8_t *used;
    size_t cap, n;  // cap: 0 or a power of two, kept above twice n
} DirSet;

static size_t dir_slot(const DirSet *s, DirId id) {
    uint64_t h = ((uint64_t)id.ino ^ ((uint64_t)id.dev << 32)) * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 32) & (s->cap - 1);
    while (s->used[i] && (s->ids[i].dev != id.dev || s->ids[i].ino != id.ino)) i = (i + 1) & (s->cap - 1);
    return i;
}

// Adds the folder `dir` resolves to. 1 when it is new, 0 when seen before or
// when it cannot be examined.
static int dirset_add(DirSet *s, const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) return 0;
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        DirSet big = {callocCheck(cap, sizeof(DirId)), callocCheck(cap, 1), cap, s->n};
        for (size_t i = 0; i < s->cap; i++)
            if (s->used[i]) {
                size_t k = dir_slot(&big, s->ids[i]);
                big.used[k] = 1;
                big.ids[k] = s->ids[i];
            }
        free(s->ids);
        free(s->used);
        *s = big;
    }
    DirId id = {st.st_dev, st.st_ino};
    size_t k = dir_slot(s, id);
    if (s->used[k]) return 0;
    s->used[k] = 1;
    s->ids[k] = id;
    s->n++;
    return 1;
}

static void dirset_free(DirSet *s) {
    free(s->ids);
    free(s->used);
    memset(s, 0, sizeof *s);
}

// Collects the (dir, file) pairs of a tree in sorted(os.walk) order: folders
// by full path string, files sorted within each folder. A folder met a
// second time (through a symlink) is not walked again.
static void walk(const char *dir, StrVec *dirs, int depth, DirSet *seen) {
    if (depth > 64 || !dirset_add(seen, dir)) return;
    sv_push(dirs, strdup(dir));
    StrVec subs = list_dir(dir, 1);
    for (int64_t i = 0; i < subs.n; i++) {
        char *p = join(dir, subs.v[i]);
        walk(p, dirs, depth + 1, seen);
        free(p);
    }
    sv_free(&subs);
}

static void collect_images(const char *root, StrVec *out, DirSet *seen) {
    StrVec dirs = {0};
    walk(root, &dirs, 0, seen);
    qsort(dirs.v, (size_t)dirs.n, sizeof(char *), cmp_str);
    for (int64_t i = 0; i < dirs.n; i++) {
        StrVec files = list_dir(dirs.v[i], 0);
        for (int64_t k = 0; k < files.n; k++)
            if (has_image_ext(files.v[k])) sv_push(out, join(dirs.v[i], files.v[k]));
        sv_free(&files);
    }
    sv_free(&dirs);
}

static Dataset *open_folder(const char *dir, const char *split_name, char *err, size_t errlen) {
    StrVec top = list_dir(dir, 0);
    int direct_images = 0;
    for (int64_t i = 0; i < top.n; i++) direct_images |= has_image_ext(top.v[i]);
    sv_free(&top);
    StrVec classes = list_dir(dir, 1);
    Dataset *d = dataset_new(DS_FILES);
    StrVec paths = {0};
    if (direct_images || classes.n == 0) {
        DirSet seen = {0};
        collect_images(dir, &paths, &seen);
        dirset_free(&seen);
        d->n_classes = 0;
        snprintf(d->desc, sizeof d->desc, "image folder %.400s%s%s: %lld images, unlabeled", dir,
                 split_name ? " " : "", split_name ? split_name : "", (long long)paths.n);
    } else {
        int32_t *labels = NULL;
        for (int64_t c = 0; c < classes.n; c++) {
            // Each class on its own, as ImageFolder lists a class folder that
            // links to another class; a link back to the root is not walked.
            DirSet seen = {0};
            dirset_add(&seen, dir);
            char *cd = join(dir, classes.v[c]);
            int64_t before = paths.n;
            collect_images(cd, &paths, &seen);
            dirset_free(&seen);
            free(cd);
            labels = reallocCheck(labels, sizeof(int32_t) * (size_t)(paths.n ? paths.n : 1));
            for (int64_t i = before; i < paths.n; i++) labels[i] = (int32_t)c;
        }
        d->labels = labels;
        d->n_classes = (int)classes.n;
        snprintf(d->desc, sizeof d->desc, "ImageFolder %.400s%s%s: %lld images, %d classes", dir,
                 split_name ? " " : "", split_name ? split_name : "", (long long)paths.n,
                 d->n_classes);
    }
    sv_free(&classes);
    d->paths = paths.v;
    d->n = paths.n;
    if (d->n == 0) {
        snprintf(err, errlen, "%s: no image files (.jpg, .jpeg, .png, ...) found", dir);
        dataset_close(d);
        return NULL;
    }
    return d;
}

// List lines hold at most this many characters besides the line end: a path
// (PATH_MAX is 4096) and a label fit twice over, and every line read whole
// before (by fgets into 8192 bytes) still is.
#define LIST_MAX_LINE 8191

typedef enum { LINE_OK, LINE_EOF, LINE_TOO_LONG } LineStatus;

// Reads one whole line into buf (LIST_MAX_LINE + 1 bytes) without its '\n',
// stopping at the limit instead of splitting the line. *nul: the offset of
// its first NUL byte, or -1.
static LineStatus read_line(FILE *f, char *buf, long *nul) {
    size_t n = 0;
    int c;
    *nul = -1;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (n == LIST_MAX_LINE) return LINE_TOO_LONG;
        if (c == 0 && *nul < 0) *nul = (long)n;
        buf[n++] = (char)c;
    }
    buf[n] = 0;
    return c == EOF && n == 0 ? LINE_EOF : LINE_OK;
}

// A text file with one "path [label]" per line; relative paths are relative
// to the list file's folder. Blank lines and lines starting with # are skipped.
static Dataset *open_list(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return NULL;
    }
    char base[4096];
    snprintf(base, sizeof base, "%s", path);
    char *slash = strrchr(base, '/');
    if (slash) *slash = 0; else snprintf(base, sizeof base, ".");
    StrVec paths = {0};
    int32_t *labels = NULL;
    int labeled = -1, max_label = -1;
    char line[LIST_MAX_LINE + 1];
    int64_t lineno = 0;
    Dataset *d = NULL;
    LineStatus ls;
    long nul;
    while ((ls = read_line(f, line, &nul)) != LINE_EOF) {
        lineno++;
        if (ls == LINE_TOO_LONG) {
            snprintf(err, errlen, "%s: line %lld is longer than %d characters", path, (long long)lineno,
                     LIST_MAX_LINE);
            goto fail;
        }
        if (nul >= 0) {
            snprintf(err, errlen, "%s: line %lld holds a NUL byte (at character %ld)", path,
                     (long long)lineno, nul + 1);
            goto fail;
        }
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || isspace((unsigned char)line[n - 1]))) line[--n] = 0;
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == '#') continue;
        // A trailing integer separated by whitespace is the label.
        int has_label = 0;
        long lab = -1;
        char *sp = strrchr(s, ' '), *tab = strrchr(s, '\t');
        if (tab > sp) sp = tab;
        if (sp) {
            char *end;
            lab = strtol(sp + 1, &end, 10);
            if (*end == 0 && end != sp + 1) {
                has_label = 1;
                while (sp > s && isspace((unsigned char)sp[-1])) sp--;
                *sp = 0;
            }
        }
        if (labeled == -1) labeled = has_label;
        if (labeled != has_label || (has_label && (lab < 0 || lab > 1000000))) {
            snprintf(err, errlen, "%s:%lld: %s", path, (long long)lineno,
                     has_label && labeled ? "the label must be an integer in 0..1000000"
                                          : "either every line has a label or none does");
            goto fail;
        }
        sv_push(&paths, s[0] == '/' ? strdup(s) : join(base, s));
        if (has_label) {
            labels = reallocCheck(labels, sizeof(int32_t) * (size_t)paths.n);
            labels[paths.n - 1] = (int32_t)lab;
            if (lab > max_label) max_label = (int)lab;
        }
    }
    if (paths.n == 0) {
        snprintf(err, errlen, "%s: the list names no images", path);
        goto fail;
    }
    d = dataset_new(DS_FILES);
    d->paths = paths.v;
    d->n = paths.n;
    d->labels = labels;
    d->n_classes = labeled == 1 ? max_label + 1 : 0;
    snprintf(d->desc, sizeof d->desc, "image list %.400s: %lld images, %s", path, (long long)d->n,
             labeled == 1 ? "labeled" : "unlabeled");
    if (labeled == 1)
        snprintf(d->desc + strlen(d->desc), sizeof d->desc - strlen(d->desc), " (%d classes)",
                 d->n_classes);
    fclose(f);
    return d;
fail:
    fclose(f);
    sv_free(&paths);
    free(labels);
    return NULL;
}

// A single image file as a one-image dataset (handy for `dino features img.jpg`).
static Dataset *open_single(const char *path) {
    Dataset *d = dataset_new(DS_FILES);
    d->paths = mallocCheck(sizeof(char *));
    d->paths[0] = strdup(path);
    d->n = 1;
    snprintf(d->desc, sizeof d->desc, "image %.400s", path);
    return d;
}

static int file_magic_is_image(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t m[8] = {0};
    size_t n = fread(m, 1, 8, f);
    fclose(f);
    return (n >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF) ||
           (n == 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8));
}

Dataset *dataset_open(const char *path, Split split, char *err, size_t errlen) {
    if (!path || !*path) {
        snprintf(err, errlen, "no dataset path given");
        return NULL;
    }
    // Trim trailing slashes so descriptions and joins look normal.
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--) p[n - 1] = 0;
    if (!is_dir(p) && !is_file(p)) {
        snprintf(err, errlen, "%s: no such file or folder", p);
        return NULL;
    }
    int recognised = 0;
    Dataset *d = dataset_open_idx(p, split, &recognised, err, errlen);
    if (d || recognised) return d;
    d = dataset_open_cifar(p, split, &recognised, err, errlen);
    if (d || recognised) return d;
    if (is_file(p)) {
        if (has_image_ext(p) || file_magic_is_image(p)) return open_single(p);
        return open_list(p, err, errlen);
    }
    const char *sub = split == SPLIT_TRAIN ? "train" : "val";
    char *sp = join(p, sub);
    if (is_dir(sp)) {
        d = open_folder(sp, NULL, err, errlen);
        free(sp);
        if (d) d->split_specific = 1;
        return d;
    }
    free(sp);
    return open_folder(p, NULL, err, errlen);
}
