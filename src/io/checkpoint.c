// The native file format (checkpoint.h, docs/FORMATS.md §1): writing through a
// temporary file that is fsynced and renamed into place, and reading that
// verifies the size, the XXH64 checksum and every count, length and offset
// before anything is handed out. Also owns the XXH64 implementation (written
// from the published algorithm description) used for the checksum.
#include "io/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "io/atomic_file.h"
#include "io/key_index.h"
#include "io/xxh64.h"

#define CKPT_MAGIC "DINOCKPT"
#define CKPT_VERSION 1u
#define CKPT_PREAMBLE 64u
#define CKPT_ALIGN 64u
#define CKPT_MAX_META (1u << 16)
#define CKPT_MAX_TENSORS (1u << 20)
#define CKPT_MAX_KEY 255u
#define CKPT_MAX_VALUE (16u << 20)
// The fewest header bytes one entry can take (lengths, one byte of name,
// dtype, ndim, offset, size), so the counts a header declares are capped by
// its length before anything is allocated for them.
#define CKPT_MIN_META_BYTES 9u
#define CKPT_MIN_TENSOR_BYTES 29u
// Sizes summed from the preamble's fields stay below 2^64 when each is below this.
#define CKPT_MAX_FIELD ((uint64_t)1 << 62)

_Static_assert(sizeof(float) == 4, "float must be IEEE binary32");

// Bytes per element of a dtype code the native format stores; 0 for others.
static size_t dtype_size(uint32_t dt) {
    return dt < DT_NATIVE_COUNT ? (size_t)dtype_traits((DType)dt)->bits / 8 : 0;
}

static int host_is_little_endian(void) {
    const uint16_t x = 1;
    return *(const uint8_t *)&x == 1;
}

// ---------------------------------------------------------------- writing

typedef struct {
    char *key, *value;
} MetaKV;

typedef struct {
    char name[96];
    DType dtype;
    int ndim;
    int64_t shape[8];
    size_t nbytes;
    uint64_t offset;  // relative to the data section
    const void *data;
} WTensor;

struct CkptWriter {
    char *path;
    MetaKV *meta;
    int n_meta, cap_meta;
    WTensor *t;
    int n_t, cap_t;
    // streaming state while committing
    AtomicFile *f;
    Xxh64State h;
};

CkptWriter *ckpt_writer_open(const char *path, char *err, size_t errlen) {
    if (!host_is_little_endian()) {
        dino_errf(err, errlen, "%s: the native format is little-endian and this host is not", path);
        return NULL;
    }
    if (!path || !*path) {
        dino_errf(err, errlen, "checkpoint path is empty");
        return NULL;
    }
    CkptWriter *w = callocCheck(1, sizeof *w);
    w->path = strdup(path);
    DINO_ASSERT(w->path);
    return w;
}

void ckpt_add_meta(CkptWriter *w, const char *key, const char *value) {
    DINO_ASSERT(w && key && value);
    DINO_ASSERT(strlen(key) > 0 && strlen(key) <= CKPT_MAX_KEY);
    DINO_ASSERT(strlen(value) <= CKPT_MAX_VALUE);
    // A repeated key replaces the earlier value, so the file never has duplicates.
    for (int i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = strdup(value);
            DINO_ASSERT(w->meta[i].value);
            return;
        }
    }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 16;
        w->meta = reallocCheck(w->meta, (size_t)w->cap_meta * sizeof *w->meta);
    }
    w->meta[w->n_meta].key = strdup(key);
    w->meta[w->n_meta].value = strdup(value);
    DINO_ASSERT(w->meta[w->n_meta].key && w->meta[w->n_meta].value);
    w->n_meta++;
    DINO_ASSERT((unsigned)w->n_meta <= CKPT_MAX_META);
}

void ckpt_add_tensor(CkptWriter *w, const char *name, DType dtype, int ndim,
                     const int64_t *shape, const void *data) {
    DINO_ASSERT(w && name && (data || ndim >= 0));
    DINO_ASSERT(strlen(name) > 0 && strlen(name) < 96);
    DINO_ASSERT(ndim >= 0 && ndim <= 8);
    DINO_ASSERT(dtype_size(dtype) > 0);
    for (int i = 0; i < w->n_t; i++) DINO_ASSERT(strcmp(w->t[i].name, name) != 0);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 64;
        w->t = reallocCheck(w->t, (size_t)w->cap_t * sizeof *w->t);
    }
    WTensor *t = &w->t[w->n_t++];
    DINO_ASSERT((unsigned)w->n_t <= CKPT_MAX_TENSORS);
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        DINO_ASSERT(shape[d] >= 0);
        t->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    t->nbytes = numel * dtype_size(dtype);
    DINO_ASSERT(t->nbytes == 0 || data);
    t->data = data;
}

static void writer_free(CkptWriter *w) {
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    free(w->t);
    free(w->path);
    free(w);
}

// Hashes and writes (the atomic file remembers the first error).
static void w_bytes(CkptWriter *w, const void *p, size_t n) {
    if (n == 0) return;
    xxh64_update(&w->h, p, n);
    atomic_write(w->f, p, n);
}
static void w_u32(CkptWriter *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 4);
}
static void w_u64(CkptWriter *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 8);
}
static void w_zeros(CkptWriter *w, size_t n) {
    static const uint8_t z[CKPT_ALIGN];
    while (n > 0) {
        size_t k = n < sizeof z ? n : sizeof z;
        w_bytes(w, z, k);
        n -= k;
    }
}
static uint64_t align_up(uint64_t x) { return (x + CKPT_ALIGN - 1) / CKPT_ALIGN * CKPT_ALIGN; }

int ckpt_writer_commit(CkptWriter *w, char *err, size_t errlen) {
    DINO_ASSERT(w);
    // Header length, then the data layout.
    uint64_t header = CKPT_PREAMBLE;
    for (int i = 0; i < w->n_meta; i++)
        header += 8 + strlen(w->meta[i].key) + strlen(w->meta[i].value);
    for (int i = 0; i < w->n_t; i++)
        header += 4 + strlen(w->t[i].name) + 4 + 4 + 8 * (uint64_t)w->t[i].ndim + 8 + 8;
    uint64_t data_offset = align_up(header);
    uint64_t pos = 0;
    for (int i = 0; i < w->n_t; i++) {
        w->t[i].offset = pos;
        pos = align_up(pos + w->t[i].nbytes);
    }
    uint64_t data_len = pos;

    w->f = atomic_open(w->path, err, errlen);
    if (!w->f) {
        writer_free(w);
        return -1;
    }
    xxh64_init(&w->h, 0);

    w_bytes(w, CKPT_MAGIC, 8);
    w_u32(w, CKPT_VERSION);
    w_u32(w, 0);  // flags
    w_u32(w, (uint32_t)w->n_meta);
    w_u32(w, (uint32_t)w->n_t);
    w_u64(w, header);
    w_u64(w, data_offset);
    w_u64(w, data_len);
    w_zeros(w, CKPT_PREAMBLE - 48);
    for (int i = 0; i < w->n_meta; i++) {
        uint32_t kl = (uint32_t)strlen(w->meta[i].key), vl = (uint32_t)strlen(w->meta[i].value);
        w_u32(w, kl);
        w_bytes(w, w->meta[i].key, kl);
        w_u32(w, vl);
        w_bytes(w, w->meta[i].value, vl);
    }
    for (int i = 0; i < w->n_t; i++) {
        const WTensor *t = &w->t[i];
        uint32_t nl = (uint32_t)strlen(t->name);
        w_u32(w, nl);
        w_bytes(w, t->name, nl);
        w_u32(w, (uint32_t)t->dtype);
        w_u32(w, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) w_u64(w, (uint64_t)t->shape[d]);
        w_u64(w, t->offset);
        w_u64(w, t->nbytes);
    }
    w_zeros(w, data_offset - header);
    for (int i = 0; i < w->n_t; i++) {
        const WTensor *t = &w->t[i];
        w_bytes(w, t->data, t->nbytes);
        uint64_t end = (i + 1 < w->n_t) ? w->t[i + 1].offset : data_len;
        w_zeros(w, end - t->offset - t->nbytes);
    }
    // The checksum itself is not hashed.
    uint64_t digest = xxh64_digest(&w->h);
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(digest >> (8 * i));
    atomic_write(w->f, b, 8);
    int rc = atomic_commit(w->f, err, errlen);
    writer_free(w);
    return rc;
}

// ---------------------------------------------------------------- reading

struct Ckpt {
    uint8_t *buf;  // the whole file, 64-byte aligned
    size_t size;
    int n_meta;
    char **keys, **values;
    int n_t;
    CkptTensor *t;
    KeyIndex meta_index, tensor_index;  // by key and by name: duplicates and lookups in O(1)
};

void ckpt_close(Ckpt *c) {
    if (!c) return;
    for (int i = 0; i < c->n_meta; i++) {
        free(c->keys[i]);
        free(c->values[i]);
    }
    free(c->keys);
    free(c->values);
    free(c->t);
    free(c->buf);
    key_index_free(&c->meta_index);
    key_index_free(&c->tensor_index);
    free(c);
}

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd_u64(const uint8_t *p) {
    return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}

// A bounded cursor over the header: every read checks that it stays inside.
typedef struct {
    const uint8_t *p;
    uint64_t pos, end;
    int bad;
} Cursor;

static int cur_take(Cursor *c, uint64_t n, const uint8_t **out) {
    if (c->bad || n > c->end - c->pos) {
        c->bad = 1;
        return -1;
    }
    *out = c->p + c->pos;
    c->pos += n;
    return 0;
}
static uint32_t cur_u32(Cursor *c) {
    const uint8_t *q;
    return cur_take(c, 4, &q) ? 0 : rd_u32(q);
}
static uint64_t cur_u64(Cursor *c) {
    const uint8_t *q;
    return cur_take(c, 8, &q) ? 0 : rd_u64(q);
}

static int read_whole_file(const char *path, uint8_t **out, size_t *size, char *err,
                           size_t errlen) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        dino_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dino_errf(err, errlen, "%s is not a regular file", path);
        close(fd);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, CKPT_ALIGN, n ? n : 1) != 0) {
        dino_errf(err, errlen, "%s: out of memory reading %zu bytes", path, n);
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            dino_errf(err, errlen, "cannot read %s: %s", path, r < 0 ? strerror(errno) : "file shrank");
            free(buf);
            close(fd);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *size = n;
    return 0;
}

int ckpt_is_native(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char m[8];
    int ok = fread(m, 1, 8, f) == 8 && memcmp(m, CKPT_MAGIC, 8) == 0;
    fclose(f);
    return ok;
}

static int has_nul(const uint8_t *p, size_t n) { return memchr(p, 0, n) != NULL; }

// The preamble's fields (docs/FORMATS.md §1).
typedef struct {
    uint32_t n_meta, n_t;
    uint64_t header, data_offset, data_len;
} Preamble;

#define FAIL(...)                            \
    do {                                     \
        dino_errf(err, errlen, __VA_ARGS__); \
        return -1;                           \
    } while (0)

// Checks magic, size, checksum, version and layout before anything is parsed.
static int check_preamble(const uint8_t *buf, size_t size, const char *path, Preamble *p,
                          char *err, size_t errlen) {
    if (size < 8 || memcmp(buf, CKPT_MAGIC, 8) != 0)
        FAIL("%s is not a dino.c native file (wrong magic bytes)", path);
    if (!host_is_little_endian())
        FAIL("%s: the native format is little-endian and this host is not", path);
    if (size < CKPT_PREAMBLE + 8)
        FAIL("%s is truncated: %zu bytes is shorter than the %u-byte preamble", path, size,
             CKPT_PREAMBLE + 8);
    uint32_t version = rd_u32(buf + 8);
    uint32_t flags = rd_u32(buf + 12);
    uint32_t n_meta = rd_u32(buf + 16);
    uint32_t n_t = rd_u32(buf + 20);
    uint64_t header = rd_u64(buf + 24);
    uint64_t data_offset = rd_u64(buf + 32);
    uint64_t data_len = rd_u64(buf + 40);
    // Size first: a truncated file says so rather than "checksum mismatch".
    // A plausible layout that asks for more bytes than there are is a cut
    // file. (Fields are bounded before the sum so huge values cannot overflow.)
    if (data_offset >= CKPT_MAX_FIELD || data_len >= CKPT_MAX_FIELD ||
        data_offset + data_len + 8 != size) {
        if (data_offset < CKPT_MAX_FIELD && data_len < CKPT_MAX_FIELD &&
            data_offset + data_len + 8 > size && header >= CKPT_PREAMBLE && header <= data_offset &&
            data_offset % CKPT_ALIGN == 0 && data_len % CKPT_ALIGN == 0)
            FAIL("%s is truncated: expected %llu bytes, has %zu", path,
                 (unsigned long long)(data_offset + data_len + 8), size);
        FAIL("%s is corrupt: its header does not match the file size (%zu bytes)", path, size);
    }
    uint64_t stored = rd_u64(buf + size - 8);
    uint64_t actual = xxh64(buf, size - 8, 0);
    if (stored != actual)
        FAIL("%s is corrupt: checksum mismatch (stored %016llx, computed %016llx)", path,
             (unsigned long long)stored, (unsigned long long)actual);
    // From here on the bytes are what the writer wrote, unless someone forged
    // a checksum; everything is still bounds-checked.
    if (version != CKPT_VERSION)
        FAIL("%s has native format version %u; this build reads version %u", path, version,
             CKPT_VERSION);
    if (flags != 0) FAIL("%s has unknown format flags 0x%x", path, flags);
    if (n_meta > CKPT_MAX_META || n_t > CKPT_MAX_TENSORS)
        FAIL("%s is corrupt: %u metadata entries and %u tensors exceed the limits", path, n_meta,
             n_t);
    if (header < CKPT_PREAMBLE || header > data_offset || data_offset % CKPT_ALIGN != 0 ||
        data_len % CKPT_ALIGN != 0)
        FAIL("%s is corrupt: bad header length or data offset", path);
    for (uint64_t i = header; i < data_offset; i++)
        if (buf[i] != 0) FAIL("%s is corrupt: non-zero header padding", path);
    if ((uint64_t)n_meta * CKPT_MIN_META_BYTES + (uint64_t)n_t * CKPT_MIN_TENSOR_BYTES >
        header - CKPT_PREAMBLE)
        FAIL("%s is corrupt: %u metadata entries and %u tensors cannot fit in a %llu-byte header",
             path, n_meta, n_t, (unsigned long long)header);
    *p = (Preamble){n_meta, n_t, header, data_offset, data_len};
    return 0;
}

static int read_meta(Ckpt *c, Cursor *cu, uint32_t n_meta, const char *path, char *err,
                     size_t errlen) {
    c->keys = callocCheck(n_meta ? n_meta : 1, sizeof *c->keys);
    c->values = callocCheck(n_meta ? n_meta : 1, sizeof *c->values);
    for (uint32_t i = 0; i < n_meta; i++) {
        const uint8_t *k, *v;
        uint32_t kl = cur_u32(cu);
        if (kl == 0 || kl > CKPT_MAX_KEY || cur_take(cu, kl, &k))
            FAIL("%s is corrupt: metadata key %u has a bad length", path, i);
        uint32_t vl = cur_u32(cu);
        if (vl > CKPT_MAX_VALUE || cur_take(cu, vl, &v))
            FAIL("%s is corrupt: metadata value %u has a bad length", path, i);
        if (has_nul(k, kl) || has_nul(v, vl))
            FAIL("%s is corrupt: metadata entry %u contains a NUL byte", path, i);
        c->keys[i] = mallocCheck(kl + 1);
        memcpy(c->keys[i], k, kl);
        c->keys[i][kl] = 0;
        c->values[i] = mallocCheck(vl + 1);
        memcpy(c->values[i], v, vl);
        c->values[i][vl] = 0;
        c->n_meta = (int)i + 1;
        if (key_index_add(&c->meta_index, 0, c->keys[i], kl, i) != i)
            FAIL("%s is corrupt: metadata key '%s' appears twice", path, c->keys[i]);
    }
    return 0;
}

static int read_tensor_table(Ckpt *c, Cursor *cu, const Preamble *p, const char *path, char *err,
                             size_t errlen) {
    c->t = callocCheck(p->n_t ? p->n_t : 1, sizeof *c->t);
    uint64_t prev_end = 0;
    for (uint32_t i = 0; i < p->n_t; i++) {
        CkptTensor *t = &c->t[i];
        const uint8_t *nm;
        uint32_t nl = cur_u32(cu);
        if (nl == 0 || nl >= sizeof t->name || cur_take(cu, nl, &nm) || has_nul(nm, nl))
            FAIL("%s is corrupt: tensor %u has a bad name length", path, i);
        memcpy(t->name, nm, nl);
        t->name[nl] = 0;
        uint32_t dt = cur_u32(cu);
        uint32_t nd = cur_u32(cu);
        size_t es = dtype_size(dt);
        if (cu->bad || es == 0) FAIL("%s is corrupt: tensor '%s' has unknown dtype %u", path, t->name, dt);
        if (nd > 8) FAIL("%s is corrupt: tensor '%s' has %u dimensions (max 8)", path, t->name, nd);
        t->dtype = (DType)dt;
        t->ndim = (int)nd;
        uint64_t numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t s = cur_u64(cu);
            if (s > (uint64_t)INT64_MAX || (s && numel > UINT64_MAX / s))
                FAIL("%s is corrupt: tensor '%s' has an impossible shape", path, t->name);
            t->shape[d] = (int64_t)s;
            numel *= s;
        }
        uint64_t off = cur_u64(cu), nbytes = cur_u64(cu);
        if (cu->bad) FAIL("%s is corrupt: the tensor table runs past its header", path);
        if (numel > UINT64_MAX / es || numel * es != nbytes)
            FAIL("%s is corrupt: tensor '%s' has %llu bytes for its shape", path, t->name,
                 (unsigned long long)nbytes);
        if (off % CKPT_ALIGN != 0 || off < prev_end || off > p->data_len || nbytes > p->data_len - off)
            FAIL("%s is corrupt: tensor '%s' lies outside the data section or overlaps another",
                 path, t->name);
        prev_end = off + nbytes;
        t->numel = (size_t)numel;
        t->data = c->buf + p->data_offset + off;
        c->n_t = (int)i + 1;
    }
    if (cu->pos != p->header)
        FAIL("%s is corrupt: %llu unused header bytes", path, (unsigned long long)(p->header - cu->pos));
    for (int i = 0; i < c->n_t; i++)
        if (key_index_add(&c->tensor_index, 0, c->t[i].name, strlen(c->t[i].name), (size_t)i) !=
            (size_t)i)
            FAIL("%s is corrupt: tensor '%s' appears twice", path, c->t[i].name);
    return 0;
}
#undef FAIL

Ckpt *ckpt_open(const char *path, char *err, size_t errlen) {
    uint8_t *buf;
    size_t size;
    if (read_whole_file(path, &buf, &size, err, errlen)) return NULL;
    Ckpt *c = callocCheck(1, sizeof *c);
    c->buf = buf;
    c->size = size;
    Preamble p;
    Cursor cu;
    if (check_preamble(buf, size, path, &p, err, errlen)) goto fail;
    cu = (Cursor){buf, CKPT_PREAMBLE, p.header, 0};
    if (read_meta(c, &cu, p.n_meta, path, err, errlen)) goto fail;
    if (read_tensor_table(c, &cu, &p, path, err, errlen)) goto fail;
    return c;
fail:
    ckpt_close(c);
    return NULL;
}

const char *ckpt_meta(const Ckpt *c, const char *key) {
    size_t i = key_index_get(&c->meta_index, 0, key, strlen(key));
    return i == KEY_INDEX_NONE ? NULL : c->values[i];
}

int ckpt_n_meta(const Ckpt *c) { return c->n_meta; }

void ckpt_meta_at(const Ckpt *c, int i, const char **key, const char **value) {
    DINO_ASSERT(i >= 0 && i < c->n_meta);
    *key = c->keys[i];
    *value = c->values[i];
}

int ckpt_n_tensors(const Ckpt *c) { return c->n_t; }

const CkptTensor *ckpt_tensor_at(const Ckpt *c, int i) {
    DINO_ASSERT(i >= 0 && i < c->n_t);
    return &c->t[i];
}

const CkptTensor *ckpt_tensor(const Ckpt *c, const char *name) {
    size_t i = key_index_get(&c->tensor_index, 0, name, strlen(name));
    return i == KEY_INDEX_NONE ? NULL : &c->t[i];
}
