// Tests of src/eval/npy.c: files written by np.save (tests/fixtures/eval_npy_*,
// from tools/make_eval_fixtures.py) are read with the right shape and values
// (float64 Fortran order, big-endian float32, int32/uint8 labels, 0-d), our
// writer produces byte-for-byte the file np.save writes for the same array,
// round trips hold for a large 2-D array, and bad files give one-line errors.
// The files written here are left in build/tests/npy_out/ so that
// `tools/make_eval_fixtures.py --check-npy build/tests/npy_out` can show numpy
// loading them.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "eval/npy.h"
#include "rng.h"
#include "testlib.h"

static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    int ok = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return ok;
}

static const char *OUTDIR = "build/tests/npy_out";

static const char *out_path(const char *name) {
    static char buf[4][512];
    static int slot;
    char *p = buf[slot++ & 3];
    snprintf(p, 512, "%s/%s", OUTDIR, name);
    return p;
}

int main(void) {
    char err[512];
    NpyInfo info;
    mkdir("build", 0755);
    mkdir("build/tests", 0755);
    if (mkdir(OUTDIR, 0755) != 0) {
        // Exists already, or we run from elsewhere: fall back to /tmp.
        struct stat st;
        if (stat(OUTDIR, &st) != 0) OUTDIR = "/tmp";
    }

    // float32 (3,4) as np.save writes it: header length 0x76, data at 128.
    float want[64];
    fixture_fill(want, 12, 1, -2, 2);
    char f34[1024];  // test_fixture_path reuses 4 buffers
    snprintf(f34, sizeof f34, "%s", test_fixture_path("eval_npy_f4_3x4.npy"));
    float *x = npy_read_f32(f34, &info, err, sizeof err);
    CHECK(x && info.ndim == 2 && info.shape[0] == 3 && info.shape[1] == 4 && !strcmp(info.descr, "<f4"),
          "np.save float32 (3,4) read: ndim %d descr %s", info.ndim, info.descr);
    if (x) test_close("float32 (3,4) values", x, want, 12, 0, 0);
    int64_t shp[2] = {3, 4};
    CHECK(npy_write_f32(out_path("f4_3x4.npy"), 2, shp, want, err, sizeof err) == 0, "write float32 (3,4)");
    CHECK(same_bytes(out_path("f4_3x4.npy"), f34), "our float32 (3,4) file is byte-equal to np.save's");
    size_t n;
    unsigned char *raw = test_read_file(out_path("f4_3x4.npy"), &n);
    CHECK(raw && n == 128 + 48 && raw[8] == 0x76 && raw[9] == 0 && raw[127] == '\n',
          "header: length 0x76, data at offset 128, ends in newline");
    free(raw);
    free(x);

    // int64 (5,): 1-D shape written "(5,)".
    int64_t iv[5] = {3, -1, 0, 7, (int64_t)1 << 40};
    char fi8[1024];
    snprintf(fi8, sizeof fi8, "%s", test_fixture_path("eval_npy_i8_5.npy"));
    int64_t *li = npy_read_i64(fi8, &info, err, sizeof err);
    CHECK(li && info.ndim == 1 && info.shape[0] == 5 && memcmp(li, iv, sizeof iv) == 0,
          "np.save int64 (5,) read exactly");
    free(li);
    int64_t s5 = 5;
    CHECK(npy_write_i64(out_path("i8_5.npy"), 1, &s5, iv, err, sizeof err) == 0 &&
              same_bytes(out_path("i8_5.npy"), fi8),
          "our int64 (5,) file is byte-equal to np.save's");

    // float64 in Fortran order -> float32, C order.
    fixture_fill(want, 15, 2, -1, 1);
    x = npy_read_f32(test_fixture_path("eval_npy_f8_fortran.npy"), &info, err, sizeof err);
    CHECK(x && info.ndim == 2 && info.shape[0] == 5 && info.shape[1] == 3,
          "Fortran-order float64 (5,3) read");
    if (x) test_close("Fortran float64 values in C order", x, want, 15, 0, 0);
    free(x);

    // Big-endian float32 (2,3,2).
    fixture_fill(want, 12, 3, 0, 5);
    x = npy_read_f32(test_fixture_path("eval_npy_be_f4.npy"), &info, err, sizeof err);
    CHECK(x && info.ndim == 3 && !strcmp(info.descr, ">f4"), "big-endian float32 read");
    if (x) test_close("big-endian float32 values", x, want, 12, 0, 0);
    free(x);

    // int32 labels and uint8 as int64; a 0-d scalar.
    li = npy_read_i64(test_fixture_path("eval_npy_i4_labels.npy"), &info, err, sizeof err);
    int ok = li && info.numel == 10;
    for (int i = 0; ok && i < 10; i++) ok = li[i] == i % 3;
    CHECK(ok, "int32 labels read as int64");
    free(li);
    li = npy_read_i64(test_fixture_path("eval_npy_u1.npy"), &info, err, sizeof err);
    CHECK(li && info.ndim == 2 && li[5] == 5 && li[0] == 0, "uint8 (2,3) read as int64");
    free(li);
    x = npy_read_f32(test_fixture_path("eval_npy_f4_scalar.npy"), &info, err, sizeof err);
    CHECK(x && info.ndim == 0 && info.numel == 1 && x[0] == 2.5f, "0-d float32 scalar read");
    free(x);

    // Float labels that are not whole numbers are refused.
    li = npy_read_i64(f34, &info, err, sizeof err);
    CHECK(!li && strstr(err, "not a whole number"), "non-integral labels refused: %s", err);

    // Round trip of a larger array.
    const int64_t big[2] = {1000, 77};
    float *b = mallocCheck(1000 * 77 * sizeof(float));
    fixture_fill(b, 1000 * 77, 9, -100, 100);
    CHECK(npy_write_f32(out_path("big.npy"), 2, big, b, err, sizeof err) == 0, "write (1000,77)");
    x = npy_read_f32(out_path("big.npy"), &info, err, sizeof err);
    CHECK(x && info.shape[0] == 1000 && info.shape[1] == 77 && memcmp(x, b, 1000 * 77 * 4) == 0,
          "(1000,77) round trip is exact");
    free(x);
    free(b);

    // Bad files: wrong magic, truncated data, missing file.
    FILE *f = fopen(out_path("bad_magic.bin"), "wb");
    fputs("hello, not numpy", f);
    fclose(f);
    x = npy_read_f32(out_path("bad_magic.bin"), &info, err, sizeof err);
    CHECK(!x && strstr(err, "not a .npy file") && !strchr(err, '\n'), "bad magic: %s", err);
    raw = test_read_file(f34, &n);
    f = fopen(out_path("truncated.bin"), "wb");
    fwrite(raw, 1, n - 5, f);
    fclose(f);
    free(raw);
    x = npy_read_f32(out_path("truncated.bin"), &info, err, sizeof err);
    CHECK(!x && strstr(err, "truncated"), "truncated data: %s", err);
    x = npy_read_f32(out_path("does_not_exist.npy"), &info, err, sizeof err);
    CHECK(!x && strstr(err, "cannot open"), "missing file: %s", err);
    remove(out_path("bad_magic.bin"));
    remove(out_path("truncated.bin"));
    return test_finish();
}
