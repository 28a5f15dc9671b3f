// The .pth reader (pth.h): libzip for the container, pickle.c for data.pkl,
// storages loaded lazily (only the tensors asked for are read, so loading a
// teacher from a training checkpoint does not read the optimizer's moments)
// and cached by key, since several tensors may share one storage.
#include "io/pth.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>
#include <zlib.h>

#include "common.h"

#define PTH_MAX_PICKLE ((zip_uint64_t)1 << 30)

typedef struct {
    const PickleValue *storage;
    uint8_t *bytes;
} StorageCache;

struct PthFile {
    char *path;
    zip_t *za;
    char *root;  // "archive/" etc., with the slash
    PickleDoc *doc;
    StorageCache *cache;
    int n_cache, cap_cache;
};

static const uint8_t LEGACY_MAGIC[15] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                         0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

int pth_sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t b[512];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n >= 4 && memcmp(b, "PK\x03\x04", 4) == 0) return 1;
    if (n >= 15 && memcmp(b, LEGACY_MAGIC, 15) == 0) return 1;
    if (n >= 262 && memcmp(b + 257, "ustar", 5) == 0) return 1;  // oldest torch format: refused by pth_open
    return 0;
}

void pth_close(PthFile *f) {
    if (!f) return;
    for (int i = 0; i < f->n_cache; i++) free(f->cache[i].bytes);
    free(f->cache);
    pickle_free(f->doc);
    if (f->za) zip_discard(f->za);
    free(f->root);
    free(f->path);
    free(f);
}

const PickleValue *pth_root(const PthFile *f) { return pickle_root(f->doc); }

// Reads a whole STORED entry into a new buffer. want_size: the exact size
// required (or UINT64_MAX for any up to `cap`).
static int read_entry(PthFile *f, const char *name, uint64_t want_size, uint64_t cap,
                      uint8_t **out, size_t *len, char *err, size_t errlen) {
    zip_int64_t idx = zip_name_locate(f->za, name, 0);
    if (idx < 0) {
        dino_errf(err, errlen, "%s has no entry %s (an incomplete or non-PyTorch zip)", f->path, name);
        return -1;
    }
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(f->za, (zip_uint64_t)idx, 0, &st) != 0) {
        dino_errf(err, errlen, "%s: cannot read the directory entry of %s", f->path, name);
        return -1;
    }
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
        dino_errf(err, errlen, "%s: entry %s is encrypted, which torch.save never does", f->path, name);
        return -1;
    }
    if ((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method != ZIP_CM_STORE) {
        dino_errf(err, errlen, "%s: entry %s is compressed (method %d); torch.save writes uncompressed "
                "entries, so re-save the file with torch.save", f->path, name, (int)st.comp_method);
        return -1;
    }
    if (!(st.valid & ZIP_STAT_SIZE)) {
        dino_errf(err, errlen, "%s: entry %s has no size", f->path, name);
        return -1;
    }
    if (want_size != UINT64_MAX && st.size != want_size) {
        dino_errf(err, errlen, "%s: entry %s has %llu bytes but its tensors need %llu", f->path, name,
                (unsigned long long)st.size, (unsigned long long)want_size);
        return -1;
    }
    if (st.size > cap) {
        dino_errf(err, errlen, "%s: entry %s is implausibly large (%llu bytes)", f->path, name,
                (unsigned long long)st.size);
        return -1;
    }
    // Raw (ZIP_FL_COMPRESSED) reading of a STORED entry gives its bytes as
    // they are; we check the CRC ourselves because torch may write 0 there.
    zip_file_t *zf = zip_fopen_index(f->za, (zip_uint64_t)idx, ZIP_FL_COMPRESSED);
    if (!zf) {
        dino_errf(err, errlen, "%s: cannot open entry %s: %s", f->path, name, zip_strerror(f->za));
        return -1;
    }
    size_t n = (size_t)st.size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        zip_fclose(zf);
        dino_errf(err, errlen, "%s: out of memory reading %s (%zu bytes)", f->path, name, n);
        return -1;
    }
    size_t got = 0;
    while (got < n) {
        zip_int64_t r = zip_fread(zf, buf + got, n - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    zip_fclose(zf);
    if (got != n) {
        free(buf);
        dino_errf(err, errlen, "%s is truncated or corrupt: entry %s has %zu of %zu bytes", f->path,
                name, got, n);
        return -1;
    }
    if ((st.valid & ZIP_STAT_CRC) && st.crc != 0) {
        uLong crc = crc32(0L, Z_NULL, 0);
        size_t k = 0;
        while (k < n) {
            uInt chunk = (uInt)((n - k) > (1u << 30) ? (1u << 30) : (n - k));
            crc = crc32(crc, buf + k, chunk);
            k += chunk;
        }
        if ((uint32_t)crc != st.crc) {
            free(buf);
            dino_errf(err, errlen, "%s is corrupt: entry %s fails its CRC check", f->path, name);
            return -1;
        }
    }
    *out = buf;
    *len = n;
    return 0;
}

static int has_entry(PthFile *f, const char *leaf) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", f->root, leaf);
    return zip_name_locate(f->za, name, 0) >= 0;
}

PthFile *pth_open(const char *path, char *err, size_t errlen) {
    uint8_t head[512] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        dino_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t hn = fread(head, 1, sizeof head, fp);
    fclose(fp);
    if (hn >= 15 && memcmp(head, LEGACY_MAGIC, 15) == 0) {
        dino_errf(err, errlen, "%s is in PyTorch's legacy (pre-1.6) format, which is not read; "
                "re-save it with a recent torch: torch.save(torch.load(f), f2)", path);
        return NULL;
    }
    if (hn >= 262 && memcmp(head + 257, "ustar", 5) == 0) {
        dino_errf(err, errlen, "%s is in PyTorch's oldest (tar) format, which is not read; re-save it "
                "with a recent torch: torch.save(torch.load(f), f2)", path);
        return NULL;
    }
    if (hn >= 8 && memcmp(head, "PYTORCH1", 8) == 0) {
        dino_errf(err, errlen, "%s is in PyTorch's preview format, which is not read", path);
        return NULL;
    }
    if (hn < 4 || memcmp(head, "PK\x03\x04", 4) != 0) {
        dino_errf(err, errlen, "%s is not a PyTorch checkpoint (no zip signature)", path);
        return NULL;
    }
    int zerr = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        dino_errf(err, errlen, "%s is not a readable zip archive (truncated or corrupt?): %s", path,
                zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return NULL;
    }
    PthFile *f = callocCheck(1, sizeof *f);
    f->za = za;
    f->path = strdup(path);
    DINO_ASSERT(f->path);
    zip_int64_t ne = zip_get_num_entries(za, 0);
    const char *first = ne > 0 ? zip_get_name(za, 0, 0) : NULL;
    const char *slash = first ? strchr(first, '/') : NULL;
    if (!slash) {
        dino_errf(err, errlen, "%s is a zip but not a torch.save file (no root folder)", path);
        pth_close(f);
        return NULL;
    }
    size_t rl = (size_t)(slash - first) + 1;
    if (rl > 256) {
        dino_errf(err, errlen, "%s: its root folder name is too long", path);
        pth_close(f);
        return NULL;
    }
    f->root = mallocCheck(rl + 1);
    memcpy(f->root, first, rl);
    f->root[rl] = 0;
    if (has_entry(f, "constants.pkl") || has_entry(f, "code/")) {
        dino_errf(err, errlen, "%s is a TorchScript archive (torch.jit.save), not a torch.save file; "
                "save the model's state_dict() with torch.save instead", path);
        pth_close(f);
        return NULL;
    }
    char name[512];
    uint8_t *buf;
    size_t len;
    snprintf(name, sizeof name, "%sbyteorder", f->root);
    if (zip_name_locate(za, name, 0) >= 0) {
        if (read_entry(f, name, UINT64_MAX, 16, &buf, &len, err, errlen)) {
            pth_close(f);
            return NULL;
        }
        int little = len == 6 && memcmp(buf, "little", 6) == 0;
        int big = len == 3 && memcmp(buf, "big", 3) == 0;
        free(buf);
        if (!little) {
            dino_errf(err, errlen, "%s was saved on a %s machine; only little-endian files are read",
                    path, big ? "big-endian" : "machine of unknown byte order");
            pth_close(f);
            return NULL;
        }
    }
    snprintf(name, sizeof name, "%sdata.pkl", f->root);
    if (read_entry(f, name, UINT64_MAX, PTH_MAX_PICKLE, &buf, &len, err, errlen)) {
        pth_close(f);
        return NULL;
    }
    f->doc = pickle_parse(buf, len, path, err, errlen);
    free(buf);
    if (!f->doc) {
        pth_close(f);
        return NULL;
    }
    return f;
}

// The bytes storage s declares (elements x element size), or -1 with err
// filled when that product does not fit in 64 bits.
static int storage_nbytes(const PthFile *f, const PickleValue *s, uint64_t *nbytes, char *err,
                          size_t errlen) {
    size_t es = (size_t)dtype_traits(s->st)->bits / 8;
    if (s->numel > UINT64_MAX / es) {
        dino_errf(err, errlen, "%s: storage '%s' declares %llu %s elements, more than 2^64 bytes",
                f->path, s->s, (unsigned long long)s->numel, dtype_traits(s->st)->name);
        return -1;
    }
    *nbytes = s->numel * es;
    return 0;
}

int pth_storage_check(PthFile *f, const PickleValue *s, char *err, size_t errlen) {
    char name[512];
    snprintf(name, sizeof name, "%sdata/%s", f->root, s->s);
    zip_int64_t idx = zip_name_locate(f->za, name, 0);
    zip_stat_t st;
    zip_stat_init(&st);
    if (idx < 0 || zip_stat_index(f->za, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        dino_errf(err, errlen, "%s has no entry %s (an incomplete or non-PyTorch zip)", f->path, name);
        return -1;
    }
    uint64_t nbytes;
    if (storage_nbytes(f, s, &nbytes, err, errlen)) return -1;
    if (st.size != nbytes) {
        dino_errf(err, errlen, "%s: entry %s has %llu bytes but its tensors need %llu", f->path, name,
                (unsigned long long)st.size, (unsigned long long)nbytes);
        return -1;
    }
    return 0;
}

void pth_release_storages(PthFile *f) {
    for (int i = 0; i < f->n_cache; i++) free(f->cache[i].bytes);
    f->n_cache = 0;
}

size_t pth_tensor_numel(const PickleValue *t) {
    size_t n = 1;
    for (int k = 0; k < t->ndim; k++) n *= (size_t)t->shape[k];
    return n;
}

static const uint8_t *storage_bytes(PthFile *f, const PickleValue *s, char *err, size_t errlen) {
    for (int i = 0; i < f->n_cache; i++)
        if (f->cache[i].storage == s) return f->cache[i].bytes;
    uint64_t nbytes;
    if (storage_nbytes(f, s, &nbytes, err, errlen)) return NULL;
    char name[512];
    snprintf(name, sizeof name, "%sdata/%s", f->root, s->s);
    uint8_t *buf;
    size_t len;
    if (read_entry(f, name, nbytes, UINT64_MAX, &buf, &len, err, errlen)) return NULL;
    if (f->n_cache == f->cap_cache) {
        f->cap_cache = f->cap_cache ? 2 * f->cap_cache : 16;
        f->cache = reallocCheck(f->cache, (size_t)f->cap_cache * sizeof *f->cache);
    }
    f->cache[f->n_cache].storage = s;
    f->cache[f->n_cache].bytes = buf;
    f->n_cache++;
    return buf;
}

int pth_tensor_read_f32(PthFile *f, const PickleValue *t, float *out, char *err, size_t errlen) {
    DINO_ASSERT(t && t->type == PV_TENSOR);
    const PickleValue *s = t->storage;
    if (!dtype_traits(s->st)->reads_as_f32) {
        dino_errf(err, errlen, "%s: a %s tensor cannot be read as float", f->path, dtype_traits(s->st)->name);
        return -1;
    }
    size_t numel = pth_tensor_numel(t);
    if (numel == 0) return 0;
    const uint8_t *base = storage_bytes(f, s, err, errlen);
    if (!base) return -1;
    // The pickle reader already checked offset + sum (size-1)*stride < numel.
    int contiguous = 1;
    int64_t expect = 1;
    for (int k = t->ndim - 1; k >= 0; k--) {
        if (t->shape[k] != 1 && t->stride[k] != expect) contiguous = 0;
        expect *= t->shape[k];
    }
    if (contiguous) {
        uint64_t o = (uint64_t)t->offset;
        dtype_read_f32(s->st, base + (size_t)o * (size_t)(dtype_traits(s->st)->bits / 8), out, numel);
        return 0;
    }
    int64_t idx[8] = {0};
    for (size_t i = 0; i < numel; i++) {
        uint64_t e = (uint64_t)t->offset;
        for (int k = 0; k < t->ndim; k++) e += (uint64_t)idx[k] * (uint64_t)t->stride[k];
        out[i] = dtype_elem_f32(s->st, base, e);
        for (int k = t->ndim - 1; k >= 0; k--) {
            if (++idx[k] < t->shape[k]) break;
            idx[k] = 0;
        }
    }
    return 0;
}
