// Tests of the one reader interface over every tensor format
// (src/io/tensor_source.c and its three readers): each format lists the same
// tensors, names, shapes and float32 values as its own reader; find() gives
// every name's index; a training checkpoint's model is selected (the native
// prefix removed, .pth's dict chosen, an absent native model refused);
// metadata of each format (.pth's args.*); a wrong read size, a missing file
// and an unknown format are refused with the file's name.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"
#include "testlib.h"

// Every tensor: find() returns its own index and the values equal want(i).
typedef int (*ReadDirect)(void *ctx, int i, float *dst, size_t n);

static void check_all_tensors(TensorSource *s, const char *what, ReadDirect direct, void *ctx) {
    char err[512];
    int n = tensor_source_count(s), found = 0, same = 0;
    for (int i = 0; i < n; i++) {
        TensorInfo t;
        tensor_source_info(s, i, &t);
        found += tensor_source_find(s, t.name) == i;
        float *a = malloc((t.numel + 1) * sizeof(float)), *b = malloc((t.numel + 1) * sizeof(float));
        int ra = tensor_source_read_f32(s, i, a, t.numel, err, sizeof err);
        int rb = direct(ctx, i, b, t.numel);
        same += ra == 0 && rb == 0 && memcmp(a, b, t.numel * sizeof(float)) == 0;
        free(a);
        free(b);
    }
    CHECK(n > 0 && found == n && same == n, "%s: %d tensors, %d found by name, %d read as the format's reader does",
          what, n, found, same);
    CHECK(tensor_source_find(s, "no.such.tensor") == -1, "%s: an absent name is not found", what);
}

// ---------------------------------------------------------------- .pth

typedef struct {
    PthFile *f;
    const PickleValue *dict;
} PthCtx;

// The i-th tensor of the dict, as pth.h reads it.
static const PickleValue *pth_nth(const PthCtx *c, int i, const char **name) {
    for (size_t k = 0; k + 1 < c->dict->n; k += 2) {
        const PickleValue *key = c->dict->items[k], *v = c->dict->items[k + 1];
        if (key->type != PV_STR || v->type != PV_TENSOR) continue;
        if (i-- == 0) {
            *name = key->s;
            return v;
        }
    }
    return NULL;
}

static int pth_direct(void *ctx, int i, float *dst, size_t n) {
    char err[512];
    const char *name;
    const PickleValue *t = pth_nth(ctx, i, &name);
    return t && pth_tensor_numel(t) == n ? pth_tensor_read_f32(((PthCtx *)ctx)->f, t, dst, err, sizeof err) : -1;
}

static void test_pth(void) {
    char err[512];
    const char *path = test_fixture_path("io_vit_train.pth");
    TensorSource s;
    int rc = tensor_source_open(&s, path, NULL, err, sizeof err);
    CHECK(rc == 0 && s.key && !strcmp(s.key, "teacher"), "a DINO .pth selects its teacher (%s)", rc ? err : "ok");
    if (rc) return;
    PthCtx c = {pth_open(path, err, sizeof err), NULL};
    c.dict = pickle_dict_get(pth_root(c.f), "teacher");
    int names_ok = 1;
    for (int i = 0; i < tensor_source_count(&s); i++) {
        TensorInfo t;
        const char *name;
        tensor_source_info(&s, i, &t);
        const PickleValue *v = pth_nth(&c, i, &name);
        names_ok &= v && !strcmp(t.name, name) && !strcmp(t.file_name, name) && t.ndim == v->ndim &&
                    !memcmp(t.shape, v->shape, (size_t)v->ndim * sizeof t.shape[0]) && !strcmp(t.dtype, "float32");
    }
    CHECK(names_ok && tensor_source_count(&s) == 38,
          "the teacher's 38 tensors in dict order, with names, shapes, types");
    check_all_tensors(&s, ".pth teacher", pth_direct, &c);
    // A value lasts until the next call: copied.
    char nll[32], out_dim[32];
    const char *v = tensor_source_meta(&s, "args.norm_last_layer");
    snprintf(nll, sizeof nll, "%s", v ? v : "NULL");
    v = tensor_source_meta(&s, "args.out_dim");
    snprintf(out_dim, sizeof out_dim, "%s", v ? v : "NULL");
    CHECK(!strcmp(nll, "1") && !strcmp(out_dim, "32") && !tensor_source_meta(&s, "args.arch") &&
              !tensor_source_meta(&s, "epoch") && !tensor_source_meta(&s, "args.absent"),
          ".pth metadata: args' bools and integers only (%s, %s)", nll, out_dim);
    float one[64];
    rc = tensor_source_read_f32(&s, 0, one, 1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, path), "a read of the wrong size is refused, naming the file: %s", err);
    pth_close(c.f);
    tensor_source_close(&s);

    rc = tensor_source_open(&s, path, "student", err, sizeof err);
    CHECK(rc == 0 && s.key && !strcmp(s.key, "student") && tensor_source_count(&s) == 38,
          "--checkpoint_key student selects the student's dict (%s)", rc ? err : "ok");
    if (!rc) tensor_source_close(&s);
    rc = tensor_source_open(&s, test_fixture_path("io_vit_bb.pth"), NULL, err, sizeof err);
    CHECK(rc == 0 && !s.key && tensor_source_find(&s, "cls_token") >= 0,
          "a backbone state_dict is used whole (%s)", rc ? err : "ok");
    if (!rc) tensor_source_close(&s);
}

// ---------------------------------------------------------------- safetensors

static int st_direct(void *ctx, int i, float *dst, size_t n) {
    char err[512];
    const SafeFile *f = ctx;
    return f->t[i].numel == n ? safetensors_read_f32(f, &f->t[i], dst, err, sizeof err) : -1;
}

static void test_safetensors(void) {
    char err[512];
    const char *path = test_fixture_path("io_vit_timm.safetensors");
    TensorSource s;
    int rc = tensor_source_open(&s, path, "student", err, sizeof err);
    CHECK(rc == 0 && !s.key, "safetensors opens whole, whatever the key (%s)", rc ? err : "ok");
    if (rc) return;
    SafeFile *f = safetensors_open(path, err, sizeof err);
    int names_ok = tensor_source_count(&s) == f->n;
    for (int i = 0; names_ok && i < f->n; i++) {
        TensorInfo t;
        tensor_source_info(&s, i, &t);
        names_ok = !strcmp(t.name, f->t[i].name) && t.numel == f->t[i].numel && !strcmp(t.dtype, "F32");
    }
    CHECK(names_ok, "safetensors: the file's tensors in header order, type names as its header's");
    check_all_tensors(&s, "safetensors", st_direct, f);
    const char *fmt = tensor_source_meta(&s, "format");
    CHECK(fmt && !strcmp(fmt, "pt") && !tensor_source_meta(&s, "absent"), "safetensors metadata is __metadata__");
    safetensors_close(f);
    tensor_source_close(&s);
}

// ---------------------------------------------------------------- native

typedef struct {
    const TensorSource *s;
    const Ckpt *ck;
} NativeCtx;

// The tensor of that full name, as checkpoint.h reads it.
static int native_direct(void *ctx, int i, float *dst, size_t n) {
    const NativeCtx *c = ctx;
    TensorInfo info;
    tensor_source_info(c->s, i, &info);
    const CkptTensor *t = ckpt_tensor(c->ck, info.file_name);
    if (!t || t->numel != n) return -1;
    dtype_read_f32(t->dtype, t->data, dst, n);
    return 0;
}

static void test_native(void) {
    char err[512];
    const char *path = test_tmp_path("train.dino");
    CkptWriter *w = ckpt_writer_open(path, err, sizeof err);
    ckpt_add_meta(w, "dino.kind", "train");
    ckpt_add_meta(w, "epoch", "4");
    float a[6] = {1, -2, 3.5f, 4, 5, 6};
    uint16_t h[2] = {0x3c00, 0xc000};  // 1, -2 as float16
    int64_t s23[2] = {2, 3}, s2[1] = {2};
    ckpt_add_tensor(w, "teacher.w", DT_F32, 2, s23, a);
    ckpt_add_tensor(w, "teacher.b", DT_F16, 1, s2, h);
    ckpt_add_tensor(w, "student.w", DT_F32, 2, s23, a);
    int rc = ckpt_writer_commit(w, err, sizeof err);
    CHECK(rc == 0, "a native training checkpoint is written (%s)", rc ? err : "ok");

    TensorSource s;
    rc = tensor_source_open(&s, path, NULL, err, sizeof err);
    CHECK(rc == 0 && s.key && !strcmp(s.key, "teacher"), "a native training checkpoint selects its teacher (%s)",
          rc ? err : "ok");
    if (rc) return;
    TensorInfo t;
    tensor_source_info(&s, 1, &t);
    CHECK(tensor_source_count(&s) == 2 && !strcmp(t.name, "b") && !strcmp(t.file_name, "teacher.b") &&
              !strcmp(t.dtype, "float16") && t.ndim == 1 && t.shape[0] == 2 && t.numel == 2,
          "the teacher's tensors without their prefix: %s (%s) %s", t.name, t.file_name, t.dtype);
    NativeCtx c = {&s, ckpt_open(path, err, sizeof err)};
    check_all_tensors(&s, "native teacher", native_direct, &c);
    ckpt_close((Ckpt *)c.ck);
    const char *ep = tensor_source_meta(&s, "epoch");
    CHECK(ep && !strcmp(ep, "4") && !tensor_source_meta(&s, "args.epoch"), "native metadata is the file's own");
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    tensor_source_describe(&s, "timm/DINO", out);
    fclose(out);
    CHECK(strstr(text, "format: dino.c native (training checkpoint), 3 tensors") && strstr(text, "epoch: 4"),
          "describe names the kind, counts the whole file and lists metadata: %s", text);
    free(text);
    tensor_source_close(&s);

    rc = tensor_source_open(&s, path, "student", err, sizeof err);
    CHECK(rc == 0 && tensor_source_count(&s) == 1 && tensor_source_find(&s, "w") == 0,
          "--checkpoint_key student selects the student (%s)", rc ? err : "ok");
    if (!rc) tensor_source_close(&s);
    rc = tensor_source_open(&s, path, "ema", err, sizeof err);
    CHECK(rc == -1 && strstr(err, path) && strstr(err, "'ema'") && s.ops == NULL,
          "an absent model of a training checkpoint is refused: %s", err);
}

static void test_refusals(void) {
    char err[512];
    TensorSource s;
    const char *missing = test_tmp_path("absent.pth");
    int rc = tensor_source_open(&s, missing, NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, missing) && strstr(err, "cannot open"), "a missing file: %s", err);
    const char *text = test_tmp_path("notes.txt");
    test_write_file(text, "just some text, no tensors\n", 27);
    rc = tensor_source_open(&s, text, NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, text) && strstr(err, "not a dino.c native file"), "an unknown format: %s", err);
    rc = tensor_source_open(&s, test_fixture_path("io_evil_os_system.pth"), NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "io_evil_os_system.pth") && s.ops == NULL,
          "a .pth the pickle reader refuses is refused here: %s", err);
    // A safetensors header naming one tensor twice (JSON allows it).
    static const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                              "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char buf[8 + sizeof hdr - 1 + 4] = {0};
    buf[0] = (unsigned char)(sizeof hdr - 1);
    memcpy(buf + 8, hdr, sizeof hdr - 1);
    const char *twice = test_tmp_path("twice.safetensors");
    test_write_file(twice, buf, sizeof buf);
    rc = tensor_source_open(&s, twice, NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, twice) && strstr(err, "'w'") && s.ops == NULL,
          "a safetensors name given twice is refused: %s", err);
}

int main(void) {
    test_tmpdir("tensor_source");
    test_pth();
    test_safetensors();
    test_native();
    test_refusals();
    test_tmpdir_remove();
    return test_finish();
}
