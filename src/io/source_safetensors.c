// safetensors files as a TensorSource (tensor_source.h): every tensor of the
// file, and its __metadata__.
#include <string.h>

#include "io/safetensors.h"
#include "io/tensor_source.h"

static int st_count(const void *impl) { return ((const SafeFile *)impl)->n; }

static void st_info(const void *impl, int i, TensorInfo *out) {
    const SafeTensor *t = &((const SafeFile *)impl)->t[i];
    out->name = t->name;
    out->file_name = t->name;
    out->dtype = dtype_traits(t->dtype)->safetensors;
    out->ndim = t->ndim;
    for (int j = 0; j < t->ndim; j++) out->shape[j] = t->shape[j];
    out->numel = t->numel;
}

static int st_read(void *impl, int i, float *dst, char *err, size_t errlen) {
    const SafeFile *sf = impl;
    return safetensors_read_f32(sf, &sf->t[i], dst, err, errlen);
}

static const char *st_meta(void *impl, const char *key) { return safetensors_meta(impl, key); }

static void st_describe(const void *impl, const char *names, FILE *out) {
    const SafeFile *sf = impl;
    fprintf(out, "format: safetensors (%s names), %d tensors\n", names, sf->n);
    for (int i = 0; i < sf->n_meta; i++) {
        if (!i) fprintf(out, "metadata:\n");
        fprintf(out, "  %s: %.200s\n", sf->meta_key[i], sf->meta_value[i]);
    }
}

static void st_close(void *impl) { safetensors_close(impl); }

static const TensorSourceOps safetensors_ops = {
    st_count, st_info, st_read, st_meta, st_describe, st_close,
};

int tensor_source_open_safetensors(TensorSource *s, const char *path, char *err, size_t errlen) {
    SafeFile *sf = safetensors_open(path, err, errlen);
    if (!sf) return -1;
    s->ops = &safetensors_ops;
    s->impl = sf;
    s->key = NULL;
    return 0;
}
