// The safe pickle reader (pickle.h). A stack machine over the opcodes
// torch.save emits (protocol 2, plus the protocol 3/4 framing, short-string,
// memo and stack-global opcodes), with a memo table and a mark stack. Every
// value lives in an arena freed at once, so an error anywhere is a longjmp
// back to pickle_parse with nothing to unwind. Callables are never called:
// REDUCE/NEWOBJ/BUILD on an allow-listed global produce inert values, and a
// GLOBAL outside the list stops the parse at once.
#include "io/pickle.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/key_index.h"

// ---------------------------------------------------------------- arena

// Memory one parse may hold. Real torch.save pickles build 40-65 bytes of
// values per pickle byte and stay far below 1 MB even for checkpoints with
// optimizer state, so this is thousands of times what they need.
#define PICKLE_MAX_MEMORY ((size_t)512 << 20)

typedef struct Block {
    struct Block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} Block;

struct PickleDoc {
    Block *blocks;
    PickleValue *root;
    // parse state
    const uint8_t *p;
    size_t n, pos;
    const char *what;
    char *err;
    size_t errlen;
    jmp_buf jb;
    PickleValue **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, marks_cap;
    PickleValue **memo;
    size_t memo_cap, memo_count;
    PickleValue **storages;  // by first appearance, for key reuse
    size_t n_storages, storages_cap;
    KeyIndex storage_keys;   // storage key -> index in storages
    KeyIndex dict_keys;      // (dict, str or int key) -> the key's place in the dict's items
    size_t charged;          // bytes counted by charge()
};

static void fail(PickleDoc *d, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail(PickleDoc *d, const char *fmt, ...) {
    if (d->err && d->errlen) {
        int k = snprintf(d->err, d->errlen, "%s: ", d->what);
        if (k < 0) k = 0;
        if ((size_t)k < d->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(d->err + k, d->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    longjmp(d->jb, 1);
}

// Counts memory the parse holds for values, the memo, the stack and the marks
// against PICKLE_MAX_MEMORY, so that a small hostile pickle (a few MB of
// one-byte opcodes that each build a value) is refused instead of growing
// hundreds of times its size.
static void charge(PickleDoc *d, size_t bytes) {
    if (bytes > PICKLE_MAX_MEMORY - d->charged)
        fail(d, "refusing a pickle that needs more than %u MB for its values (it has %zu bytes; "
                "no torch.save checkpoint comes near this)", (unsigned)(PICKLE_MAX_MEMORY >> 20), d->n);
    d->charged += bytes;
}

static void *arena_alloc(PickleDoc *d, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!d->blocks || d->blocks->size - d->blocks->used < n) {
        size_t size = n > 65536 ? n : 65536;
        charge(d, sizeof(Block) + size);
        Block *b = mallocCheck(sizeof(Block) + size);
        b->next = d->blocks;
        b->used = 0;
        b->size = size;
        d->blocks = b;
    }
    void *p = d->blocks->data + d->blocks->used;
    d->blocks->used += n;
    memset(p, 0, n);
    return p;
}

// ---------------------------------------------------------------- values

static PickleValue *newv(PickleDoc *d, PickleType t) {
    PickleValue *v = arena_alloc(d, sizeof *v);
    v->type = t;
    return v;
}

static PickleValue *new_str(PickleDoc *d, PickleType t, const uint8_t *s, size_t len) {
    PickleValue *v = newv(d, t);
    v->s = arena_alloc(d, len + 1);
    if (len) memcpy(v->s, s, len);
    v->s[len] = 0;
    v->len = len;
    return v;
}

static void push_item(PickleDoc *d, PickleValue *c, PickleValue *x) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4;
        PickleValue **it = arena_alloc(d, cap * sizeof *it);
        if (c->n) memcpy(it, c->items, c->n * sizeof *it);
        c->items = it;
        c->cap = cap;
    }
    c->items[c->n++] = x;
}

// Sets dict[k] = v, replacing the value of an existing string or int key as
// Python would (through the index: a dict of n keys costs O(n), not O(n^2)).
static void dict_set(PickleDoc *d, PickleValue *dict, PickleValue *k, PickleValue *v) {
    if (k->type == PV_STR || k->type == PV_INT) {
        // One namespace per dict (arena values are 16-byte aligned, so the low
        // bit is free to keep int keys apart from strings).
        uintptr_t ns = (uintptr_t)dict | (k->type == PV_INT);
        const void *bytes = k->type == PV_STR ? (const void *)k->s : (const void *)&k->i;
        size_t len = k->type == PV_STR ? k->len : sizeof k->i;
        size_t at = key_index_add(&d->dict_keys, ns, bytes, len, dict->n);
        if (at != dict->n) {
            dict->items[at + 1] = v;
            return;
        }
    }
    push_item(d, dict, k);
    push_item(d, dict, v);
}

// ---------------------------------------------------------------- allow-list

enum {
    G_ORDERED_DICT = 1,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_PARAMETER,
    G_REBUILD_PARAMETER_WITH_STATE,
    G_STORAGE,  // + storage type in st
    G_NAMESPACE,
    G_NP_SCALAR,
    G_NP_DTYPE,
    G_CODECS_ENCODE,
    G_SET,
    G_FROZENSET,
    G_BYTES,
    G_BYTEARRAY,
    G_TORCH_SIZE,
    G_TORCH_DEVICE,
    G_REBUILD_TENSOR_V3,
    G_NP_RECONSTRUCT,
    G_NP_NDARRAY,
};

static const struct {
    const char *module, *name;
    int id;
    DType st;
} ALLOWED[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, 0},
    {"torch._utils", "_rebuild_tensor_v3", G_REBUILD_TENSOR_V3, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, 0},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAMETER_WITH_STATE, 0},
    {"torch", "DoubleStorage", G_STORAGE, DT_F64},
    {"torch", "FloatStorage", G_STORAGE, DT_F32},
    {"torch", "HalfStorage", G_STORAGE, DT_F16},
    {"torch", "BFloat16Storage", G_STORAGE, DT_BF16},
    {"torch", "LongStorage", G_STORAGE, DT_I64},
    {"torch", "IntStorage", G_STORAGE, DT_I32},
    {"torch", "ShortStorage", G_STORAGE, DT_I16},
    {"torch", "CharStorage", G_STORAGE, DT_I8},
    {"torch", "ByteStorage", G_STORAGE, DT_U8},
    {"torch", "BoolStorage", G_STORAGE, DT_BOOL},
    {"argparse", "Namespace", G_NAMESPACE, 0},
    {"numpy.core.multiarray", "scalar", G_NP_SCALAR, 0},
    {"numpy._core.multiarray", "scalar", G_NP_SCALAR, 0},
    {"numpy", "dtype", G_NP_DTYPE, 0},
    // numpy arrays (the revisited Oxford/Paris ground truth): rebuilt as lists
    {"numpy.core.multiarray", "_reconstruct", G_NP_RECONSTRUCT, 0},
    {"numpy._core.multiarray", "_reconstruct", G_NP_RECONSTRUCT, 0},
    {"numpy", "ndarray", G_NP_NDARRAY, 0},
    {"_codecs", "encode", G_CODECS_ENCODE, 0},
    {"builtins", "set", G_SET, 0},
    {"builtins", "frozenset", G_FROZENSET, 0},
    {"builtins", "bytes", G_BYTES, 0},
    {"builtins", "bytearray", G_BYTEARRAY, 0},
    {"torch", "Size", G_TORCH_SIZE, 0},
    {"torch", "device", G_TORCH_DEVICE, 0},
};

static PickleValue *make_global(PickleDoc *d, const char *module, size_t ml, const char *name,
                                size_t nl) {
    char mod[128], nm[128];
    if (ml >= sizeof mod || nl >= sizeof nm) fail(d, "refusing a pickle GLOBAL with an overlong name");
    memcpy(mod, module, ml);
    mod[ml] = 0;
    memcpy(nm, name, nl);
    nm[nl] = 0;
    // Protocol 2 writes Python 2 names for builtins.
    if (strcmp(mod, "__builtin__") == 0) strcpy(mod, "builtins");
    for (size_t i = 0; i < sizeof ALLOWED / sizeof ALLOWED[0]; i++) {
        if (strcmp(mod, ALLOWED[i].module) == 0 && strcmp(nm, ALLOWED[i].name) == 0) {
            PickleValue *g = newv(d, PV_GLOBAL);
            char full[260];
            int k = snprintf(full, sizeof full, "%s.%s", mod, nm);
            g->s = arena_alloc(d, (size_t)k + 1);
            memcpy(g->s, full, (size_t)k + 1);
            g->len = (size_t)k;
            g->global_id = ALLOWED[i].id;
            g->st = ALLOWED[i].st;
            return g;
        }
    }
    // Printable rendering of the refused name (the bytes may be anything).
    for (char *c = mod; *c; c++)
        if (*c < 32 || *c > 126) *c = '?';
    for (char *c = nm; *c; c++)
        if (*c < 32 || *c > 126) *c = '?';
    fail(d, "refusing to load: the pickle references %s.%s, which is not on the allow-list of "
            "tensor-data types (nothing was executed)", mod, nm);
}

// ---------------------------------------------------------------- stack

static void push(PickleDoc *d, PickleValue *v) {
    if (d->sp == d->stack_cap) {
        if (d->stack_cap >= ((size_t)1 << 26)) fail(d, "pickle stack too deep");
        size_t cap = d->stack_cap ? 2 * d->stack_cap : 256;
        charge(d, (cap - d->stack_cap) * sizeof *d->stack);
        d->stack_cap = cap;
        d->stack = reallocCheck(d->stack, d->stack_cap * sizeof *d->stack);
    }
    d->stack[d->sp++] = v;
}

static size_t floor_sp(const PickleDoc *d) { return d->n_marks ? d->marks[d->n_marks - 1] : 0; }

static PickleValue *pop(PickleDoc *d) {
    if (d->sp <= floor_sp(d)) fail(d, "malformed pickle: stack underflow at byte %zu", d->pos);
    return d->stack[--d->sp];
}

static PickleValue *top(PickleDoc *d) {
    if (d->sp <= floor_sp(d)) fail(d, "malformed pickle: stack underflow at byte %zu", d->pos);
    return d->stack[d->sp - 1];
}

static size_t pop_mark(PickleDoc *d) {
    if (!d->n_marks) fail(d, "malformed pickle: no MARK at byte %zu", d->pos);
    return d->marks[--d->n_marks];
}

// ---------------------------------------------------------------- reading bytes

static const uint8_t *take(PickleDoc *d, size_t k) {
    if (k > d->n - d->pos) fail(d, "pickle is truncated (needs %zu bytes at byte %zu)", k, d->pos);
    const uint8_t *q = d->p + d->pos;
    d->pos += k;
    return q;
}
static uint64_t le(const uint8_t *q, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = (v << 8) | q[i];
    return v;
}

static const uint8_t *take_line(PickleDoc *d, size_t *len) {
    const uint8_t *start = d->p + d->pos;
    const uint8_t *nl = memchr(start, '\n', d->n - d->pos);
    if (!nl) fail(d, "pickle is truncated inside a GLOBAL name");
    *len = (size_t)(nl - start);
    d->pos += *len + 1;
    return start;
}

// ---------------------------------------------------------------- helpers

static int is_str(const PickleValue *v, const char *s) {
    return v && v->type == PV_STR && strcmp(v->s, s) == 0;
}

static int64_t as_int(PickleDoc *d, const PickleValue *v, const char *what) {
    if (!v || (v->type != PV_INT && v->type != PV_BOOL)) fail(d, "%s is not an integer", what);
    return v->i;
}

static PickleValue *tensor_from_args(PickleDoc *d, const PickleValue *args) {
    if (args->type != PV_TUPLE || args->n < 6 || args->n > 7)
        fail(d, "_rebuild_tensor_v2 called with %zu arguments (expected 6 or 7)", args->n);
    PickleValue *st = args->items[0];
    if (st->type != PV_STORAGE) fail(d, "_rebuild_tensor_v2 got something other than a storage");
    int64_t off = as_int(d, args->items[1], "a tensor's storage offset");
    const PickleValue *size = args->items[2], *stride = args->items[3];
    if (size->type != PV_TUPLE || stride->type != PV_TUPLE || size->n != stride->n)
        fail(d, "a tensor's size and stride are not tuples of one length");
    if (size->n > 8) fail(d, "a tensor has %zu dimensions (at most 8 are supported)", size->n);
    PickleValue *t = newv(d, PV_TENSOR);
    t->storage = st;
    t->offset = off;
    t->ndim = (int)size->n;
    if (off < 0) fail(d, "a tensor has a negative storage offset");
    // Largest element index reached, overflow-checked: offset + sum (size-1)*stride.
    uint64_t last = (uint64_t)off, numel = 1;
    int empty = 0;
    for (size_t k = 0; k < size->n; k++) {
        int64_t s = as_int(d, size->items[k], "a tensor size");
        int64_t r = as_int(d, stride->items[k], "a tensor stride");
        if (s < 0 || r < 0) fail(d, "a tensor has a negative size or stride");
        t->shape[k] = s;
        t->stride[k] = r;
        if (s == 0) empty = 1;
        if (s && numel > UINT64_MAX / (uint64_t)s) fail(d, "a tensor's element count overflows");
        numel *= (uint64_t)s;
        if (s > 0) {
            uint64_t span = (uint64_t)(s - 1);
            if (r && span > (UINT64_MAX - last) / (uint64_t)r)
                fail(d, "a tensor's strides overflow");
            last += span * (uint64_t)r;
        }
    }
    if (!empty && last >= st->numel)
        fail(d, "a tensor reaches outside its storage: element %llu of storage '%s', which has %llu",
             (unsigned long long)last, st->s, (unsigned long long)st->numel);
    return t;
}

// One numpy element of `len` bytes at s, of the dtype dt -> PV_FLOAT, PV_INT
// or PV_BOOL.
static PickleValue *np_element(PickleDoc *d, const PickleValue *dt, const char *s, size_t len) {
    const char *descr = dt->state && dt->state->type == PV_STR ? dt->state->s : "";
    int big = dt->i == 1;  // set by BUILD from the byte-order field
    uint8_t raw[8];
    if (len > 8) fail(d, "numpy scalar of %zu bytes is not supported", len);
    for (size_t k = 0; k < len; k++) raw[k] = (uint8_t)s[big ? len - 1 - k : k];
    PickleValue *v;
    if (descr[0] == 'f' && (len == 8 || len == 4) && atoi(descr + 1) == (int)len) {
        v = newv(d, PV_FLOAT);
        if (len == 8) {
            uint64_t u = le(raw, 8);
            memcpy(&v->f, &u, 8);
        } else {
            uint32_t u = (uint32_t)le(raw, 4);
            float f;
            memcpy(&f, &u, 4);
            v->f = f;
        }
    } else if ((descr[0] == 'i' || descr[0] == 'u') && len >= 1 && len <= 8 &&
               atoi(descr + 1) == (int)len) {
        v = newv(d, PV_INT);
        uint64_t u = le(raw, (int)len);
        if (descr[0] == 'i' && len < 8 && (u >> (8 * len - 1)) & 1)
            u |= ~(uint64_t)0 << (8 * len);
        v->i = (int64_t)u;
    } else if (descr[0] == 'b' && len == 1) {
        v = newv(d, PV_BOOL);
        v->i = raw[0] != 0;
    } else {
        fail(d, "numpy scalar of dtype '%s' is not supported", descr);
    }
    return v;
}

// numpy scalar: (dtype, bytes) -> PV_FLOAT or PV_INT.
static PickleValue *np_scalar(PickleDoc *d, const PickleValue *args) {
    if (args->type != PV_TUPLE || args->n != 2 || args->items[0]->type != PV_OBJECT ||
        args->items[1]->type != PV_BYTES)
        fail(d, "unexpected numpy scalar arguments");
    return np_element(d, args->items[0], args->items[1]->s, args->items[1]->len);
}

// BUILD of numpy.ndarray with (version, shape, dtype, fortran, data): the
// object becomes a flat PV_LIST of its elements in C order (1-D arrays, or
// empty ones, are all the ground-truth files hold).
static void np_array_build(PickleDoc *d, PickleValue *obj, const PickleValue *st) {
    if (st->type != PV_TUPLE || st->n != 5 || st->items[1]->type != PV_TUPLE ||
        st->items[2]->type != PV_OBJECT || !st->items[2]->s ||
        strcmp(st->items[2]->s, "numpy.dtype") != 0)
        fail(d, "unexpected numpy array state");
    const PickleValue *shape = st->items[1], *dt = st->items[2], *data = st->items[4];
    if (shape->n > 1) fail(d, "numpy arrays of %zu dimensions are not supported", shape->n);
    if (data->type != PV_BYTES && data->type != PV_STR)
        fail(d, "numpy array data is not a byte string (object arrays are not supported)");
    const char *descr = dt->state && dt->state->type == PV_STR ? dt->state->s : "";
    size_t el = descr[0] == 'b' ? 1 : (size_t)atoi(descr + 1);
    if (el < 1 || el > 8) fail(d, "numpy array of dtype '%s' is not supported", descr);
    if (shape->n == 1 && (shape->items[0]->type != PV_INT || shape->items[0]->i < 0))
        fail(d, "numpy array with a bad shape");
    uint64_t count = shape->n == 0 ? 1 : (uint64_t)shape->items[0]->i;
    if (count > data->len / el || count * el != data->len)
        fail(d, "numpy array of %llu elements of %zu bytes holds %zu bytes",
             (unsigned long long)count, el, data->len);
    obj->type = PV_LIST;
    obj->s = NULL;
    obj->len = 0;
    obj->state = NULL;
    obj->items = NULL;
    obj->n = obj->cap = 0;
    for (uint64_t k = 0; k < count; k++) push_item(d, obj, np_element(d, dt, data->s + k * el, el));
}

// _codecs.encode(text, 'latin1'): each code point of the UTF-8 text is a byte.
static PickleValue *codecs_encode(PickleDoc *d, const PickleValue *args) {
    if (args->type != PV_TUPLE || args->n != 2 || args->items[0]->type != PV_STR ||
        !(is_str(args->items[1], "latin1") || is_str(args->items[1], "latin-1")))
        fail(d, "unexpected _codecs.encode arguments");
    const PickleValue *t = args->items[0];
    PickleValue *v = newv(d, PV_BYTES);
    v->s = arena_alloc(d, t->len + 1);
    size_t o = 0;
    for (size_t k = 0; k < t->len;) {
        uint8_t c = (uint8_t)t->s[k];
        if (c < 0x80) {
            v->s[o++] = (char)c;
            k++;
        } else if ((c & 0xE0) == 0xC0 && k + 1 < t->len && c <= 0xC3) {
            v->s[o++] = (char)(((c & 0x1F) << 6) | ((uint8_t)t->s[k + 1] & 0x3F));
            k += 2;
        } else {
            fail(d, "_codecs.encode text is not latin-1");
        }
    }
    v->len = o;
    return v;
}

static PickleValue *reduce(PickleDoc *d, PickleValue *callable, PickleValue *args) {
    if (callable->type != PV_GLOBAL) fail(d, "REDUCE on something that is not an allowed global");
    if (args->type != PV_TUPLE) fail(d, "REDUCE arguments are not a tuple");
    switch (callable->global_id) {
        case G_ORDERED_DICT:
            if (args->n != 0) fail(d, "OrderedDict built from arguments is not supported");
            return newv(d, PV_DICT);
        case G_REBUILD_TENSOR_V2: return tensor_from_args(d, args);
        case G_REBUILD_TENSOR_V3:
            fail(d, "a tensor uses _rebuild_tensor_v3 (a dtype outside float/int/bool), which is "
                    "not supported");
        case G_REBUILD_PARAMETER:
        case G_REBUILD_PARAMETER_WITH_STATE:
            if (args->n < 1 || args->items[0]->type != PV_TENSOR)
                fail(d, "%s without a tensor", callable->s);
            return args->items[0];
        case G_NP_SCALAR: return np_scalar(d, args);
        case G_NP_DTYPE: {
            if (args->n < 1 || args->items[0]->type != PV_STR) fail(d, "unexpected numpy.dtype arguments");
            PickleValue *o = newv(d, PV_OBJECT);
            o->s = callable->s;
            o->len = callable->len;
            o->state = args->items[0];
            return o;
        }
        case G_CODECS_ENCODE: return codecs_encode(d, args);
        case G_NP_RECONSTRUCT: {
            // _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills.
            if (args->n < 1 || args->items[0]->type != PV_GLOBAL ||
                args->items[0]->global_id != G_NP_NDARRAY)
                fail(d, "numpy _reconstruct of something other than numpy.ndarray");
            PickleValue *o = newv(d, PV_OBJECT);
            o->s = args->items[0]->s;
            o->len = args->items[0]->len;
            return o;
        }
        case G_SET:
        case G_FROZENSET: {
            PickleValue *l = newv(d, PV_LIST);
            if (args->n == 1 && (args->items[0]->type == PV_LIST || args->items[0]->type == PV_TUPLE))
                for (size_t k = 0; k < args->items[0]->n; k++) push_item(d, l, args->items[0]->items[k]);
            else if (args->n != 0)
                fail(d, "unexpected set arguments");
            return l;
        }
        case G_BYTES:
        case G_BYTEARRAY:
            if (args->n == 0) return new_str(d, PV_BYTES, (const uint8_t *)"", 0);
            if (args->n == 1 && args->items[0]->type == PV_BYTES) return args->items[0];
            fail(d, "unexpected bytes arguments");
        case G_TORCH_SIZE:
            if (args->n == 1 && args->items[0]->type == PV_TUPLE) return args->items[0];
            fail(d, "unexpected torch.Size arguments");
        case G_TORCH_DEVICE:
            if (args->n >= 1 && args->items[0]->type == PV_STR) return args->items[0];
            fail(d, "unexpected torch.device arguments");
        default: fail(d, "%s cannot be called while loading data", callable->s);
    }
}

static PickleValue *newobj(PickleDoc *d, PickleValue *cls, PickleValue *args) {
    if (cls->type != PV_GLOBAL) fail(d, "NEWOBJ on something that is not an allowed class");
    if (args->type != PV_TUPLE) fail(d, "NEWOBJ arguments are not a tuple");
    switch (cls->global_id) {
        case G_NAMESPACE: {
            PickleValue *o = newv(d, PV_OBJECT);
            o->s = cls->s;
            o->len = cls->len;
            o->state = newv(d, PV_DICT);
            return o;
        }
        case G_ORDERED_DICT:
            if (args->n == 0) return newv(d, PV_DICT);
            break;
        default: break;
    }
    return reduce(d, cls, args);
}

static void build(PickleDoc *d, PickleValue *obj, PickleValue *state) {
    switch (obj->type) {
        case PV_DICT:  // OrderedDict._metadata and similar attributes: ignored
        case PV_TENSOR:
            return;
        case PV_OBJECT:
            if (obj->s && strcmp(obj->s, "numpy.ndarray") == 0) {
                np_array_build(d, obj, state);
                return;
            }
            if (obj->s && strcmp(obj->s, "numpy.dtype") == 0) {
                // (version, byteorder, ...): remember big-endian in i.
                if (state->type == PV_TUPLE && state->n >= 2 && is_str(state->items[1], ">")) obj->i = 1;
                return;
            }
            if (state->type == PV_DICT) {
                for (size_t k = 0; k + 1 < state->n; k += 2)
                    dict_set(d, obj->state, state->items[k], state->items[k + 1]);
                return;
            }
            if (state->type == PV_TUPLE && state->n == 2 && state->items[0]->type == PV_DICT) {
                build(d, obj, state->items[0]);
                return;
            }
            if (state->type == PV_NONE) return;
            fail(d, "unexpected state for %s", obj->s);
        default: fail(d, "BUILD on a value that cannot take state");
    }
}

static PickleValue *persistent_load(PickleDoc *d, PickleValue *pid) {
    if (pid->type != PV_TUPLE || pid->n != 5 || !is_str(pid->items[0], "storage"))
        fail(d, "unsupported persistent id (expected ('storage', type, key, location, numel))");
    PickleValue *cls = pid->items[1], *key = pid->items[2], *num = pid->items[4];
    if (cls->type != PV_GLOBAL || cls->global_id != G_STORAGE)
        fail(d, "persistent id names a storage type that is not supported");
    if (key->type != PV_STR) fail(d, "persistent id key is not a string");
    int64_t numel = as_int(d, num, "a storage's element count");
    if (numel < 0) fail(d, "a storage has a negative element count");
    // Keys compare as C strings: the zip entry is named by the text up to a NUL.
    size_t seen = key_index_add(&d->storage_keys, 0, key->s, strlen(key->s), d->n_storages);
    if (seen != d->n_storages) {
        PickleValue *s = d->storages[seen];
        if (s->st != cls->st || s->numel != (uint64_t)numel)
            fail(d, "storage '%s' is declared twice with different types or sizes", key->s);
        return s;
    }
    PickleValue *s = new_str(d, PV_STORAGE, (const uint8_t *)key->s, key->len);
    s->st = cls->st;
    s->numel = (uint64_t)numel;
    if (d->n_storages == d->storages_cap) {
        d->storages_cap = d->storages_cap ? 2 * d->storages_cap : 64;
        d->storages = reallocCheck(d->storages, d->storages_cap * sizeof *d->storages);
    }
    d->storages[d->n_storages++] = s;
    return s;
}

static void memo_put(PickleDoc *d, uint64_t idx, PickleValue *v) {
    // Indices are sequential in real pickles; bound them by the input size so
    // a hostile index cannot make us allocate gigabytes.
    if (idx > d->n) fail(d, "memo index %llu is out of range", (unsigned long long)idx);
    if (idx >= d->memo_cap) {
        size_t cap = d->memo_cap ? d->memo_cap : 256;
        while (cap <= idx) cap *= 2;
        charge(d, (cap - d->memo_cap) * sizeof *d->memo);
        d->memo = reallocCheck(d->memo, cap * sizeof *d->memo);
        memset(d->memo + d->memo_cap, 0, (cap - d->memo_cap) * sizeof *d->memo);
        d->memo_cap = cap;
    }
    if (!d->memo[idx]) d->memo_count++;
    d->memo[idx] = v;
}

static PickleValue *memo_get(PickleDoc *d, uint64_t idx) {
    if (idx >= d->memo_cap || !d->memo[idx])
        fail(d, "malformed pickle: memo entry %llu is not defined", (unsigned long long)idx);
    return d->memo[idx];
}

// MEMOIZE stores at the memo's current size (len(memo) in CPython).
static size_t memo_len(PickleDoc *d) { return d->memo_count; }

static PickleValue *tuple_from(PickleDoc *d, size_t from) {
    PickleValue *t = newv(d, PV_TUPLE);
    for (size_t k = from; k < d->sp; k++) push_item(d, t, d->stack[k]);
    d->sp = from;
    return t;
}

// The interpreter loop: one switch over the opcodes. Long by design (about
// 220 lines): each case is a few lines, and keeping every opcode in one place
// is what lets a reader check the whole allow-list at a glance.
static void run(PickleDoc *d) {
    for (;;) {
        uint8_t op = *take(d, 1);
        switch (op) {
            case 0x80: {  // PROTO
                uint8_t v = *take(d, 1);
                if (v > 5) fail(d, "pickle protocol %u is not supported", v);
                break;
            }
            case 0x95: take(d, 8); break;  // FRAME: a length hint only
            case '.': {                    // STOP
                if (d->sp != 1 || d->n_marks) fail(d, "malformed pickle: STOP with %zu values on the stack", d->sp);
                d->root = d->stack[0];
                return;
            }
            case '}': push(d, newv(d, PV_DICT)); break;
            case ']': push(d, newv(d, PV_LIST)); break;
            case ')': push(d, newv(d, PV_TUPLE)); break;
            case 0x8f: push(d, newv(d, PV_LIST)); break;  // EMPTY_SET
            case '(':                                     // MARK
                if (d->n_marks == d->marks_cap) {
                    if (d->marks_cap >= ((size_t)1 << 24)) fail(d, "too many nested MARKs");
                    size_t cap = d->marks_cap ? 2 * d->marks_cap : 64;
                    charge(d, (cap - d->marks_cap) * sizeof *d->marks);
                    d->marks_cap = cap;
                    d->marks = reallocCheck(d->marks, d->marks_cap * sizeof *d->marks);
                }
                d->marks[d->n_marks++] = d->sp;
                break;
            case 't': {  // TUPLE
                size_t m = pop_mark(d);
                push(d, tuple_from(d, m));
                break;
            }
            case 0x85:
            case 0x86:
            case 0x87: {  // TUPLE1..3
                size_t k = (size_t)(op - 0x84);
                if (d->sp < floor_sp(d) + k) fail(d, "malformed pickle: stack underflow at byte %zu", d->pos);
                push(d, tuple_from(d, d->sp - k));
                break;
            }
            case 's': {  // SETITEM
                PickleValue *v = pop(d), *k = pop(d), *dict = top(d);
                if (dict->type != PV_DICT) fail(d, "SETITEM on a value that is not a dict");
                dict_set(d, dict, k, v);
                break;
            }
            case 'u': {  // SETITEMS
                size_t m = pop_mark(d);
                if (m == 0 || d->stack[m - 1]->type != PV_DICT) fail(d, "SETITEMS on a value that is not a dict");
                if ((d->sp - m) % 2) fail(d, "SETITEMS with an odd number of values");
                PickleValue *dict = d->stack[m - 1];
                for (size_t k = m; k < d->sp; k += 2) dict_set(d, dict, d->stack[k], d->stack[k + 1]);
                d->sp = m;
                break;
            }
            case 'a': {  // APPEND
                PickleValue *v = pop(d), *l = top(d);
                if (l->type != PV_LIST) fail(d, "APPEND on a value that is not a list");
                push_item(d, l, v);
                break;
            }
            case 'e':      // APPENDS
            case 0x90: {   // ADDITEMS (sets)
                size_t m = pop_mark(d);
                if (m == 0 || d->stack[m - 1]->type != PV_LIST) fail(d, "APPENDS on a value that is not a list");
                for (size_t k = m; k < d->sp; k++) push_item(d, d->stack[m - 1], d->stack[k]);
                d->sp = m;
                break;
            }
            case 0x91: {  // FROZENSET
                size_t m = pop_mark(d);
                PickleValue *l = newv(d, PV_LIST);
                for (size_t k = m; k < d->sp; k++) push_item(d, l, d->stack[k]);
                d->sp = m;
                push(d, l);
                break;
            }
            case 'X': {  // BINUNICODE
                size_t len = (size_t)le(take(d, 4), 4);
                push(d, new_str(d, PV_STR, take(d, len), len));
                break;
            }
            case 0x8c: {  // SHORT_BINUNICODE
                size_t len = *take(d, 1);
                push(d, new_str(d, PV_STR, take(d, len), len));
                break;
            }
            case 0x8d: {  // BINUNICODE8
                uint64_t len = le(take(d, 8), 8);
                if (len > d->n) fail(d, "pickle is truncated");
                push(d, new_str(d, PV_STR, take(d, (size_t)len), (size_t)len));
                break;
            }
            case 'U': {  // SHORT_BINSTRING (Python 2 str)
                size_t len = *take(d, 1);
                push(d, new_str(d, PV_STR, take(d, len), len));
                break;
            }
            case 'T': {  // BINSTRING
                size_t len = (size_t)le(take(d, 4), 4);
                push(d, new_str(d, PV_STR, take(d, len), len));
                break;
            }
            case 'C': {  // SHORT_BINBYTES
                size_t len = *take(d, 1);
                push(d, new_str(d, PV_BYTES, take(d, len), len));
                break;
            }
            case 'B': {  // BINBYTES
                size_t len = (size_t)le(take(d, 4), 4);
                push(d, new_str(d, PV_BYTES, take(d, len), len));
                break;
            }
            case 0x8e: {  // BINBYTES8
                uint64_t len = le(take(d, 8), 8);
                if (len > d->n) fail(d, "pickle is truncated");
                push(d, new_str(d, PV_BYTES, take(d, (size_t)len), (size_t)len));
                break;
            }
            case 'K': {
                PickleValue *v = newv(d, PV_INT);
                v->i = *take(d, 1);
                push(d, v);
                break;
            }
            case 'M': {
                PickleValue *v = newv(d, PV_INT);
                v->i = (int64_t)le(take(d, 2), 2);
                push(d, v);
                break;
            }
            case 'J': {
                PickleValue *v = newv(d, PV_INT);
                v->i = (int32_t)(uint32_t)le(take(d, 4), 4);
                push(d, v);
                break;
            }
            case 0x8a:    // LONG1
            case 0x8b: {  // LONG4
                size_t len = op == 0x8a ? *take(d, 1) : (size_t)le(take(d, 4), 4);
                const uint8_t *q = take(d, len);
                PickleValue *v;
                if (len <= 8) {
                    v = newv(d, PV_INT);
                    uint64_t u = len ? le(q, (int)len) : 0;
                    if (len && len < 8 && (q[len - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * len);
                    v->i = (int64_t)u;
                } else {
                    // Too wide for int64: keep an approximate float (inert data).
                    v = newv(d, PV_FLOAT);
                    double x = 0;
                    for (size_t k = len; k-- > 0;) x = x * 256.0 + q[k];
                    if (q[len - 1] & 0x80) x -= ldexp(1.0, (int)(8 * (len > 128 ? 128 : len)));
                    v->f = x;
                }
                push(d, v);
                break;
            }
            case 'G': {  // BINFLOAT, big-endian
                const uint8_t *q = take(d, 8);
                uint64_t u = 0;
                for (int k = 0; k < 8; k++) u = (u << 8) | q[k];
                PickleValue *v = newv(d, PV_FLOAT);
                memcpy(&v->f, &u, 8);
                push(d, v);
                break;
            }
            case 'N': push(d, newv(d, PV_NONE)); break;
            case 0x88:
            case 0x89: {
                PickleValue *v = newv(d, PV_BOOL);
                v->i = op == 0x88;
                push(d, v);
                break;
            }
            case 'c': {  // GLOBAL
                size_t ml, nl;
                const uint8_t *m = take_line(d, &ml);
                const uint8_t *nm = take_line(d, &nl);
                push(d, make_global(d, (const char *)m, ml, (const char *)nm, nl));
                break;
            }
            case 0x93: {  // STACK_GLOBAL
                PickleValue *nm = pop(d), *m = pop(d);
                if (m->type != PV_STR || nm->type != PV_STR) fail(d, "STACK_GLOBAL needs two strings");
                push(d, make_global(d, m->s, m->len, nm->s, nm->len));
                break;
            }
            case 'R': {  // REDUCE
                PickleValue *args = pop(d), *f = pop(d);
                push(d, reduce(d, f, args));
                break;
            }
            case 0x81: {  // NEWOBJ
                PickleValue *args = pop(d), *cls = pop(d);
                push(d, newobj(d, cls, args));
                break;
            }
            case 'b': {  // BUILD
                PickleValue *state = pop(d), *obj = top(d);
                build(d, obj, state);
                break;
            }
            case 'Q': {  // BINPERSID
                PickleValue *pid = pop(d);
                push(d, persistent_load(d, pid));
                break;
            }
            case 'q': memo_put(d, *take(d, 1), top(d)); break;
            case 'r': memo_put(d, le(take(d, 4), 4), top(d)); break;
            case 0x94: memo_put(d, memo_len(d), top(d)); break;  // MEMOIZE
            case 'h': push(d, memo_get(d, *take(d, 1))); break;
            case 'j': push(d, memo_get(d, le(take(d, 4), 4))); break;
            case '0': pop(d); break;  // POP
            case '1': d->sp = pop_mark(d); break;  // POP_MARK
            case '2': push(d, top(d)); break;  // DUP
            default:
                fail(d, "unsupported pickle opcode 0x%02x at byte %zu (only the subset torch.save "
                        "writes is read)", op, d->pos - 1);
        }
    }
}

PickleDoc *pickle_parse(const uint8_t *data, size_t n, const char *what, char *err, size_t errlen) {
    PickleDoc *d = callocCheck(1, sizeof *d);
    d->p = data;
    d->n = n;
    d->what = what ? what : "pickle";
    d->err = err;
    d->errlen = errlen;
    if (setjmp(d->jb)) {
        pickle_free(d);
        return NULL;
    }
    run(d);
    if (d->pos != d->n) {
        // torch never writes anything after STOP; tolerate nothing else.
        fail(d, "%zu unexpected bytes after the pickle's STOP", d->n - d->pos);
    }
    free(d->stack);
    free(d->marks);
    free(d->memo);
    free(d->storages);
    key_index_free(&d->storage_keys);
    key_index_free(&d->dict_keys);
    d->stack = NULL;
    d->marks = NULL;
    d->memo = NULL;
    d->storages = NULL;
    return d;
}

void pickle_free(PickleDoc *d) {
    if (!d) return;
    Block *b = d->blocks;
    while (b) {
        Block *nx = b->next;
        free(b);
        b = nx;
    }
    free(d->stack);
    free(d->marks);
    free(d->memo);
    free(d->storages);
    key_index_free(&d->storage_keys);
    key_index_free(&d->dict_keys);
    free(d);
}

const PickleValue *pickle_root(const PickleDoc *d) { return d->root; }

const PickleValue *pickle_dict_get(const PickleValue *v, const char *key) {
    if (!v || v->type != PV_DICT) return NULL;
    for (size_t i = 0; i + 1 < v->n; i += 2)
        if (is_str(v->items[i], key)) return v->items[i + 1];
    return NULL;
}

const PickleValue *pickle_attr(const PickleValue *obj, const char *name) {
    if (!obj || obj->type != PV_OBJECT) return NULL;
    return pickle_dict_get(obj->state, name);
}

// ---------------------------------------------------------------- repr

typedef struct {
    char *buf;
    size_t cap, len;
} Out;

static void out(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(Out *o, const char *fmt, ...) {
    if (o->len + 1 >= o->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (k > 0) o->len = o->len + (size_t)k < o->cap ? o->len + (size_t)k : o->cap - 1;
}

static void repr(Out *o, const PickleValue *v, int depth) {
    if (depth > 6) {
        out(o, "...");
        return;
    }
    switch (v->type) {
        case PV_NONE: out(o, "None"); break;
        case PV_BOOL: out(o, v->i ? "True" : "False"); break;
        case PV_INT: out(o, "%lld", (long long)v->i); break;
        case PV_FLOAT:
            // Like Python's repr: a float always shows it is one.
            if (isfinite(v->f) && v->f == floor(v->f) && fabs(v->f) < 1e16) out(o, "%.1f", v->f);
            else {
                char b[32];
                for (int prec = 6; prec <= 17; prec++) {  // shortest text that reads back
                    snprintf(b, sizeof b, "%.*g", prec, v->f);
                    if (strtod(b, NULL) == v->f) break;
                }
                out(o, "%s", b);
            }
            break;
        case PV_STR: out(o, "'%.*s'", (int)(v->len > 80 ? 80 : v->len), v->s); break;
        case PV_BYTES: out(o, "b<%zu bytes>", v->len); break;
        case PV_GLOBAL: out(o, "<%s>", v->s); break;
        case PV_STORAGE: out(o, "<storage %s>", v->s); break;
        case PV_TENSOR: {
            out(o, "tensor %s[", dtype_traits(v->storage->st)->name);
            for (int k = 0; k < v->ndim; k++) out(o, "%s%lld", k ? ", " : "", (long long)v->shape[k]);
            out(o, "]");
            break;
        }
        case PV_TUPLE:
        case PV_LIST: {
            out(o, v->type == PV_TUPLE ? "(" : "[");
            for (size_t k = 0; k < v->n && o->len + 1 < o->cap; k++) {
                if (k) out(o, ", ");
                repr(o, v->items[k], depth + 1);
            }
            out(o, v->type == PV_TUPLE ? ")" : "]");
            break;
        }
        case PV_DICT: {
            out(o, "{");
            for (size_t k = 0; k + 1 < v->n && o->len + 1 < o->cap; k += 2) {
                if (k) out(o, ", ");
                repr(o, v->items[k], depth + 1);
                out(o, ": ");
                repr(o, v->items[k + 1], depth + 1);
            }
            out(o, "}");
            break;
        }
        case PV_OBJECT:
            if (v->state && v->state->type == PV_DICT) {
                out(o, "%s(", v->s);
                for (size_t k = 0; k + 1 < v->state->n && o->len + 1 < o->cap; k += 2) {
                    if (k) out(o, ", ");
                    if (v->state->items[k]->type == PV_STR) out(o, "%s=", v->state->items[k]->s);
                    repr(o, v->state->items[k + 1], depth + 1);
                }
                out(o, ")");
            } else {
                out(o, "<%s>", v->s);
            }
            break;
    }
}

void pickle_repr(const PickleValue *v, char *buf, size_t buflen) {
    if (!buflen) return;
    Out o = {buf, buflen, 0};
    buf[0] = 0;
    repr(&o, v, 0);
}
