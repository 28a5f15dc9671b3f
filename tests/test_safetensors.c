// Tests of the safetensors reader and writer (src/io/safetensors.c): files
// from the Python safetensors library (f32 and bf16) read with the right
// names, shapes and values; our writer's output re-read bit-exactly with its
// layout (sorted, 8-byte padded header, metadata); and the reference
// validation: oversized and lying headers, gaps, overlaps, trailing bytes,
// duplicate names, bad JSON/UTF-8, unknown dtypes, bad shapes and offsets,
// every truncation of a small file, and a failing write that keeps the old file.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "testlib.h"

// A file made of an 8-byte length, the given header text and `data_len` bytes.
static const char *craft(const char *name, const char *header, uint64_t declared_len, size_t data_len) {
    const char *path = test_tmp_path(name);
    FILE *f = fopen(path, "wb");
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(declared_len >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 7), f);
    fclose(f);
    return path;
}

static void test_python_files(void) {
    char err[512];
    SafeFile *f = safetensors_open(test_fixture_path("io_vit_timm.safetensors"), err, sizeof err);
    CHECK(f != NULL, "safetensors written by Python opens (%s)", f ? "ok" : err);
    if (f) {
        const SafeTensor *q = safetensors_find(f, "blocks.1.attn.qkv.weight");
        CHECK(f->n == 30 && q && q->dtype == DT_F32 && q->ndim == 2 && q->shape[0] == 192 &&
                  q->shape[1] == 64,
              "30 tensors; blocks.1.attn.qkv.weight is F32 [192, 64]");
        const SafeTensor *pw = safetensors_find(f, "patch_embed.proj.weight");
        CHECK(pw && pw->ndim == 4 && pw->shape[1] == 3 && pw->shape[3] == 4, "patch_embed.proj.weight is [64, 3, 4, 4]");
        CHECK(safetensors_meta(f, "format") && !strcmp(safetensors_meta(f, "format"), "pt"),
              "__metadata__ format=pt");
        CHECK(safetensors_find(f, "nope") == NULL && safetensors_meta(f, "nope") == NULL, "absent names are NULL");
        safetensors_close(f);
    }
    f = safetensors_open(test_fixture_path("io_vit2h_bf16.safetensors"), err, sizeof err);
    CHECK(f != NULL, "bf16 safetensors opens (%s)", f ? "ok" : err);
    if (f) {
        const SafeTensor *t = safetensors_find(f, "norm.weight");
        float v[128];
        int rc = t ? safetensors_read_f32(f, t, v, err, sizeof err) : -1;
        int plausible = rc == 0;
        for (int i = 0; plausible && i < 128; i++) plausible = v[i] > 0.7f && v[i] < 1.3f;
        CHECK(t && t->dtype == DT_BF16 && plausible, "bf16 norm.weight converts to values near 1");
        safetensors_close(f);
    }
}

static void test_writer(void) {
    char err[512];
    float a[6] = {1, -2, 3.5f, 0, -0.0f, 1e-30f}, b[1] = {42}, c[4] = {9, 8, 7, 6};
    int64_t sa[2] = {2, 3}, sc[2] = {4, 1};
    SafeWriteTensor t[3] = {{"zeta", 2, sa, a}, {"alpha \"quoted\"\\", 0, NULL, b}, {"mid", 2, sc, c}};
    const char *meta[4] = {"format", "pt", "note", "line\nbreak"};
    const char *path = test_tmp_path("w.safetensors");
    CHECK(safetensors_write_f32(path, t, 3, meta, 2, err, sizeof err) == 0, "write 3 tensors");
    SafeFile *f = safetensors_open(path, err, sizeof err);
    CHECK(f != NULL, "our file passes validation (%s)", f ? "ok" : err);
    if (!f) return;
    const SafeTensor *ta = safetensors_find(f, "zeta"), *tb = safetensors_find(f, "alpha \"quoted\"\\"),
                     *tc = safetensors_find(f, "mid");
    CHECK(ta && tb && tc && tb->ndim == 0 && tb->numel == 1 && ta->shape[1] == 3,
          "names (with escapes), shapes and a 0-d tensor survive");
    CHECK(tb && tc && ta && tb->begin == 0 && tc->begin == 4 && ta->begin == 20,
          "data is ordered by name: alpha, mid, zeta");
    CHECK(f->data_start % 8 == 0, "header padded to a multiple of 8 (data at %llu)",
          (unsigned long long)f->data_start);
    CHECK(safetensors_meta(f, "note") && !strcmp(safetensors_meta(f, "note"), "line\nbreak"),
          "metadata with a newline survives");
    float ra[6], rb[1], rc[4];
    int ok = ta && tb && tc && !safetensors_read_f32(f, ta, ra, err, sizeof err) &&
             !safetensors_read_f32(f, tb, rb, err, sizeof err) &&
             !safetensors_read_f32(f, tc, rc, err, sizeof err) && !memcmp(ra, a, sizeof a) &&
             !memcmp(rb, b, sizeof b) && !memcmp(rc, c, sizeof c);
    CHECK(ok, "values read back bit-exactly (including -0 and a denormal)");
    safetensors_close(f);

    // Every truncation of this small file is refused.
    size_t n;
    uint8_t *orig = test_read_file(path, &n);
    const char *cut = test_tmp_path("cut.safetensors");
    int refused = 0;
    for (size_t len = 0; len < n; len++) {
        FILE *o = fopen(cut, "wb");
        fwrite(orig, 1, len, o);
        fclose(o);
        SafeFile *g = safetensors_open(cut, err, sizeof err);
        if (!g && strstr(err, cut)) refused++;
        safetensors_close(g);
    }
    CHECK(refused == (int)n, "every truncation (0..%zu bytes) is refused: %d", n - 1, refused);

    // A failing write (file size limit) keeps the previous file.
    static float big[1 << 16];
    int64_t sbig[1] = {1 << 16};
    SafeWriteTensor tb2 = {"big", 1, sbig, big};
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 50000;
    setrlimit(RLIMIT_FSIZE, &lim);
    int rcw = safetensors_write_f32(path, &tb2, 1, NULL, 0, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    size_t n2;
    uint8_t *after = test_read_file(path, &n2);
    CHECK(rcw == -1 && after && n2 == n && !memcmp(after, orig, n) && access(test_tmp_path("w.safetensors.tmp"), F_OK) != 0,
          "a failing write returns an error and leaves the old file: %s", err);
    free(after);
    free(orig);
}

static void test_hostile(void) {
    char err[512];
    struct {
        const char *what, *header;
        int64_t declared;  // -1: strlen(header)
        size_t data;
        const char *needle;
    } cases[] = {
        {"a header over 100 MB", "{}", 100000001, 0, "100 MB"},
        {"a header longer than the file", "{}", 4096, 0, "truncated"},
        {"sizes that lie", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", -1, 12, "declares"},
        {"a gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", -1, 12, "gap or overlap"},
        {"an overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8, "gap or overlap"},
        {"data not starting at 0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8, "gap or overlap"},
        {"trailing bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 5, "after the last tensor"},
        {"data past the end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 8, "truncated"},
        {"duplicate names", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8, "twice"},
        {"not JSON", "{\"a\":", -1, 0, "not valid JSON"},
        {"a JSON array", "[1,2]", -1, 0, "not a JSON object"},
        {"invalid UTF-8", "{\"\xff\":{}}", -1, 0, "UTF-8"},
        {"an unknown dtype", "{\"a\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "unknown dtype"},
        {"a negative dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", -1, 4, "bad shape"},
        {"a fractional dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", -1, 4, "bad shape"},
        {"an overflowing shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", -1, 4, "overflows"},
        {"end before begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", -1, 4, "ends before"},
        {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", -1, 4, "bad data_offsets"},
        {"a missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "lacks"},
        {"non-string metadata", "{\"__metadata__\":{\"k\":1}}", -1, 0, "not a string"},
        {"junk after the JSON", "{} x", -1, 0, "after the safetensors header"},
        {"9 dimensions", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", -1, 4, "dimensions"},
        {"F4 with an odd element count", "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", -1, 2, "whole number of bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t decl = cases[i].declared < 0 ? strlen(cases[i].header) : (uint64_t)cases[i].declared;
        const char *p = craft("h.safetensors", cases[i].header, decl, cases[i].data);
        err[0] = 0;
        SafeFile *f = safetensors_open(p, err, sizeof err);
        CHECK(f == NULL && strstr(err, cases[i].needle) && strstr(err, p), "%s is refused: %s", cases[i].what, err);
        safetensors_close(f);
    }
    // Accepted edge cases, as the reference reader accepts them.
    struct {
        const char *what, *header;
        size_t data;
    } good[] = {
        {"an empty header object", "{}", 0},
        {"whitespace around the JSON", "  {\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}  ", 3},
        {"a zero-size tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]},\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *p = craft("g.safetensors", good[i].header, strlen(good[i].header), good[i].data);
        SafeFile *f = safetensors_open(p, err, sizeof err);
        CHECK(f != NULL, "%s is accepted (%s)", good[i].what, f ? "ok" : err);
        safetensors_close(f);
    }
    // A dtype that cannot become float32 is reported at read time.
    const char *p = craft("c.safetensors", "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                          strlen("{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}"), 8);
    SafeFile *f = safetensors_open(p, err, sizeof err);
    float v[2];
    CHECK(f && safetensors_read_f32(f, &f->t[0], v, err, sizeof err) == -1 && strstr(err, "C64"),
          "a complex tensor cannot be read as float32: %s", err);
    safetensors_close(f);
    CHECK(!safetensors_sniff(test_fixture_path("io_vit_bb.pth")), "a .pth is not sniffed as safetensors");
    CHECK(safetensors_sniff(test_fixture_path("io_vit_hf.safetensors")), "an HF file is sniffed as safetensors");
}

int main(void) {
    test_tmpdir("safetensors");
    test_python_files();
    test_writer();
    test_hostile();
    test_tmpdir_remove();
    return test_finish();
}
