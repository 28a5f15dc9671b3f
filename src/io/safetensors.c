// safetensors reader and writer (safetensors.h). The header is parsed with
// cJSON after a UTF-8 check; every number that becomes a size or offset must
// be a non-negative integer small enough to be exact in a double, and every
// product is overflow-checked before it is compared with the byte range.
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "io/atomic_file.h"


static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        int k;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
        else return 0;
        if (i + (size_t)k >= n) return 0;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

void safetensors_close(SafeFile *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_key[i]);
        free(f->meta_value[i]);
    }
    free(f->meta_key);
    free(f->meta_value);
    if (f->fd >= 0) close(f->fd);
    free(f->path);
    free(f);
}

// A JSON number that is a non-negative integer exactly representable.
static int json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0) || v > 9007199254740992.0 || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int cmp_range(const void *a, const void *b) {
    const SafeTensor *x = *(const SafeTensor *const *)a, *y = *(const SafeTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const SafeTensor *const *)a)->name, (*(const SafeTensor *const *)b)->name);
}

int safetensors_sniff(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    uint8_t b[9];
    size_t n = fread(b, 1, 9, fp);
    fclose(fp);
    if (n < 9) return 0;
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = (len << 8) | b[i];
    return len >= 2 && len <= SAFETENSORS_MAX_HEADER && (b[8] == '{' || b[8] == ' ');
}

#define FAIL(...)                            \
    do {                                     \
        dino_errf(err, errlen, __VA_ARGS__); \
        return -1;                           \
    } while (0)

// The __metadata__ object: strings to strings, once.
static int read_metadata(SafeFile *f, const cJSON *e, const char *path, char *err, size_t errlen) {
    if (f->n_meta || f->meta_key) FAIL("%s: __metadata__ appears twice", path);
    if (!cJSON_IsObject(e)) FAIL("%s: __metadata__ is not an object", path);
    int m = 0;
    for (const cJSON *k = e->child; k; k = k->next) m++;
    f->meta_key = callocCheck((size_t)(m ? m : 1), sizeof(char *));
    f->meta_value = callocCheck((size_t)(m ? m : 1), sizeof(char *));
    for (const cJSON *k = e->child; k; k = k->next) {
        if (!cJSON_IsString(k)) FAIL("%s: __metadata__ value '%s' is not a string", path, k->string);
        f->meta_key[f->n_meta] = strdup(k->string);
        f->meta_value[f->n_meta] = strdup(k->valuestring);
        f->n_meta++;
    }
    return 0;
}

// One tensor's entry: dtype, shape and data_offsets, whose span must be the
// shape's bytes exactly. t->name is already set.
static int read_tensor_entry(SafeTensor *t, const cJSON *e, const char *path, char *err,
                             size_t errlen) {
    if (!*t->name) FAIL("%s: a tensor has an empty name", path);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        FAIL("%s: tensor '%s' lacks dtype, shape or data_offsets", path, t->name);
    int d = dtype_from_safetensors(dt->valuestring);
    if (d < 0) FAIL("%s: tensor '%s' has unknown dtype '%s'", path, t->name, dt->valuestring);
    t->dtype = (DType)d;
    int nd = cJSON_GetArraySize(sh);
    if (nd > 8) FAIL("%s: tensor '%s' has %d dimensions (at most 8 are supported)", path, t->name, nd);
    t->ndim = nd;
    uint64_t numel = 1;
    int k = 0;
    for (const cJSON *s = sh->child; s; s = s->next, k++) {
        uint64_t v;
        if (!json_u64(s, &v)) FAIL("%s: tensor '%s' has a bad shape", path, t->name);
        if (v && numel > UINT64_MAX / v) FAIL("%s: tensor '%s' has a shape that overflows", path, t->name);
        numel *= v;
        t->shape[k] = (int64_t)v;
    }
    if (cJSON_GetArraySize(off) != 2 || !json_u64(off->child, &t->begin) ||
        !json_u64(off->child->next, &t->end))
        FAIL("%s: tensor '%s' has bad data_offsets", path, t->name);
    if (t->end < t->begin) FAIL("%s: tensor '%s' ends before it begins", path, t->name);
    uint64_t bits = (uint64_t)dtype_traits(t->dtype)->bits;
    if (numel > UINT64_MAX / bits) FAIL("%s: tensor '%s' is impossibly large", path, t->name);
    if ((numel * bits) % 8 != 0)
        FAIL("%s: tensor '%s' does not fill a whole number of bytes", path, t->name);
    if (numel * bits / 8 != t->end - t->begin)
        FAIL("%s: tensor '%s' declares shape x %s = %llu bytes but data_offsets span %llu", path,
             t->name, dtype_traits(t->dtype)->safetensors, (unsigned long long)(numel * bits / 8),
             (unsigned long long)(t->end - t->begin));
    t->numel = (size_t)numel;
    return 0;
}

// Unique names, and data that tiles the data section exactly, as the
// reference reader checks it. `order` has room for f->n pointers.
static int check_layout(const SafeFile *f, SafeTensor **order, const char *path, char *err,
                        size_t errlen) {
    for (int i = 0; i < f->n; i++) order[i] = &f->t[i];
    qsort(order, (size_t)f->n, sizeof *order, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (strcmp(order[i]->name, order[i - 1]->name) == 0)
            FAIL("%s: tensor '%s' appears twice in the header", path, order[i]->name);
    qsort(order, (size_t)f->n, sizeof *order, cmp_range);
    uint64_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        if (order[i]->begin != pos)
            FAIL("%s: tensor '%s' starts at byte %llu, expected %llu (gap or overlap in the data)",
                 path, order[i]->name, (unsigned long long)order[i]->begin, (unsigned long long)pos);
        pos = order[i]->end;
    }
    if (pos > f->file_size - f->data_start)
        FAIL("%s is truncated: its tensors need %llu data bytes but %llu are there", path,
             (unsigned long long)pos, (unsigned long long)(f->file_size - f->data_start));
    if (pos != f->file_size - f->data_start)
        FAIL("%s: %llu bytes after the last tensor (not a valid safetensors file)", path,
             (unsigned long long)(f->file_size - f->data_start - pos));
    return 0;
}
#undef FAIL

// Reads the header's bytes: the length, then that many bytes of UTF-8 with no
// NUL. Returns the NUL-terminated header (malloc'd) or NULL with err filled.
static char *read_header(SafeFile *f, const char *path, uint64_t *len, char *err, size_t errlen) {
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dino_errf(err, errlen, "%s is not a regular file", path);
        return NULL;
    }
    f->file_size = (uint64_t)st.st_size;
    uint8_t lb[8];
    if (f->file_size < 8) {
        dino_errf(err, errlen, "%s is not a safetensors file (shorter than 8 bytes)", path);
        return NULL;
    }
    if (pread(f->fd, lb, 8, 0) != 8) {
        dino_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | lb[i];
    if (n > SAFETENSORS_MAX_HEADER) {
        dino_errf(err, errlen, "%s: safetensors header of %llu bytes exceeds the 100 MB limit (not "
                  "a safetensors file?)", path, (unsigned long long)n);
        return NULL;
    }
    if (8 + n > f->file_size) {
        dino_errf(err, errlen, "%s is truncated: its safetensors header needs %llu bytes but the "
                  "file has %llu", path, (unsigned long long)(8 + n), (unsigned long long)f->file_size);
        return NULL;
    }
    f->data_start = 8 + n;
    char *hdr = mallocCheck(n + 1);
    hdr[n] = 0;
    int bad = 1;
    if (n && pread(f->fd, hdr, n, 8) != (ssize_t)n)
        dino_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    else if (!utf8_valid((const uint8_t *)hdr, n))
        dino_errf(err, errlen, "%s: the safetensors header is not valid UTF-8", path);
    else if (memchr(hdr, 0, n))
        dino_errf(err, errlen, "%s: the safetensors header contains a NUL byte", path);
    else
        bad = 0;
    if (bad) {
        free(hdr);
        return NULL;
    }
    *len = n;
    return hdr;
}

SafeFile *safetensors_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        dino_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    SafeFile *f = callocCheck(1, sizeof *f);
    f->fd = fd;
    f->path = strdup(path);
    DINO_ASSERT(f->path);
    cJSON *root = NULL;
    SafeTensor **order = NULL;
    uint64_t n = 0;
    char *hdr = read_header(f, path, &n, err, errlen);
#define FAIL(...)                            \
    do {                                     \
        dino_errf(err, errlen, __VA_ARGS__); \
        goto fail;                           \
    } while (0)
    if (!hdr) goto fail;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, n, &end, 0);
    if (!root) FAIL("%s: the safetensors header is not valid JSON", path);
    for (const char *q = end; q && q < hdr + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
            FAIL("%s: bytes after the safetensors header's JSON", path);
    if (!cJSON_IsObject(root)) FAIL("%s: the safetensors header is not a JSON object", path);
#undef FAIL

    int count = 0;
    for (cJSON *e = root->child; e; e = e->next) count++;
    f->t = callocCheck((size_t)(count ? count : 1), sizeof *f->t);
    for (cJSON *e = root->child; e; e = e->next) {
        if (!e->string) {
            dino_errf(err, errlen, "%s: malformed safetensors header", path);
            goto fail;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            if (read_metadata(f, e, path, err, errlen)) goto fail;
            continue;
        }
        SafeTensor *t = &f->t[f->n];
        t->name = strdup(e->string);
        DINO_ASSERT(t->name);
        f->n++;
        if (read_tensor_entry(t, e, path, err, errlen)) goto fail;
    }
    order = mallocCheck((size_t)(f->n ? f->n : 1) * sizeof *order);
    if (check_layout(f, order, path, err, errlen)) goto fail;
    free(order);
    cJSON_Delete(root);
    free(hdr);
    return f;
fail:
    free(order);
    cJSON_Delete(root);
    free(hdr);
    safetensors_close(f);
    return NULL;
}

const SafeTensor *safetensors_find(const SafeFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

const char *safetensors_meta(const SafeFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_key[i], key) == 0) return f->meta_value[i];
    return NULL;
}

int safetensors_read_f32(const SafeFile *f, const SafeTensor *t, float *out, char *err,
                         size_t errlen) {
    const DTypeTraits *tr = dtype_traits(t->dtype);
    if (!tr->reads_as_f32) {
        dino_errf(err, errlen, "%s: tensor '%s' has dtype %s, which cannot be read as float32",
                  f->path, t->name, tr->safetensors);
        return -1;
    }
    size_t es = (size_t)tr->bits / 8;
    size_t nbytes = t->numel * es;
    if (nbytes == 0) return 0;
    // f32 reads straight into out; others go through a staging buffer.
    uint8_t *buf = t->dtype == DT_F32 ? (uint8_t *)out : mallocCheck(nbytes);
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = pread(f->fd, buf + got, nbytes - got, (off_t)(f->data_start + t->begin + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            dino_errf(err, errlen, "cannot read tensor '%s' from %s: %s", t->name, f->path,
                    r < 0 ? strerror(errno) : "file shrank");
            if (buf != (uint8_t *)out) free(buf);
            return -1;
        }
        got += (size_t)r;
    }
    if (t->dtype == DT_F32) return 0;
    dtype_read_f32(t->dtype, buf, out, t->numel);
    free(buf);
    return 0;
}

// ---------------------------------------------------------------- writing

typedef struct {
    char *s;
    size_t len, cap;
} Str;

static void str_add(Str *s, const char *p, size_t n) {
    if (s->len + n + 1 > s->cap) {
        while (s->len + n + 1 > s->cap) s->cap = s->cap ? 2 * s->cap : 4096;
        s->s = reallocCheck(s->s, s->cap);
    }
    memcpy(s->s + s->len, p, n);
    s->len += n;
    s->s[s->len] = 0;
}
static void str_printf(Str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_printf(Str *s, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    DINO_ASSERT(k >= 0 && (size_t)k < sizeof buf);
    str_add(s, buf, (size_t)k);
}
static void str_json(Str *s, const char *v) {
    str_add(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            str_add(s, e, 2);
        } else if (*p < 0x20) {
            str_printf(s, "\\u%04x", *p);
        } else {
            str_add(s, (const char *)p, 1);
        }
    }
    str_add(s, "\"", 1);
}

static int cmp_write(const void *a, const void *b) {
    return strcmp((*(const SafeWriteTensor *const *)a)->name, (*(const SafeWriteTensor *const *)b)->name);
}

int safetensors_write_f32(const char *path, const SafeWriteTensor *t, int n,
                          const char *const *meta_kv, int n_meta, char *err, size_t errlen) {
    // All tensors are F32, so the reference writer's order (dtype rank, then
    // name) is the name order.
    const SafeWriteTensor **order = mallocCheck((size_t)(n ? n : 1) * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, (size_t)n, sizeof *order, cmp_write);
    for (int i = 1; i < n; i++) DINO_ASSERT(strcmp(order[i]->name, order[i - 1]->name) != 0);
    Str h = {0};
    str_add(&h, "{", 1);
    if (n_meta > 0) {
        str_add(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < n_meta; i++) {
            if (i) str_add(&h, ",", 1);
            str_json(&h, meta_kv[2 * i]);
            str_add(&h, ":", 1);
            str_json(&h, meta_kv[2 * i + 1]);
        }
        str_add(&h, "}", 1);
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const SafeWriteTensor *w = order[i];
        uint64_t numel = 1;
        for (int d = 0; d < w->ndim; d++) numel *= (uint64_t)w->shape[d];
        if (i || n_meta > 0) str_add(&h, ",", 1);
        str_json(&h, w->name);
        str_add(&h, ":{\"dtype\":\"F32\",\"shape\":[", 25);
        for (int d = 0; d < w->ndim; d++) str_printf(&h, "%s%lld", d ? "," : "", (long long)w->shape[d]);
        str_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)pos,
                   (unsigned long long)(pos + 4 * numel));
        pos += 4 * numel;
    }
    str_add(&h, "}", 1);
    while (h.len % 8) str_add(&h, " ", 1);
    AtomicFile *af = atomic_open(path, err, errlen);
    if (!af) {
        free(h.s);
        free(order);
        return -1;
    }
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    atomic_write(af, lb, 8);
    atomic_write(af, h.s, h.len);
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < order[i]->ndim; d++) numel *= (size_t)order[i]->shape[d];
        atomic_write(af, order[i]->data, 4 * numel);
    }
    free(h.s);
    free(order);
    return atomic_commit(af, err, errlen);
}
