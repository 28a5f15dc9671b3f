// Tests of the .pth reader (src/io/pth.c) and the safe pickle reader
// (src/io/pickle.c): files written by torch.save with pickle protocols 2 and
// 4 (shared storages, transposed and offset views, f16/bf16/f64/int64
// storages, 0-d tensors, numpy scalars, Namespace, big ints, bytes); hostile
// pickles that name os.system, posix.system, builtins.eval, subprocess.Popen
// (refused, nothing run); tensors reaching outside their storage; short
// storages; compressed entries; legacy and TorchScript files; truncated and
// corrupted zips (refused, or read with identical values: never silently
// different); hand-made pickles with unsupported opcodes, bad memo indices,
// cycles and deep nesting; and random mutations of a real data.pkl.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "io/pickle.h"
#include "io/pth.h"
#include "testlib.h"

static float *read_tensor(PthFile *f, const PickleValue *root, const char *key, size_t *n) {
    const PickleValue *t = pickle_dict_get(root, key);
    if (!t || t->type != PV_TENSOR) return NULL;
    *n = pth_tensor_numel(t);
    float *out = malloc((*n ? *n : 1) * sizeof(float));
    char err[512];
    if (pth_tensor_read_f32(f, t, out, err, sizeof err)) {
        printf("     %s\n", err);
        free(out);
        return NULL;
    }
    return out;
}

static void test_misc(const char *file) {
    char err[512];
    PthFile *f = pth_open(test_fixture_path(file), err, sizeof err);
    CHECK(f != NULL, "%s opens (%s)", file, f ? "ok" : err);
    if (!f) return;
    const PickleValue *r = pth_root(f);
    CHECK(r->type == PV_DICT, "%s: the root is a dict", file);
    // base = arange(12).reshape(3,4)/8
    float base[12];
    for (int i = 0; i < 12; i++) base[i] = (float)i / 8;
    size_t n;
    float *a = read_tensor(f, r, "a", &n);
    CHECK(a && n == 12 && !memcmp(a, base, sizeof base), "%s: a float32 [3,4]", file);
    float *t = read_tensor(f, r, "t", &n);
    int ok = t && n == 12;
    for (int i = 0; ok && i < 4; i++)
        for (int j = 0; j < 3; j++) ok = t[i * 3 + j] == base[j * 4 + i];
    CHECK(ok, "%s: a transposed view (strides 1,4) reads as the transpose", file);
    float *row = read_tensor(f, r, "row", &n);
    CHECK(row && n == 4 && !memcmp(row, base + 4, 16), "%s: a row view (storage offset 4)", file);
    float *col = read_tensor(f, r, "col", &n);
    CHECK(col && n == 3 && col[0] == base[2] && col[1] == base[6] && col[2] == base[10],
          "%s: a column view (offset 2, stride 4)", file);
    const PickleValue *pa = pickle_dict_get(r, "a"), *pt = pickle_dict_get(r, "t");
    CHECK(pa && pt && pa->storage == pt->storage, "%s: views share one storage object", file);
    float *h = read_tensor(f, r, "h", &n), *b = read_tensor(f, r, "b", &n), *d = read_tensor(f, r, "d", &n);
    CHECK(h && b && d && !memcmp(h, base, 48) && !memcmp(b, base, 48) && !memcmp(d, base, 48),
          "%s: float16, bfloat16 and float64 storages convert exactly", file);
    const PickleValue *ph = pickle_dict_get(r, "h"), *pbf = pickle_dict_get(r, "b");
    CHECK(ph && ph->storage->st == DT_F16 && pbf && pbf->storage->st == DT_BF16,
          "%s: HalfStorage and BFloat16Storage recognised", file);
    float *iv = read_tensor(f, r, "i", &n);
    CHECK(iv && n == 5 && iv[4] == 4.0f, "%s: an int64 tensor", file);
    const PickleValue *s = pickle_dict_get(r, "s");
    float *sv = read_tensor(f, r, "s", &n);
    CHECK(s && s->ndim == 0 && sv && n == 1 && sv[0] == 2.5f, "%s: a 0-d tensor", file);
    const PickleValue *np = pickle_dict_get(r, "np");
    CHECK(np && np->type == PV_FLOAT && np->f == 0.25, "%s: numpy.float64 scalar = 0.25", file);
    const PickleValue *ns = pickle_dict_get(r, "ns");
    const PickleValue *x = pickle_attr(ns, "x"), *y = pickle_attr(ns, "y"), *z = pickle_attr(ns, "z");
    CHECK(x && x->type == PV_INT && x->i == 1 && y && y->type == PV_STR && !strcmp(y->s, "z") && z &&
              z->type == PV_LIST && z->n == 3 && z->items[0]->f == 1.5 && z->items[1]->type == PV_NONE &&
              z->items[2]->type == PV_BOOL && z->items[2]->i == 1,
          "%s: argparse.Namespace attributes", file);
    const PickleValue *big = pickle_dict_get(r, "big"), *neg = pickle_dict_get(r, "neg");
    CHECK(big && big->type == PV_FLOAT && big->f == 1180591620717411303424.0 && neg &&
              neg->type == PV_INT && neg->i == -5,
          "%s: 2**70 (as an inert float) and -5", file);
    const PickleValue *by = pickle_dict_get(r, "bytes");
    CHECK(by && by->type == PV_BYTES && by->len == 6 && !memcmp(by->s, "\x00\xff\x80" "abc", 6),
          "%s: bytes through _codecs.encode", file);
    free(a); free(t); free(row); free(col); free(h); free(b); free(d); free(iv); free(sv);
    pth_close(f);
}

static void expect_refused(const char *file, const char *needle, const char *what) {
    char err[512] = "";
    PthFile *f = pth_open(test_fixture_path(file), err, sizeof err);
    CHECK(f == NULL && strstr(err, needle) && strstr(err, file), "%s: %s", what, err);
    pth_close(f);
}

static void test_hostile(void) {
    unlink("/tmp/dino_pwned");
    expect_refused("io_evil_os_system.pth", "os.system", "os.system is refused");
    expect_refused("io_evil_posix_system.pth", "posix.system", "posix.system is refused");
    expect_refused("io_evil_eval.pth", "builtins.eval", "builtins.eval is refused");
    expect_refused("io_evil_subprocess.pth", "subprocess.Popen", "subprocess.Popen via STACK_GLOBAL is refused");
    CHECK(access("/tmp/dino_pwned", F_OK) != 0, "nothing was executed (/tmp/dino_pwned absent)");
    expect_refused("io_evil_oob.pth", "outside", "a tensor past the end of its storage (offset) is refused");
    expect_refused("io_evil_stride.pth", "outside", "a tensor past the end of its storage (stride) is refused");
    expect_refused("io_evil_deflate.pth", "compressed", "a compressed entry is refused");
    expect_refused("io_legacy.pth", "torch.save(torch.load(f), f2)", "the legacy format is refused with a how-to");
    expect_refused("io_torchscript.pt", "TorchScript", "a TorchScript archive is refused");

    char err[512];
    PthFile *f = pth_open(test_fixture_path("io_evil_short_storage.pth"), err, sizeof err);
    CHECK(f != NULL, "a file with a short storage opens (storages are read on demand)");
    if (f) {
        size_t n;
        float *v = read_tensor(f, pth_root(f), "w", &n);
        const PickleValue *t = pickle_dict_get(pth_root(f), "w");
        float out[12];
        int rc = pth_tensor_read_f32(f, t, out, err, sizeof err);
        CHECK(!v && rc == -1 && strstr(err, "40 bytes"), "reading its tensor is refused: %s", err);
        pth_close(f);
    }
    f = pth_open(test_fixture_path("io_ok_tensor.pth"), err, sizeof err);
    CHECK(f != NULL, "the same hand-made file with a full storage opens (%s)", f ? "ok" : err);
    if (f) {
        size_t n;
        float *v = read_tensor(f, pth_root(f), "w", &n);
        CHECK(v && n == 12 && v[0] == 0 && v[11] == 11, "and reads 0..11");
        free(v);
        pth_close(f);
    }
}

// Reads every tensor of the backbone file into one array (NULL on refusal).
static float *read_all(const char *path, size_t *total, char *err, size_t errlen) {
    PthFile *f = pth_open(path, err, errlen);
    if (!f) return NULL;
    const PickleValue *r = pth_root(f);
    size_t cap = 0;
    for (size_t i = 0; i + 1 < r->n; i += 2)
        if (r->items[i + 1]->type == PV_TENSOR) cap += pth_tensor_numel(r->items[i + 1]);
    float *all = malloc((cap ? cap : 1) * sizeof(float));
    size_t pos = 0;
    for (size_t i = 0; i + 1 < r->n; i += 2) {
        const PickleValue *t = r->items[i + 1];
        if (t->type != PV_TENSOR) continue;
        if (pth_tensor_read_f32(f, t, all + pos, err, errlen)) {
            free(all);
            pth_close(f);
            return NULL;
        }
        pos += pth_tensor_numel(t);
    }
    *total = pos;
    pth_close(f);
    return all;
}

static void test_truncated_and_corrupt(void) {
    char err[512];
    const char *src = test_fixture_path("io_vit_bb.pth");
    size_t n, total0;
    uint8_t *orig = test_read_file(src, &n);
    float *ref = read_all(src, &total0, err, sizeof err);
    CHECK(orig && ref && total0 == 54080, "the backbone file reads 54080 values");
    if (!orig || !ref) return;
    const char *bad = test_tmp_path("bad.pth");
    int refused = 0, tried = 0;
    size_t lens[] = {0, 1, 3, 4, 30, 100, 1000, n / 3, n / 2, n - 1000, n - 100, n - 22, n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        test_write_file(bad, orig, lens[i]);
        size_t tot;
        float *v = read_all(bad, &tot, err, sizeof err);
        tried++;
        if (!v && strstr(err, bad)) refused++;
        free(v);
    }
    CHECK(refused == tried, "every truncated copy is refused with the file named: %d/%d", refused, tried);
    // Flip bytes across the file: each copy is refused or reads identical values.
    uint8_t *m = malloc(n);
    int silent = 0, accepted = 0, rejected = 0;
    for (size_t pos = 7; pos < n; pos += 211) {
        memcpy(m, orig, n);
        m[pos] ^= 0x5a;
        test_write_file(bad, m, n);
        size_t tot;
        float *v = read_all(bad, &tot, err, sizeof err);
        if (v) {
            accepted++;
            if (tot != total0 || memcmp(v, ref, total0 * sizeof(float))) silent++;
            free(v);
        } else {
            rejected++;
        }
    }
    CHECK(silent == 0, "no corrupted copy loads different values (%d refused, %d harmless flips)",
          rejected, accepted);
    CHECK(rejected > accepted, "most flips land in checked bytes (CRC, sizes, pickle): %d vs %d", rejected,
          accepted);
    free(m);
    free(ref);
    free(orig);
}

static PickleDoc *parse(const char *bytes, size_t n, char *err, size_t errlen) {
    return pickle_parse((const uint8_t *)bytes, n, "test", err, errlen);
}

static void test_handmade_pickles(void) {
    char err[512];
    struct {
        const char *what;
        const char *bytes;
        size_t n;
        const char *needle;
    } bad[] = {
#define P(lit) lit, sizeof(lit) - 1
        {"INST opcode (calls a class)", P("\x80\x02(ios\nsystem\nX\x02\x00\x00\x00id."), "opcode 0x69"},
        {"OBJ opcode", P("\x80\x02(cos\nsystem\no."), "not on the allow-list"},
        {"protocol 0 INT", P("I42\n."), "opcode 0x49"},
        {"protocol 6", P("\x80\x06N."), "protocol 6"},
        {"memo index 2^32-1", P("\x80\x02Nr\xff\xff\xff\xff."), "memo index"},
        {"BINGET of an unset memo", P("\x80\x02h\x05."), "memo entry 5"},
        {"stack underflow", P("\x80\x02s."), "underflow"},
        {"no STOP", P("\x80\x02N"), "truncated"},
        {"string longer than the data", P("\x80\x02X\xff\xff\xff\x7f"), "truncated"},
        {"bytes after STOP", P("\x80\x02N.N"), "after the pickle's STOP"},
        {"two values at STOP", P("\x80\x02NN."), "STOP with 2"},
        {"SETITEM on a list", P("\x80\x02]NNs."), "not a dict"},
        {"REDUCE on a string", P("\x80\x02X\x01\x00\x00\x00" "a)R."), "not an allowed global"},
        {"persistent id that is not a storage", P("\x80\x02NQ."), "persistent id"},
        {"torch.load itself", P("\x80\x02" "ctorch\nload\n."), "torch.load"},
        {"copyreg._reconstructor", P("\x80\x02" "ccopyreg\n_reconstructor\n."), "copyreg._reconstructor"},
        // numpy's _reconstruct is allowed for 1-D arrays (the revisited ground truth), nothing else.
        {"numpy _reconstruct of a non-array", P("\x80\x02" "cnumpy.core.multiarray\n_reconstruct\nN\x85R."),
         "other than numpy.ndarray"},
        {"builtins.getattr", P("\x80\x02" "c__builtin__\ngetattr\n."), "builtins.getattr"},
#undef P
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        PickleDoc *d = parse(bad[i].bytes, bad[i].n, err, sizeof err);
        CHECK(d == NULL && strstr(err, bad[i].needle), "%s is refused: %s", bad[i].what, err);
        pickle_free(d);
    }
    // A list that contains itself (through the memo) parses, and printing it terminates.
    PickleDoc *d = parse("\x80\x02]q\x00h\x00" "a.", 9, err, sizeof err);
    CHECK(d != NULL, "a self-containing list parses (%s)", d ? "ok" : err);
    if (d) {
        char buf[256];
        pickle_repr(pickle_root(d), buf, sizeof buf);
        CHECK(strstr(buf, "...") != NULL, "and its repr is cut off: %s", buf);
        pickle_free(d);
    }
    // 100000 nested lists: no recursion in the parser.
    size_t depth = 100000, k = 0;
    char *deep = malloc(2 + depth + depth + 1);
    deep[k++] = '\x80';
    deep[k++] = 2;
    for (size_t i = 0; i < depth; i++) deep[k++] = ']';
    for (size_t i = 0; i + 1 < depth; i++) deep[k++] = 'a';
    deep[k++] = '.';
    d = parse(deep, k, err, sizeof err);
    CHECK(d != NULL, "100000 nested lists parse without recursion (%s)", d ? "ok" : err);
    if (d) {
        char buf[64];
        pickle_repr(pickle_root(d), buf, sizeof buf);
        pickle_free(d);
    }
    free(deep);
}

// Random byte mutations of a real data.pkl: never a crash (run under ASan
// with `make asan` for memory errors), always a clean result or error.
static void test_mutations(void) {
    int zerr;
    zip_t *z = zip_open(test_fixture_path("io_misc_p2.pth"), ZIP_RDONLY, &zerr);
    if (!z) { CHECK(0, "open io_misc_p2.pth with libzip"); return; }
    zip_int64_t idx = zip_name_locate(z, "io_misc_p2/data.pkl", 0);
    zip_stat_t st;
    zip_stat_index(z, (zip_uint64_t)idx, 0, &st);
    uint8_t *pkl = malloc(st.size);
    zip_file_t *zf = zip_fopen_index(z, (zip_uint64_t)idx, 0);
    zip_int64_t got = zf ? zip_fread(zf, pkl, st.size) : -1;
    if (zf) zip_fclose(zf);
    zip_close(z);
    CHECK(idx >= 0 && got == (zip_int64_t)st.size, "extract data.pkl (%llu bytes)", (unsigned long long)st.size);
    if (got != (zip_int64_t)st.size) { free(pkl); return; }
    char err[512];
    uint8_t *m = malloc(st.size);
    uint64_t state = 12345;
    int ok = 0, refused = 0, worked = 1;
    for (int it = 0; it < 20000; it++) {
        memcpy(m, pkl, st.size);
        int flips = 1 + it % 4;
        for (int j = 0; j < flips; j++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(state >> 33) % st.size;
            m[pos] = (uint8_t)(state >> 17);
        }
        size_t len = st.size;
        if (it % 5 == 0) len = (size_t)(state >> 40) % st.size;  // also truncate
        err[0] = 0;
        PickleDoc *d = pickle_parse(m, len, "mutant", err, sizeof err);
        if (d) {
            ok++;
            char buf[512];
            pickle_repr(pickle_root(d), buf, sizeof buf);
            pickle_free(d);
        } else {
            refused++;
            if (!strstr(err, "mutant")) worked = 0;
        }
    }
    CHECK(worked && ok + refused == 20000,
          "20000 mutated pickles: %d parsed, %d refused with a message, no crash", ok, refused);
    free(m);
    free(pkl);
}

int main(void) {
    test_tmpdir("pth");
    test_misc("io_misc_p2.pth");
    test_misc("io_misc_p4.pth");
    test_hostile();
    test_truncated_and_corrupt();
    test_handmade_pickles();
    test_mutations();
    test_tmpdir_remove();
    return test_finish();
}
