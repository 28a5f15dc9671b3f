// Hostile model files (docs/RELIABILITY.md, "Hostile inputs, round 2"): inputs
// whose size makes a quadratic reader hang, generated here at test time. Each
// is read in a forked child under a wall-clock limit and a memory cap
// (tests/bounded.h) that the linear readers meet many times over: a pickle
// dict of 300,000 keys; 8 MB of one-byte pickle values (refused at a memory
// limit); a torch.save file of 100,000 tensors; a safetensors header of
// 200,000 zero-size tensors (and 30,000 Hugging Face query/key/value triples);
// a native checkpoint of 2^20 zero-size tensors and one of 65,536 metadata
// keys, both with a valid checksum; counts that cannot fit in their header.
// Also the messages for a storage whose byte size overflows 64 bits and for a
// native file cut in half.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "bounded.h"
#include "io/checkpoint.h"
#include "io/model_io.h"
#include "io/pickle.h"
#include "io/pth.h"
#include "io/xxh64.h"
#include "testlib.h"

// ---------------------------------------------------------------- byte buffers

typedef struct {
    uint8_t *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *p, size_t n) {
    if (n == 0) return;
    if (b->n + n > b->cap) {
        while (b->n + n > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_str(Buf *b, const char *s) { put(b, s, strlen(s)); }
static void put_le(Buf *b, uint64_t v, int k) {
    uint8_t q[8];
    for (int i = 0; i < k; i++) q[i] = (uint8_t)(v >> (8 * i));
    put(b, q, (size_t)k);
}
static void put_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_printf(Buf *b, const char *fmt, ...) {
    char s[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    put_str(b, s);
}

// ---------------------------------------------------------------- pickles

static void pk_unicode(Buf *b, const char *s) {
    put_str(b, "X");
    put_le(b, strlen(s), 4);
    put_str(b, s);
}

// Memo slots of the globals a torch.save pickle calls.
enum { MEMO_REBUILD, MEMO_FLOAT_STORAGE, MEMO_ORDERED_DICT };

static void pk_memo_get(Buf *b, uint32_t i) {
    put_str(b, "j");
    put_le(b, i, 4);
}

// PROTO 2 and the three globals, put in the memo (as pickle's memoising does).
static void pk_start(Buf *b) {
    put(b, "\x80\x02", 2);
    static const char *const globals[] = {"torch._utils\n_rebuild_tensor_v2\n", "torch\nFloatStorage\n",
                                          "collections\nOrderedDict\n"};
    for (uint32_t i = 0; i < 3; i++) {
        put_str(b, "c");
        put_str(b, globals[i]);
        put_str(b, "r");
        put_le(b, i, 4);
        put_str(b, "0");  // POP
    }
}

// _rebuild_tensor_v2(storage, 0, (size,), (1,), False, OrderedDict()) over a
// float32 storage `key` of `numel` elements (written as LONG1 for any size).
static void pk_tensor(Buf *b, const char *key, uint64_t numel, uint8_t size) {
    pk_memo_get(b, MEMO_REBUILD);
    put_str(b, "((");
    pk_unicode(b, "storage");
    pk_memo_get(b, MEMO_FLOAT_STORAGE);
    pk_unicode(b, key);
    pk_unicode(b, "cpu");
    put(b, "\x8a\x08", 2);
    put_le(b, numel, 8);
    put_str(b, "tQ");
    put(b, "K\x00", 2);
    put_str(b, "K");
    put(b, &size, 1);
    put(b, "\x85K\x01\x85\x89", 5);
    pk_memo_get(b, MEMO_ORDERED_DICT);
    put_str(b, ")Rt");
    put_str(b, "R");
}

// ---------------------------------------------------------------- zips

// A torch.save-style zip: archive/data.pkl first, then the named STORED
// entries (all with the same contents).
static int write_pth(const char *path, const Buf *pkl, int n_entries, const char *(*entry_name)(int),
                     const void *entry, size_t entry_len) {
    int zerr;
    remove(path);
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!za) return -1;
    zip_source_t *src = zip_source_buffer(za, pkl->p, pkl->n, 0);
    zip_int64_t i = zip_file_add(za, "archive/data.pkl", src, ZIP_FL_OVERWRITE);
    if (i < 0) return -1;
    zip_set_file_compression(za, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    for (int k = 0; k < n_entries; k++) {
        src = zip_source_buffer(za, entry, entry_len, 0);
        i = zip_file_add(za, entry_name(k), src, 0);
        if (i < 0) return -1;
        zip_set_file_compression(za, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    }
    return zip_close(za);
}

static const char *storage_entry(int k) {
    static char name[64];
    snprintf(name, sizeof name, "archive/data/%d", k);
    return name;
}

// ---------------------------------------------------------------- helpers

#define LIMIT_S 10.0  // the linear readers need well under a second for each case
#define MEM_MB 1024

static const char *path_of(const char *name) { return test_tmp_path(name); }

// Runs fn under the bounds and checks it returned 0 in time; prints its output.
static void run_bounded(const char *what, int (*fn)(void *), void *arg, double limit_s, size_t mem_mb) {
    Bounded b;
    int rc = bounded_call(fn, arg, limit_s, mem_mb, &b);
    CHECK(rc == 0 && !b.timed_out && b.exit_code == 0,
          "%s: within %.0f s and %zu MB (%.2f s, exit %d%s): %s", what, limit_s, mem_mb, b.seconds,
          b.exit_code, b.timed_out ? ", killed at the limit" : "", bounded_first_line(&b));
}

// model_load must refuse `path` with an error containing `needle`.
static int expect_load_refused(const char *path, const char *needle) {
    DinoModel m;
    float *params;
    char err[512] = "";
    int rc = model_load(path, NULL, &m, &params, err, sizeof err);
    printf("%s\n", err);
    return rc == -1 && strstr(err, needle) && strstr(err, path) ? 0 : 1;
}

// ---------------------------------------------------------------- 1: a big pickle dict

#define BIG_DICT_KEYS 300000

static int read_big_dict(void *arg) {
    char err[512];
    PthFile *f = pth_open(path_of("big_dict.pth"), err, sizeof err);
    if (!f) {
        printf("%s\n", err);
        return 1;
    }
    const PickleValue *r = pth_root(f);
    const PickleValue *last = pickle_dict_get(r, "k299999"), *first = pickle_dict_get(r, "k000000");
    // The file sets k000000 twice and int key 7 twice: the later values win.
    const PickleValue *seven = NULL;
    for (size_t i = 0; i + 1 < r->n; i += 2)
        if (r->items[i]->type == PV_INT && r->items[i]->i == 7) seven = r->items[i + 1];
    int ok = r->type == PV_DICT && r->n == 2 * (BIG_DICT_KEYS + 1) && last && last->i == 299999 &&
             first && first->i == -1 && seven && seven->i == 2;
    printf("%zu keys\n", r->n / 2);
    pth_close(f);
    return ok ? 0 : 1;
}

static void test_big_pickle_dict(void) {
    Buf b = {0};
    put(&b, "\x80\x02}(", 4);
    for (int k = 0; k < BIG_DICT_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%06d", k);
        pk_unicode(&b, key);
        put_str(&b, "J");
        put_le(&b, (uint32_t)k, 4);
    }
    put(&b, "K\x07K\x01K\x07K\x02", 8);  // int key 7: 1, then 2
    pk_unicode(&b, "k000000");
    put_str(&b, "J");
    put_le(&b, 0xffffffffu, 4);  // -1
    put_str(&b, "u.");
    int rc = write_pth(path_of("big_dict.pth"), &b, 0, NULL, NULL, 0);
    CHECK(rc == 0, "wrote a .pth whose pickle is a dict of %d keys (%zu bytes)", BIG_DICT_KEYS, b.n);
    if (rc == 0) run_bounded("a pickle dict of 300,000 keys is read, later values replacing earlier",
                             read_big_dict, NULL, LIMIT_S, MEM_MB);
    free(b.p);
}

// ---------------------------------------------------------------- a pickle bomb

// 8 MB of None: each one-byte opcode builds a value of a few hundred bytes.
#define BOMB_BYTES (8u << 20)

static int parse_bomb(void *arg) {
    const Buf *b = arg;
    char err[512] = "";
    PickleDoc *d = pickle_parse(b->p, b->n, "bomb.pkl", err, sizeof err);
    printf("%s\n", err);
    pickle_free(d);
    return !d && strstr(err, "bomb.pkl: refusing a pickle that needs more than 512 MB") ? 0 : 1;
}

static void test_pickle_bomb(void) {
    Buf b = {0};
    put(&b, "\x80\x02", 2);
    b.p = realloc(b.p, BOMB_BYTES + 3);
    if (!b.p) abort();
    memset(b.p + 2, 'N', BOMB_BYTES);
    b.n = BOMB_BYTES + 2;
    put_str(&b, ".");
    run_bounded("8 MB of one-byte values is refused at the pickle memory limit", parse_bomb, &b,
                LIMIT_S, MEM_MB);
    free(b.p);
}

// ---------------------------------------------------------------- 2: 100,000 tensors in a .pth

#define MANY_TENSORS 100000

static int load_many_tensors(void *arg) {
    return expect_load_refused(path_of("many_tensors.pth"), "no patch_embed.proj.weight");
}

static void test_many_pth_tensors(void) {
    Buf b = {0};
    pk_start(&b);
    put(&b, "}(", 2);
    for (int k = 0; k < MANY_TENSORS; k++) {
        char name[48], key[16];
        snprintf(name, sizeof name, "module.blocks.%d.weight", k);
        snprintf(key, sizeof key, "%d", k);
        pk_unicode(&b, name);
        pk_tensor(&b, key, 0, 0);
    }
    put_str(&b, "u.");
    int rc = write_pth(path_of("many_tensors.pth"), &b, MANY_TENSORS, storage_entry, "", 0);
    CHECK(rc == 0, "wrote a .pth of %d zero-size tensors", MANY_TENSORS);
    if (rc == 0) run_bounded("a .pth of 100,000 tensors is refused as no ViT, in linear time",
                             load_many_tensors, NULL, LIMIT_S, MEM_MB);
    free(b.p);
}

// ---------------------------------------------------------------- 5: a storage of 2^62 elements

static int load_huge_storage(void *arg) {
    // 2^62 float32 elements are 2^64 bytes: the message says so, not "need 0".
    return expect_load_refused(path_of("huge_storage.pth"),
                               "storage '0' declares 4611686018427387904 float32 elements, more than 2^64 bytes");
}

static void test_huge_storage(void) {
    Buf b = {0};
    pk_start(&b);
    put(&b, "}(", 2);
    pk_unicode(&b, "w");
    pk_tensor(&b, "0", (uint64_t)1 << 62, 4);
    put_str(&b, "u.");
    static const uint8_t data[16];
    int rc = write_pth(path_of("huge_storage.pth"), &b, 1, storage_entry, data, sizeof data);
    CHECK(rc == 0, "wrote a .pth whose storage claims 2^62 elements");
    if (rc == 0) run_bounded("a storage of 2^62 float32 elements is refused with its true size",
                             load_huge_storage, NULL, LIMIT_S, 256);
    free(b.p);
}

// ---------------------------------------------------------------- 3: safetensors

#define MANY_SAFE 200000
#define MANY_HF_LAYERS 30000

static void write_safetensors(const char *path, const Buf *json) {
    Buf f = {0};
    size_t len = (json->n + 7) / 8 * 8;
    put_le(&f, len, 8);
    put(&f, json->p, json->n);
    while (f.n < 8 + len) put_str(&f, " ");
    test_write_file(path, f.p, f.n);
    free(f.p);
}

static int load_many_safe(void *arg) {
    return expect_load_refused(path_of("many.safetensors"), "no patch_embed.proj.weight");
}

static int load_many_hf(void *arg) {
    return expect_load_refused(path_of("many_hf.safetensors"), "no patch_embed.proj.weight");
}

static void test_many_safetensors(void) {
    Buf j = {0};
    put_str(&j, "{");
    for (int k = 0; k < MANY_SAFE; k++)
        put_printf(&j, "%s\"t%06d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                   k ? "," : "", k);
    put_str(&j, "}");
    write_safetensors(path_of("many.safetensors"), &j);
    run_bounded("a safetensors header of 200,000 zero-size tensors is refused as no ViT, in linear time",
                load_many_safe, NULL, LIMIT_S, MEM_MB);

    // Hugging Face names: every query is fused with its key and value.
    j.n = 0;
    put_str(&j, "{");
    static const char *const qkv[] = {"query", "key", "value"};
    for (int k = 0; k < MANY_HF_LAYERS; k++)
        for (int p = 0; p < 3; p++)
            put_printf(&j, "%s\"encoder.layer.%d.attention.attention.%s.weight\":{\"dtype\":\"F32\","
                       "\"shape\":[0,4],\"data_offsets\":[0,0]}", k || p ? "," : "", k, qkv[p]);
    put_str(&j, "}");
    write_safetensors(path_of("many_hf.safetensors"), &j);
    run_bounded("30,000 Hugging Face query/key/value triples are fused in linear time", load_many_hf,
                NULL, LIMIT_S, MEM_MB);
    free(j.p);
}

// ---------------------------------------------------------------- 4, 6: native checkpoints

// A native file laid out as ckpt_writer_commit lays it out (docs/FORMATS.md
// §1), with n_meta keys "m<i>" (empty values) and n_t zero-size float32
// tensors "t<i>"; the last tensor takes the first one's name when dup_last.
// The checksum is recomputed, as a forger would.
static void write_native(const char *path, uint32_t n_meta, uint32_t n_t, int dup_last) {
    Buf h = {0};
    for (uint32_t i = 0; i < n_meta; i++) {
        char k[16];
        int l = snprintf(k, sizeof k, "m%u", i);
        put_le(&h, (uint64_t)l, 4);
        put(&h, k, (size_t)l);
        put_le(&h, 0, 4);
    }
    for (uint32_t i = 0; i < n_t; i++) {
        char k[16];
        int l = snprintf(k, sizeof k, "t%u", dup_last && i + 1 == n_t ? 0 : i);
        put_le(&h, (uint64_t)l, 4);
        put(&h, k, (size_t)l);
        put_le(&h, DT_F32, 4);
        put_le(&h, 1, 4);  // ndim
        put_le(&h, 0, 8);  // shape [0]
        put_le(&h, 0, 8);  // offset
        put_le(&h, 0, 8);  // bytes
    }
    uint64_t header = 64 + h.n, data_offset = (header + 63) / 64 * 64;
    Buf f = {0};
    put_str(&f, "DINOCKPT");
    put_le(&f, 1, 4);  // version
    put_le(&f, 0, 4);  // flags
    put_le(&f, n_meta, 4);
    put_le(&f, n_t, 4);
    put_le(&f, header, 8);
    put_le(&f, data_offset, 8);
    put_le(&f, 0, 8);  // data length
    while (f.n < 64) put_le(&f, 0, 1);
    put(&f, h.p, h.n);
    while (f.n < data_offset) put_le(&f, 0, 1);
    put_le(&f, xxh64(f.p, f.n, 0), 8);
    test_write_file(path, f.p, f.n);
    free(h.p);
    free(f.p);
}

static int read_many_native(void *arg) {
    char err[512] = "";
    Ckpt *c = ckpt_open(path_of("many.dino"), err, sizeof err);
    const CkptTensor *last = c ? ckpt_tensor(c, "t1048575") : NULL;
    printf("%s%d tensors\n", err, c ? ckpt_n_tensors(c) : 0);
    int ok = c && ckpt_n_tensors(c) == 1 << 20 && last && last == ckpt_tensor_at(c, (1 << 20) - 1) &&
             !ckpt_tensor(c, "t1048576");
    ckpt_close(c);
    return ok ? 0 : 1;
}

static int expect_ckpt_refused(const char *name, const char *needle) {
    char err[512] = "";
    Ckpt *c = ckpt_open(path_of(name), err, sizeof err);
    printf("%s\n", err);
    ckpt_close(c);
    return !c && strstr(err, needle) ? 0 : 1;
}

static int read_dup_native(void *arg) { return expect_ckpt_refused("dup.dino", "tensor 't0' appears twice"); }

static int read_many_meta(void *arg) {
    char err[512] = "";
    Ckpt *c = ckpt_open(path_of("meta.dino"), err, sizeof err);
    printf("%s\n", err);
    int ok = c && ckpt_n_meta(c) == 65536 && ckpt_meta(c, "m65535") && !ckpt_meta(c, "m65536");
    ckpt_close(c);
    return ok ? 0 : 1;
}

static int read_overcounted(void *arg) {
    return expect_ckpt_refused("overcount.dino", "1048576 tensors cannot fit in a 64-byte header");
}

static void test_native(void) {
    write_native(path_of("many.dino"), 0, 1u << 20, 0);
    run_bounded("a native file of 2^20 zero-size tensors (valid checksum) is read in linear time",
                read_many_native, NULL, LIMIT_S, MEM_MB);
    write_native(path_of("dup.dino"), 0, 1u << 20, 1);
    run_bounded("the same with its last name repeated is refused as a duplicate, in linear time",
                read_dup_native, NULL, LIMIT_S, MEM_MB);
    write_native(path_of("meta.dino"), 65536, 0, 0);
    run_bounded("65,536 metadata keys (about 1 MB) are read in linear time", read_many_meta, NULL,
                LIMIT_S, MEM_MB);
    remove(path_of("many.dino"));
    remove(path_of("dup.dino"));

    // Counts that cannot fit in the header are refused before anything is
    // allocated for them: well under the cap below.
    write_native(path_of("overcount.dino"), 0, 0, 0);
    size_t n;
    uint8_t *f = test_read_file(path_of("overcount.dino"), &n);
    if (!f) { CHECK(0, "overcount.dino written"); return; }
    f[20] = 0, f[21] = 0, f[22] = 0x10;  // n_t = 2^20
    uint64_t sum = xxh64(f, n - 8, 0);
    for (int i = 0; i < 8; i++) f[n - 8 + i] = (uint8_t)(sum >> (8 * i));
    test_write_file(path_of("overcount.dino"), f, n);
    free(f);
    run_bounded("2^20 tensors declared in an empty header are refused without allocating for them",
                read_overcounted, NULL, LIMIT_S, 64);
}

static void test_native_cut(void) {
    char err[512] = "";
    const char *path = path_of("cut.dino");
    CkptWriter *w = ckpt_writer_open(path, err, sizeof err);
    static float data[1000];
    int64_t shape[1] = {1000};
    ckpt_add_meta(w, "dino.kind", "model");
    ckpt_add_tensor(w, "w", DT_F32, 1, shape, data);
    int rc = ckpt_writer_commit(w, err, sizeof err);
    size_t n;
    uint8_t *f = rc == 0 ? test_read_file(path, &n) : NULL;
    if (!f) { CHECK(0, "cut.dino written: %s", err); return; }
    test_write_file(path, f, n / 2);
    free(f);
    Ckpt *c = ckpt_open(path, err, sizeof err);
    char want[128];
    snprintf(want, sizeof want, "is truncated: expected %zu bytes, has %zu", n, n / 2);
    CHECK(!c && strstr(err, want) && strstr(err, path), "a native file cut in half is called truncated: %s", err);
    ckpt_close(c);
}

int main(int argc, char **argv) {
    test_tmpdir("hostile_io");
    // Everything heavy runs in forked children, before any OpenMP region here.
    test_big_pickle_dict();
    test_pickle_bomb();
    test_many_pth_tensors();
    test_huge_storage();
    test_many_safetensors();
    test_native();
    test_native_cut();
    test_tmpdir_remove();
    return test_finish();
}
