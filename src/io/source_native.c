// Our native files as a TensorSource (tensor_source.h). A training
// checkpoint names its models' tensors "teacher.*", "student.*": the
// selected model's are listed without the prefix.
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/checkpoint.h"
#include "io/tensor_source.h"

typedef struct {
    Ckpt *ck;
    int *at;         // the selected tensors' indices in the file
    int n;
    size_t prefix;   // length of the selected model's "key." prefix, or 0
} NativeSource;

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

// A native training checkpoint: ours ("dino.kind" = "train") or the
// trainer's ("format" = "dino.c training checkpoint").
static int native_is_training(const Ckpt *c) {
    const char *k = ckpt_meta(c, "dino.kind"), *f = ckpt_meta(c, "format");
    return (k && !strcmp(k, "train")) || (f && strstr(f, "training checkpoint"));
}

static int native_count(const void *impl) { return ((const NativeSource *)impl)->n; }

static void native_info(const void *impl, int i, TensorInfo *out) {
    const NativeSource *ns = impl;
    const CkptTensor *t = ckpt_tensor_at(ns->ck, ns->at[i]);
    out->name = t->name + ns->prefix;
    out->file_name = t->name;
    out->dtype = dtype_traits(t->dtype)->name;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->numel = t->numel;
}

// The file was verified whole when opened: nothing left to fail.
static int native_read_f32(void *impl, int i, float *dst, char *err, size_t errlen) {
    const NativeSource *ns = impl;
    const CkptTensor *t = ckpt_tensor_at(ns->ck, ns->at[i]);
    dtype_read_f32(t->dtype, t->data, dst, t->numel);
    return 0;
}

static const char *native_meta(void *impl, const char *key) {
    return ckpt_meta(((NativeSource *)impl)->ck, key);
}

static void native_describe(const void *impl, const char *names, FILE *out) {
    const Ckpt *ck = ((const NativeSource *)impl)->ck;
    fprintf(out, "format: dino.c native (%s), %d tensors\n",
            native_is_training(ck) ? "training checkpoint" : "model", ckpt_n_tensors(ck));
    // Every entry except the trainer's per-flag "arg.*" copies (its "args"
    // entry holds them all).
    int any = 0;
    for (int i = 0; i < ckpt_n_meta(ck); i++) {
        const char *k, *v;
        ckpt_meta_at(ck, i, &k, &v);
        if (starts_with(k, "arg.")) continue;
        if (!any++) fprintf(out, "metadata:\n");
        fprintf(out, "  %s: %.300s%s\n", k, v, strlen(v) > 300 ? "..." : "");
    }
}

static void native_close(void *impl) {
    NativeSource *ns = impl;
    if (!ns) return;
    ckpt_close(ns->ck);
    free(ns->at);
    free(ns);
}

static const TensorSourceOps native_ops = {
    native_count, native_info, native_read_f32, native_meta, native_describe, native_close,
};

int tensor_source_open_native(TensorSource *s, const char *path, const char *key, char *err,
                              size_t errlen) {
    Ckpt *ck = ckpt_open(path, err, errlen);
    if (!ck) return -1;
    const char *want = key ? key : "teacher";
    char prefix[80];
    snprintf(prefix, sizeof prefix, "%s.", want);
    int n = ckpt_n_tensors(ck), with_prefix = 0;
    for (int i = 0; i < n; i++)
        if (starts_with(ckpt_tensor_at(ck, i)->name, prefix)) with_prefix++;
    if (key && !with_prefix && native_is_training(ck)) {
        dino_errf(err, errlen, "%s is a training checkpoint without a '%s' model", path, key);
        ckpt_close(ck);
        return -1;
    }
    NativeSource *ns = callocCheck(1, sizeof *ns);
    ns->ck = ck;
    ns->at = mallocCheck((size_t)(n ? n : 1) * sizeof *ns->at);
    ns->prefix = with_prefix ? strlen(prefix) : 0;
    for (int i = 0; i < n; i++)
        if (!with_prefix || starts_with(ckpt_tensor_at(ck, i)->name, prefix)) ns->at[ns->n++] = i;
    s->ops = &native_ops;
    s->impl = ns;
    s->key = with_prefix ? want : NULL;
    return 0;
}
