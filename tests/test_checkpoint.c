// Tests of the native format (src/io/checkpoint.c): XXH64 against the xxHash
// library's digests, a bit-exact round trip of every dtype, determinism, every
// truncation length and every single-byte flip refused with a sentence naming
// the file, forged-checksum files with bad tables refused by the bounds checks,
// and failing writes (file size limit, an unrenameable temp path, a missing
// directory) that leave the previous file intact.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/xxh64.h"
#include "testlib.h"

// Sample tensors of every dtype, including a scalar and an empty tensor.
static float f32[3 * 5];
static uint16_t f16[7];
static uint16_t bf16[4 * 2];
static int32_t i32[6];
static int64_t i64[3];
static uint8_t u8[70];
static float scalar = 3.25f;

static void fill_samples(void) {
    for (int i = 0; i < 15; i++) f32[i] = (float)i * 0.37f - 2.0f;
    f32[4] = -0.0f;
    for (int i = 0; i < 7; i++) f16[i] = (uint16_t)(0x3c00 + i * 17);
    for (int i = 0; i < 8; i++) bf16[i] = (uint16_t)(0xbf80 + i);
    for (int i = 0; i < 6; i++) i32[i] = -3 + i * 1000003;
    for (int i = 0; i < 3; i++) i64[i] = (int64_t)1 << (20 * i + 3);
    for (int i = 0; i < 70; i++) u8[i] = (uint8_t)(i * 37);
}

static int write_sample(const char *path, int variant, char *err, size_t errlen) {
    CkptWriter *w = ckpt_writer_open(path, err, errlen);
    if (!w) return -1;
    ckpt_add_meta(w, "format", "dino.c-test");
    ckpt_add_meta(w, "epoch", variant ? "8" : "7");
    ckpt_add_meta(w, "empty", "");
    ckpt_add_meta(w, "config.json", "{\"dim\": 128, \"depth\": 2}");
    int64_t s_f32[2] = {3, 5}, s_f16[1] = {7}, s_bf16[2] = {4, 2}, s_i32[3] = {1, 2, 3},
            s_i64[1] = {3}, s_u8[2] = {7, 10}, s_empty[2] = {0, 4};
    ckpt_add_tensor(w, "backbone.blocks.0.attn.qkv.weight", DT_F32, 2, s_f32, f32);
    ckpt_add_tensor(w, "half", DT_F16, 1, s_f16, f16);
    ckpt_add_tensor(w, "brain.float", DT_BF16, 2, s_bf16, bf16);
    ckpt_add_tensor(w, "ints", DT_I32, 3, s_i32, i32);
    ckpt_add_tensor(w, "longs", DT_I64, 1, s_i64, i64);
    ckpt_add_tensor(w, "bytes", DT_U8, 2, s_u8, u8);
    ckpt_add_tensor(w, "scalar", DT_F32, 0, NULL, &scalar);
    ckpt_add_tensor(w, "empty", DT_F32, 2, s_empty, NULL);
    return ckpt_writer_commit(w, err, errlen);
}

static void test_xxh64(void) {
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(i * 131 + 7);
    // Digests from the system's libxxhash (XXH64) for the same inputs.
    CHECK(xxh64("", 0, 0) == 0xef46db3751d8e999ULL, "xxh64 of the empty string");
    CHECK(xxh64("abc", 3, 0) == 0x44bc2cf5ad770999ULL, "xxh64(\"abc\")");
    CHECK(xxh64(buf, 1000, 0) == 0x0bf0bdbcc82eb373ULL, "xxh64 of 1000 bytes");
    CHECK(xxh64(buf, 37, 5) == 0x651ee32c8933d006ULL, "xxh64 of 37 bytes, seed 5");
    Xxh64State s;
    xxh64_init(&s, 0);
    for (size_t k = 0; k < 1000;) {
        size_t c = (k * 7 + 3) % 37;
        if (c > 1000 - k) c = 1000 - k;
        xxh64_update(&s, buf + k, c);
        k += c;
    }
    CHECK(xxh64_digest(&s) == 0x0bf0bdbcc82eb373ULL, "streaming xxh64 in uneven pieces");
}

static void test_round_trip(void) {
    char err[512] = "";
    const char *path = test_tmp_path("rt.dino");
    CHECK(write_sample(path, 0, err, sizeof err) == 0, "write a sample checkpoint (%s)", err);
    CHECK(access(test_tmp_path("rt.dino.tmp"), F_OK) != 0, "no temporary file left behind");
    CHECK(ckpt_is_native(path), "ckpt_is_native recognises it");
    Ckpt *c = ckpt_open(path, err, sizeof err);
    CHECK(c != NULL, "reopen it (%s)", err);
    if (!c) return;
    CHECK(ckpt_n_tensors(c) == 8, "8 tensors");
    CHECK(ckpt_meta(c, "epoch") && strcmp(ckpt_meta(c, "epoch"), "7") == 0, "metadata epoch=7");
    CHECK(ckpt_meta(c, "empty") && ckpt_meta(c, "empty")[0] == 0, "empty metadata value");
    CHECK(ckpt_meta(c, "config.json") &&
              strcmp(ckpt_meta(c, "config.json"), "{\"dim\": 128, \"depth\": 2}") == 0,
          "JSON metadata value");
    CHECK(ckpt_meta(c, "absent") == NULL, "absent metadata is NULL");
    const char *k0, *v0, *k3, *v3;
    int nm = ckpt_n_meta(c);
    if (nm == 4) {
        ckpt_meta_at(c, 0, &k0, &v0);
        ckpt_meta_at(c, 3, &k3, &v3);
    }
    CHECK(nm == 4 && !strcmp(k0, "format") && !strcmp(v0, "dino.c-test") && !strcmp(k3, "config.json"),
          "metadata listed in file order");
    CHECK(ckpt_tensor(c, "absent") == NULL, "absent tensor is NULL");
    struct {
        const char *name;
        DType dt;
        int ndim;
        int64_t shape[3];
        const void *data;
        size_t nbytes;
    } want[] = {
        {"backbone.blocks.0.attn.qkv.weight", DT_F32, 2, {3, 5}, f32, sizeof f32},
        {"half", DT_F16, 1, {7}, f16, sizeof f16},
        {"brain.float", DT_BF16, 2, {4, 2}, bf16, sizeof bf16},
        {"ints", DT_I32, 3, {1, 2, 3}, i32, sizeof i32},
        {"longs", DT_I64, 1, {3}, i64, sizeof i64},
        {"bytes", DT_U8, 2, {7, 10}, u8, sizeof u8},
        {"scalar", DT_F32, 0, {0}, &scalar, 4},
        {"empty", DT_F32, 2, {0, 4}, NULL, 0},
    };
    for (int i = 0; i < 8; i++) {
        const CkptTensor *t = ckpt_tensor(c, want[i].name);
        int ok = t && t == ckpt_tensor_at(c, i) && t->dtype == want[i].dt &&
                 t->ndim == want[i].ndim;
        for (int d = 0; ok && d < want[i].ndim; d++) ok = t->shape[d] == want[i].shape[d];
        if (ok && want[i].nbytes) ok = memcmp(t->data, want[i].data, want[i].nbytes) == 0;
        if (ok) ok = ((uintptr_t)t->data % 64) == 0;
        CHECK(ok, "tensor %s: dtype, shape, bytes identical, data 64-byte aligned", want[i].name);
    }
    const CkptTensor *t = ckpt_tensor(c, "scalar");
    CHECK(t && t->numel == 1, "a 0-d tensor has numel 1");
    t = ckpt_tensor(c, "empty");
    CHECK(t && t->numel == 0, "an empty tensor has numel 0");
    ckpt_close(c);

    // Deterministic bytes: writing the same content twice gives the same file.
    size_t n1, n2;
    const char *path2 = test_tmp_path("rt2.dino");
    CHECK(write_sample(path2, 0, err, sizeof err) == 0, "write it again");
    uint8_t *a = test_read_file(path, &n1), *b = test_read_file(path2, &n2);
    CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0, "two writes are byte-identical (%zu bytes)", n1);
    CHECK(n1 % 64 == 8, "file = 64-aligned header+data plus an 8-byte checksum");
    free(a);
    free(b);
}

static void test_truncation_and_flips(void) {
    char err[512];
    const char *path = test_tmp_path("rt.dino");
    size_t n;
    uint8_t *orig = test_read_file(path, &n);
    if (!orig) { CHECK(0, "sample file present"); return; }
    const char *bad = test_tmp_path("bad.dino");
    int refused = 0, named = 0;
    for (size_t len = 0; len < n; len++) {
        test_write_file(bad, orig, len);
        err[0] = 0;
        Ckpt *c = ckpt_open(bad, err, sizeof err);
        if (!c) refused++;
        else ckpt_close(c);
        if (strstr(err, bad)) named++;
    }
    CHECK(refused == (int)n, "every truncation (0..%zu bytes) refused: %d/%zu", n - 1, refused, n);
    CHECK(named == (int)n, "every truncation error names the file: %d/%zu", named, n);
    test_write_file(bad, orig, n - 100);
    ckpt_open(bad, err, sizeof err);
    CHECK(strstr(err, "truncated") != NULL, "a cut file is called truncated: %s", err);

    refused = 0;
    int said_checksum = 0;
    uint8_t *m = malloc(n);
    for (size_t i = 0; i < n; i++) {
        memcpy(m, orig, n);
        m[i] ^= (uint8_t)(1u << (i % 8));
        test_write_file(bad, m, n);
        Ckpt *c = ckpt_open(bad, err, sizeof err);
        if (!c) refused++;
        else ckpt_close(c);
        if (strstr(err, "checksum")) said_checksum++;
    }
    CHECK(refused == (int)n, "every single-bit flip refused: %d/%zu", refused, n);
    CHECK(said_checksum > (int)n - 64, "most flips are reported as checksum mismatches (%d)", said_checksum);
    // One extra byte at the end.
    memcpy(m, orig, n);
    test_write_file(bad, orig, n);
    FILE *f = fopen(bad, "ab");
    fputc(0, f);
    fclose(f);
    CHECK(ckpt_open(bad, err, sizeof err) == NULL, "a trailing byte is refused: %s", err);
    free(m);
    free(orig);
}

// Rewrites the checksum so that only the structural checks stand between the
// reader and a hostile table.
static void forge(uint8_t *b, size_t n) {
    uint64_t h = xxh64(b, n - 8, 0);
    for (int i = 0; i < 8; i++) b[n - 8 + i] = (uint8_t)(h >> (8 * i));
}
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void test_forged(void) {
    char err[512];
    const char *path = test_tmp_path("rt.dino");
    size_t n;
    uint8_t *orig = test_read_file(path, &n);
    if (!orig) return;
    uint8_t *m = malloc(n);
    const char *bad = test_tmp_path("forged.dino");
    // Locate the first tensor record: after the preamble and the 4 meta entries.
    size_t pos = 64;
    for (int i = 0; i < 4; i++) {
        uint32_t kl = orig[pos] | orig[pos + 1] << 8;
        pos += 4 + kl;
        uint32_t vl = orig[pos] | orig[pos + 1] << 8;
        pos += 4 + vl;
    }
    size_t t0 = pos;  // u32 name len, name, dtype, ndim, shape[2], off, nbytes
    uint32_t nl = orig[t0];
    size_t dt_at = t0 + 4 + nl, nd_at = dt_at + 4, shape_at = nd_at + 4, off_at = shape_at + 16,
           nb_at = off_at + 8;
    struct {
        const char *what;
        size_t at;
        int width;
        uint64_t v;
    } cases[] = {
        {"tensor count 2^31", 20, 4, 1u << 31},
        {"meta count 1000", 16, 4, 1000},
        {"name length 2^32-1", t0, 4, 0xffffffffu},
        {"name length 200", t0, 4, 200},
        {"dtype 99", dt_at, 4, 99},
        {"ndim 9", nd_at, 4, 9},
        {"shape 2^62 (overflow)", shape_at, 8, 1ull << 62},
        {"shape 4 (bytes disagree)", shape_at, 8, 4},
        {"offset past the data", off_at, 8, 1ull << 40},
        {"offset 2^64-64 (wraps)", off_at, 8, ~0ull - 63},
        {"misaligned offset", off_at, 8, 8},
        {"nbytes huge", nb_at, 8, ~0ull},
        {"version 2", 8, 4, 2},
        {"flags 1", 12, 4, 1},
        {"header length 10", 24, 8, 10},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(m, orig, n);
        if (cases[k].width == 4) put_u32(m + cases[k].at, (uint32_t)cases[k].v);
        else put_u64(m + cases[k].at, cases[k].v);
        forge(m, n);
        test_write_file(bad, m, n);
        err[0] = 0;
        Ckpt *c = ckpt_open(bad, err, sizeof err);
        CHECK(c == NULL && strstr(err, bad), "forged checksum, %s: refused (%s)", cases[k].what, err);
        if (c) ckpt_close(c);
    }
    // Overlapping tensors: point tensor 1 at tensor 0's offset.
    memcpy(m, orig, n);
    size_t t1 = nb_at + 8;
    uint32_t nl1 = m[t1];
    size_t off1 = t1 + 4 + nl1 + 8 + 8;  // one dimension
    put_u64(m + off1, 0);
    forge(m, n);
    test_write_file(bad, m, n);
    CHECK(ckpt_open(bad, err, sizeof err) == NULL && strstr(err, "overlap"),
          "forged checksum, overlapping tensors refused (%s)", err);
    free(m);
    free(orig);

    // Other kinds of file.
    const char *png = test_tmp_path("image.png");
    test_write_file(png, "\x89PNG\r\n\x1a\n0000000000000000000000000000000000000000", 48);
    CHECK(ckpt_open(png, err, sizeof err) == NULL && strstr(err, "not a dino.c native file"),
          "a PNG is refused: %s", err);
    CHECK(!ckpt_is_native(png), "ckpt_is_native says no to a PNG");
    CHECK(ckpt_open(test_tmp_path("missing.dino"), err, sizeof err) == NULL && strstr(err, "missing.dino"),
          "a missing file is refused: %s", err);
    CHECK(ckpt_open(test_tmp_path(""), err, sizeof err) == NULL, "a directory is refused: %s", err);
}

static void test_failing_writes(void) {
    char err[512], path[512];
    snprintf(path, sizeof path, "%s", test_tmp_path("keep.dino"));  // tmp_path's buffers rotate
    CHECK(write_sample(path, 0, err, sizeof err) == 0, "write the file to keep");
    size_t n0;
    uint8_t *before = test_read_file(path, &n0);

    // 1. The file system refuses to grow the file part-way (like ENOSPC):
    // RLIMIT_FSIZE makes write() fail with EFBIG once the limit is reached.
    static float big[1 << 16];
    for (int i = 0; i < (1 << 16); i++) big[i] = (float)i;
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 100000;
    setrlimit(RLIMIT_FSIZE, &lim);
    CkptWriter *w = ckpt_writer_open(path, err, sizeof err);
    int64_t shape[1] = {1 << 16};
    ckpt_add_tensor(w, "big", DT_F32, 1, shape, big);
    int rc = ckpt_writer_commit(w, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc == -1 && strstr(err, path), "a write that fails part-way returns an error: %s", err);
    size_t n1;
    uint8_t *after = test_read_file(path, &n1);
    CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0, "the previous file is untouched");
    CHECK(access(test_tmp_path("keep.dino.tmp"), F_OK) != 0, "the temporary file is removed");
    free(after);

    // 2. The temporary path cannot be created (it is a directory).
    mkdir(test_tmp_path("keep.dino.tmp"), 0755);
    CHECK(write_sample(path, 1, err, sizeof err) == -1 && strstr(err, "keep.dino.tmp"),
          "an uncreatable temporary file returns an error: %s", err);
    rmdir(test_tmp_path("keep.dino.tmp"));
    after = test_read_file(path, &n1);
    CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0, "the previous file is untouched");
    free(after);

    // 3. A full disk: the temporary path is a symlink to /dev/full, so every
    // write fails with ENOSPC.
    if (symlink("/dev/full", test_tmp_path("keep.dino.tmp")) == 0) {
        rc = write_sample(path, 1, err, sizeof err);
        CHECK(rc == -1 && strstr(err, "No space left"), "a full disk (ENOSPC) returns an error: %s", err);
        unlink(test_tmp_path("keep.dino.tmp"));
        after = test_read_file(path, &n1);
        CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0, "the previous file is untouched");
        free(after);
    }

    // 4. The target directory does not exist.
    CHECK(write_sample("/nonexistent-dir/x.dino", 0, err, sizeof err) == -1 &&
              strstr(err, "/nonexistent-dir/x.dino.tmp"),
          "a missing directory returns an error: %s", err);

    // 5. A successful overwrite replaces the content.
    CHECK(write_sample(path, 1, err, sizeof err) == 0, "overwrite succeeds");
    Ckpt *c = ckpt_open(path, err, sizeof err);
    CHECK(c && strcmp(ckpt_meta(c, "epoch"), "8") == 0, "the new content is there");
    ckpt_close(c);
    free(before);
}

int main(void) {
    test_tmpdir("ckpt");
    fill_samples();
    test_xxh64();
    test_round_trip();
    test_truncation_and_flips();
    test_forged();
    test_failing_writes();
    test_tmpdir_remove();
    return test_finish();
}
