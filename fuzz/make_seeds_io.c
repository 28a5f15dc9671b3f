// Writes the seed corpora of the model-file fuzzers that need dino.c's own
// writers: a tiny native checkpoint with every dtype (fuzz/corpus/checkpoint/)
// and a tiny ViT + head saved as native and safetensors files
// (fuzz/corpus/model/, fuzz/corpus/safetensors/); and small versions of the
// shapes that were once quadratic (docs/RELIABILITY.md): a pickle dict with many and
// repeated keys, a pickle of many tensors on their own storages (raw and as
// .pth zips), a native file and a safetensors file of many zero-size
// tensors and metadata keys. Run once from the
// repository root after `make`:
//   cc -Isrc fuzz/make_seeds_io.c build/libdino.a $(LIBS) -o /tmp/seeds && /tmp/seeds
// (scripts/fuzz.sh does not need it; the files are committed).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#include "io/checkpoint.h"
#include "io/model_io.h"
#include "model.h"

static void die(const char *what, const char *err) {
    fprintf(stderr, "%s: %s\n", what, err);
    exit(1);
}

typedef struct {
    uint8_t p[8192];
    size_t n;
} Bytes;

static void put(Bytes *b, const void *p, size_t n) {
    if (b->n + n > sizeof b->p) die("seed", "too big");
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_str(Bytes *b, const char *s) { put(b, s, strlen(s)); }
#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)  // a literal that may hold NULs
static void put_unicode(Bytes *b, const char *s) {
    uint8_t len[4] = {(uint8_t)strlen(s), 0, 0, 0};
    put_str(b, "X");
    put(b, len, 4);
    put_str(b, s);
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) die(path, "cannot write");
}

// A .pth zip: archive/data.pkl, then n_storages empty entries data/0, data/1...
static void write_pth(const char *path, const Bytes *pkl, int n_storages) {
    int zerr;
    remove(path);
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!za) die(path, "zip_open");
    zip_int64_t i = zip_file_add(za, "archive/data.pkl", zip_source_buffer(za, pkl->p, pkl->n, 0), 0);
    zip_set_file_compression(za, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    for (int k = 0; k < n_storages; k++) {
        char name[64];
        snprintf(name, sizeof name, "archive/data/%d", k);
        i = zip_file_add(za, name, zip_source_buffer(za, "", 0, 0), 0);
        zip_set_file_compression(za, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    }
    if (zip_close(za)) die(path, "zip_close");
}

// A dict of 48 string keys in two SETITEMS batches, a repeated string key and
// a repeated int key (the later values win).
static void seed_dict_keys(void) {
    Bytes b = {.n = 0};
    PUT_LIT(&b, "\x80\x02}q\x00(");
    for (int k = 0; k < 48; k++) {
        char key[8];
        snprintf(key, sizeof key, "k%02d", k);
        put_unicode(&b, key);
        uint8_t v[2] = {'K', (uint8_t)k};
        put(&b, v, 2);
        if (k == 23) put_str(&b, "u(");
    }
    put_unicode(&b, "k00");
    PUT_LIT(&b, "K\x63K\x07K\x01K\x07K\x02u.");
    write_file("fuzz/corpus/pickle/io_dict_keys.pkl", b.p, b.n);
    write_pth("fuzz/corpus/pth/io_dict_keys.pth", &b, 0);
}

// 24 zero-size float32 tensors, each on its own storage, the globals memoised.
static void seed_many_tensors(void) {
    Bytes b = {.n = 0};
    PUT_LIT(&b, "\x80\x02");
    PUT_LIT(&b, "ctorch._utils\n_rebuild_tensor_v2\nq\x00""0");
    PUT_LIT(&b, "ctorch\nFloatStorage\nq\x01""0");
    PUT_LIT(&b, "ccollections\nOrderedDict\nq\x02""0");
    put_str(&b, "}(");
    for (int k = 0; k < 24; k++) {
        char name[32], key[8];
        snprintf(name, sizeof name, "blocks.%d.weight", k);
        snprintf(key, sizeof key, "%d", k);
        put_unicode(&b, name);
        PUT_LIT(&b, "h\x00((");
        put_unicode(&b, "storage");
        PUT_LIT(&b, "h\x01");
        put_unicode(&b, key);
        put_unicode(&b, "cpu");
        PUT_LIT(&b, "K\x00tQK\x00K\x00\x85K\x01\x85\x89h\x02)RtR");
    }
    put_str(&b, "u.");
    write_file("fuzz/corpus/pickle/io_many_tensors.pkl", b.p, b.n);
    write_pth("fuzz/corpus/pth/io_many_tensors.pth", &b, 24);
}

// 32 zero-size tensors and 32 metadata keys, native and safetensors.
static void seed_many_names(void) {
    char err[512];
    CkptWriter *w = ckpt_writer_open("fuzz/corpus/checkpoint/many_names.dino", err, sizeof err);
    if (!w) die("writer", err);
    int64_t s0[1] = {0};
    for (int k = 0; k < 32; k++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", k);
        ckpt_add_meta(w, name, "");
        snprintf(name, sizeof name, "t%d", k);
        ckpt_add_tensor(w, name, DT_F32, 1, s0, NULL);
    }
    if (ckpt_writer_commit(w, err, sizeof err)) die("commit", err);
    Bytes j = {.n = 8};
    put_str(&j, "{");
    for (int k = 0; k < 32; k++) {
        char e[96];
        snprintf(e, sizeof e, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                 k ? "," : "", k);
        put_str(&j, e);
    }
    put_str(&j, "}");
    while (j.n % 8) put_str(&j, " ");
    uint64_t len = j.n - 8;
    for (int i = 0; i < 8; i++) j.p[i] = (uint8_t)(len >> (8 * i));
    write_file("fuzz/corpus/safetensors/many_names.safetensors", j.p, j.n);
}

int main(void) {
    char err[512];
    mkdir("fuzz/corpus/checkpoint", 0755);
    mkdir("fuzz/corpus/model", 0755);
    mkdir("fuzz/corpus/safetensors", 0755);
    CkptWriter *w = ckpt_writer_open("fuzz/corpus/checkpoint/dtypes.dino", err, sizeof err);
    if (!w) die("writer", err);
    ckpt_add_meta(w, "kind", "training");
    ckpt_add_meta(w, "epoch", "3");
    float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    int32_t i32[3] = {1, -1, 7};
    int64_t i64[2] = {5, -9};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3}, s2[1] = {2}, s5[1] = {5}, s0[1] = {0};
    ckpt_add_tensor(w, "f32", DT_F32, 2, s23, f);
    ckpt_add_tensor(w, "f16", DT_F16, 1, s4, h);
    ckpt_add_tensor(w, "bf16", DT_BF16, 1, s4, h);
    ckpt_add_tensor(w, "i32", DT_I32, 1, s3, i32);
    ckpt_add_tensor(w, "i64", DT_I64, 1, s2, i64);
    ckpt_add_tensor(w, "u8", DT_U8, 1, s5, u8);
    ckpt_add_tensor(w, "empty", DT_F32, 1, s0, f);
    ckpt_add_tensor(w, "scalar", DT_F32, 0, s0, f);
    if (ckpt_writer_commit(w, err, sizeof err)) die("commit", err);

    // The smallest model the builder allows: D=8, 1 block, 2 heads, patch 4,
    // 8-px images, head 8 -> 8 -> 4 bottleneck -> 6 outputs.
    ViTConfig vit = {.img_size = 8, .patch = 4, .in_chans = 3, .dim = 8, .depth = 1, .heads = 2,
                     .mlp_hidden = 16, .ln_eps = 1e-6f, .drop_path_rate = 0};
    HeadConfig head;
    head_config_default(&head, 8, 6);
    head.hidden = 8;
    head.bottleneck = 4;
    for (int with_head = 0; with_head < 2; with_head++) {
        DinoModel m;
        model_build(&m, &vit, &head, with_head);
        float *p = calloc(m.table.total, sizeof(float));
        model_init(&m, p, 1);
        if (model_save(with_head ? "fuzz/corpus/model/tiny_head.dino" : "fuzz/corpus/model/tiny.dino", &m, p, err, sizeof err))
            die("model_save", err);
        if (model_save(with_head ? "fuzz/corpus/safetensors/tiny_head.safetensors" : "fuzz/corpus/safetensors/tiny.safetensors", &m, p, err, sizeof err))
            die("model_save", err);
        free(p);
        model_free(&m);
    }
    seed_dict_keys();
    seed_many_tensors();
    seed_many_names();
    return 0;
}
