// .npy reading and writing (see npy.h; docs/FORMATS.md §6). The header is a
// Python dict literal; we parse exactly the three keys NumPy writes and
// reject anything else, like NumPy's own reader.
#include "eval/npy.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

// ---------------------------------------------------------------- writing

int npy_write(const char *path, const char *descr, int ndim, const int64_t *shape,
              const void *data, char *err, size_t errlen) {
    size_t item;
    if (!strcmp(descr, "<f4") || !strcmp(descr, "<i4")) item = 4;
    else if (!strcmp(descr, "<f8") || !strcmp(descr, "<i8")) item = 8;
    else if (!strcmp(descr, "|u1")) item = 1;
    else return dino_errf(err, errlen, "npy_write: unsupported dtype %s", descr);
    if (ndim < 0 || ndim > NPY_MAX_DIMS) return dino_errf(err, errlen, "npy_write: bad ndim %d", ndim);

    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descr);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(dict + len, sizeof dict - len, "%lld%s", (long long)shape[i],
                        (ndim == 1 || i < ndim - 1) ? ", " : "");
        numel *= (size_t)shape[i];
    }
    // NumPy writes "(5,)" and "(3, 4)": one trailing comma for 1-D, none after the last otherwise.
    if (ndim == 1) len -= 1;  // "(5, " -> "(5,"
    len += snprintf(dict + len, sizeof dict - len, "), }");

    // magic(6) + version(2) + len(2) + header, padded with spaces, ending in '\n', total % 64 == 0.
    size_t pre = 10;
    size_t total = pre + (size_t)len + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - pre;
    char *hdr = mallocCheck(padded);
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(hlen & 0xff);
    hdr[9] = (char)((hlen >> 8) & 0xff);
    memcpy(hdr + pre, dict, (size_t)len);
    memset(hdr + pre + len, ' ', hlen - (size_t)len - 1);
    hdr[padded - 1] = '\n';

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(hdr);
        return dino_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    int ok = fwrite(hdr, 1, padded, f) == padded;
    free(hdr);
    if (ok && numel) ok = fwrite(data, item, numel, f) == numel;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return dino_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

int npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data, char *err,
                  size_t errlen) {
    return npy_write(path, "<f4", ndim, shape, data, err, errlen);
}

int npy_write_i64(const char *path, int ndim, const int64_t *shape, const int64_t *data,
                  char *err, size_t errlen) {
    return npy_write(path, "<i8", ndim, shape, data, err, errlen);
}

// ---------------------------------------------------------------- header parsing

typedef struct {
    const char *p, *end;
} Cursor;

static void skip_ws(Cursor *c) {
    while (c->p < c->end && isspace((unsigned char)*c->p)) c->p++;
}

static int eat(Cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int parse_str(Cursor *c, char *out, size_t n) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        if (k + 1 >= n) return -1;
        out[k++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    out[k] = 0;
    return 0;
}

typedef struct {
    char descr[16];
    int fortran;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
} Header;

static int parse_header(const char *s, size_t n, Header *h, char *why, size_t whylen) {
    Cursor c = {s, s + n};
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!eat(&c, '{')) return dino_errf(why, whylen, "header is not a dict");
    for (;;) {
        if (eat(&c, '}')) break;
        char key[32];
        if (parse_str(&c, key, sizeof key) != 0) return dino_errf(why, whylen, "bad header key");
        if (!eat(&c, ':')) return dino_errf(why, whylen, "missing ':' in header");
        if (!strcmp(key, "descr")) {
            if (parse_str(&c, h->descr, sizeof h->descr) != 0)
                return dino_errf(why, whylen, "descr is not a simple dtype string");
            seen_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            skip_ws(&c);
            if (c.end - c.p >= 4 && !strncmp(c.p, "True", 4)) {
                h->fortran = 1;
                c.p += 4;
            } else if (c.end - c.p >= 5 && !strncmp(c.p, "False", 5)) {
                h->fortran = 0;
                c.p += 5;
            } else {
                return dino_errf(why, whylen, "fortran_order is not True or False");
            }
            seen_fortran = 1;
        } else if (!strcmp(key, "shape")) {
            if (!eat(&c, '(')) return dino_errf(why, whylen, "shape is not a tuple");
            h->ndim = 0;
            for (;;) {
                if (eat(&c, ')')) break;
                skip_ws(&c);
                char *e;
                errno = 0;
                long long v = strtoll(c.p, &e, 10);
                if (e == c.p || errno || v < 0) return dino_errf(why, whylen, "bad shape entry");
                if (h->ndim >= NPY_MAX_DIMS)
                    return dino_errf(why, whylen, "more than %d dimensions", NPY_MAX_DIMS);
                h->shape[h->ndim++] = v;
                c.p = e;
                skip_ws(&c);
                if (c.p < c.end && *c.p == 'L') c.p++;  // Python 2 long suffix
                if (!eat(&c, ',')) {
                    if (!eat(&c, ')')) return dino_errf(why, whylen, "bad shape tuple");
                    break;
                }
            }
            seen_shape = 1;
        } else {
            return dino_errf(why, whylen, "unexpected header key '%s'", key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) return dino_errf(why, whylen, "bad header dict");
            break;
        }
    }
    if (!seen_descr || !seen_fortran || !seen_shape)
        return dino_errf(why, whylen, "header lacks descr, fortran_order or shape");
    return 0;
}

// ---------------------------------------------------------------- reading

typedef enum { K_FLOAT, K_INT, K_UINT, K_BOOL } Kind;

typedef struct {
    Kind kind;
    int size;
    int swap;  // big-endian data on this little-endian host
} DtypeInfo;

static int parse_descr(const char *d, DtypeInfo *t) {
    char endian = d[0];
    if (endian != '<' && endian != '>' && endian != '|' && endian != '=') return -1;
    char kind = d[1];
    char *e;
    long size = strtol(d + 2, &e, 10);
    if (e == d + 2 || *e) return -1;
    t->swap = endian == '>' && size > 1;
    t->size = (int)size;
    switch (kind) {
    case 'f': t->kind = K_FLOAT; return (size == 2 || size == 4 || size == 8) ? 0 : -1;
    case 'i': t->kind = K_INT; return (size == 1 || size == 2 || size == 4 || size == 8) ? 0 : -1;
    case 'u': t->kind = K_UINT; return (size == 1 || size == 2 || size == 4 || size == 8) ? 0 : -1;
    case 'b': t->kind = K_BOOL; return size == 1 ? 0 : -1;
    default: return -1;
    }
}

static float half_to_float(uint16_t h) {
    int s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

// Element i of raw data as double (exact for every integer up to 2^53) and,
// for integer kinds, as int64 exactly.
static void load_elem(const uint8_t *p, const DtypeInfo *t, double *dv, int64_t *iv) {
    uint8_t b[8];
    for (int k = 0; k < t->size; k++) b[k] = t->swap ? p[t->size - 1 - k] : p[k];
    switch (t->kind) {
    case K_FLOAT:
        if (t->size == 2) {
            uint16_t h;
            memcpy(&h, b, 2);
            *dv = half_to_float(h);
        } else if (t->size == 4) {
            float f;
            memcpy(&f, b, 4);
            *dv = f;
        } else {
            memcpy(dv, b, 8);
        }
        *iv = 0;
        return;
    case K_INT: {
        int64_t v;
        if (t->size == 1) v = (int8_t)b[0];
        else if (t->size == 2) { int16_t x; memcpy(&x, b, 2); v = x; }
        else if (t->size == 4) { int32_t x; memcpy(&x, b, 4); v = x; }
        else memcpy(&v, b, 8);
        *iv = v;
        *dv = (double)v;
        return;
    }
    case K_UINT: {
        uint64_t v;
        if (t->size == 1) v = b[0];
        else if (t->size == 2) { uint16_t x; memcpy(&x, b, 2); v = x; }
        else if (t->size == 4) { uint32_t x; memcpy(&x, b, 4); v = x; }
        else memcpy(&v, b, 8);
        *iv = (int64_t)v;
        *dv = (double)v;
        return;
    }
    case K_BOOL:
        *iv = b[0] != 0;
        *dv = (double)*iv;
        return;
    }
}

// Reads header and raw bytes. Returns the raw buffer (malloc'd) or NULL.
static uint8_t *read_raw(const char *path, NpyInfo *info, int *fortran, DtypeInfo *dt, char *err,
                         size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        dino_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    uint8_t pre[12];
    char why[160] = "";
    uint8_t *raw = NULL;
    char *hdr = NULL;
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        dino_errf(err, errlen, "%s is not a .npy file (bad magic)", path);
        goto out;
    }
    int major = pre[6];
    size_t hlen;
    if (major == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) goto truncated;
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 8, 1, 4, f) != 4) goto truncated;
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        dino_errf(err, errlen, "%s: unsupported .npy version %d.%d", path, major, pre[7]);
        goto out;
    }
    if (hlen > 1000000) {
        dino_errf(err, errlen, "%s: .npy header of %zu bytes is implausibly long", path, hlen);
        goto out;
    }
    hdr = mallocCheck(hlen + 1);
    if (fread(hdr, 1, hlen, f) != hlen) goto truncated;
    hdr[hlen] = 0;
    Header h = {0};
    if (parse_header(hdr, hlen, &h, why, sizeof why) != 0) {
        dino_errf(err, errlen, "%s: bad .npy header: %s", path, why);
        goto out;
    }
    if (parse_descr(h.descr, dt) != 0) {
        dino_errf(err, errlen, "%s: unsupported .npy dtype '%s'", path, h.descr);
        goto out;
    }
    info->ndim = h.ndim;
    info->numel = 1;
    for (int i = 0; i < h.ndim; i++) {
        info->shape[i] = h.shape[i];
        if (h.shape[i] && info->numel > SIZE_MAX / 16 / (size_t)h.shape[i]) {
            dino_errf(err, errlen, "%s: .npy shape is too large", path);
            goto out;
        }
        info->numel *= (size_t)h.shape[i];
    }
    snprintf(info->descr, sizeof info->descr, "%s", h.descr);
    *fortran = h.fortran;
    size_t nbytes = info->numel * (size_t)dt->size;
    // The data must be in the file before memory is allocated for it: a
    // 100-byte file declaring 10^12 elements ended in an out-of-memory exit
    // (found by fuzz_npy).
    struct stat st;
    long pos = ftell(f);
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && pos >= 0 && (off_t)pos <= st.st_size &&
        (uint64_t)(st.st_size - (off_t)pos) < (uint64_t)nbytes)
        goto truncated;
    raw = mallocCheck(nbytes ? nbytes : 1);
    if (nbytes && fread(raw, 1, nbytes, f) != nbytes) {
        free(raw);
        raw = NULL;
        goto truncated;
    }
    goto out;
truncated:
    dino_errf(err, errlen, "%s: .npy file is truncated", path);
out:
    free(hdr);
    fclose(f);
    return raw;
}

// C-order index of the element stored at Fortran-order position k.
static size_t fortran_to_c(size_t k, const NpyInfo *info) {
    size_t idx = 0, stride = 1;
    size_t rem = k;
    size_t coord[NPY_MAX_DIMS];
    for (int d = 0; d < info->ndim; d++) {
        coord[d] = rem % (size_t)info->shape[d];
        rem /= (size_t)info->shape[d];
    }
    for (int d = info->ndim - 1; d >= 0; d--) {
        idx += coord[d] * stride;
        stride *= (size_t)info->shape[d];
    }
    return idx;
}

float *npy_read_f32(const char *path, NpyInfo *info, char *err, size_t errlen) {
    int fortran;
    DtypeInfo dt;
    uint8_t *raw = read_raw(path, info, &fortran, &dt, err, errlen);
    if (!raw) return NULL;
    float *out = mallocCheck(info->numel * sizeof(float) + 1);
    for (size_t k = 0; k < info->numel; k++) {
        double dv;
        int64_t iv;
        load_elem(raw + k * (size_t)dt.size, &dt, &dv, &iv);
        out[fortran ? fortran_to_c(k, info) : k] = (float)dv;
    }
    free(raw);
    return out;
}

int64_t *npy_read_i64(const char *path, NpyInfo *info, char *err, size_t errlen) {
    int fortran;
    DtypeInfo dt;
    uint8_t *raw = read_raw(path, info, &fortran, &dt, err, errlen);
    if (!raw) return NULL;
    int64_t *out = mallocCheck(info->numel * sizeof(int64_t) + 1);
    for (size_t k = 0; k < info->numel; k++) {
        double dv = 0;
        int64_t iv = 0;
        load_elem(raw + k * (size_t)dt.size, &dt, &dv, &iv);
        if (dt.kind == K_FLOAT) {
            if (!(dv == floor(dv)) || fabs(dv) > 9.0e15) {
                dino_errf(err, errlen, "%s: element %zu (%g) is %s, so not a label", path, k, dv,
                          dv == floor(dv) ? "beyond the whole numbers a double holds exactly"
                                          : "not a whole number");
                free(raw);
                free(out);
                return NULL;
            }
            iv = (int64_t)dv;
        } else if (dt.kind == K_UINT && iv < 0) {
            // A uint64 above INT64_MAX: no label, and not to be read as a negative one.
            dino_errf(err, errlen, "%s: element %zu (%llu) does not fit a 64-bit signed label",
                      path, k, (unsigned long long)iv);
            free(raw);
            free(out);
            return NULL;
        }
        out[fortran ? fortran_to_c(k, info) : k] = iv;
    }
    free(raw);
    return out;
}
