// Format detection and the calls every reader shares (tensor_source.h).
#include "io/tensor_source.h"

#include <errno.h>
#include <string.h>

#include "common.h"
#include "io/checkpoint.h"
#include "io/pth.h"
#include "io/safetensors.h"

int tensor_source_open(TensorSource *s, const char *path, const char *key, char *err,
                       size_t errlen) {
    memset(s, 0, sizeof *s);
    s->path = path;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        dino_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    fclose(fp);
    int rc;
    if (ckpt_is_native(path)) rc = tensor_source_open_native(s, path, key, err, errlen);
    else if (pth_sniff(path)) rc = tensor_source_open_pth(s, path, key, err, errlen);
    else if (safetensors_sniff(path)) rc = tensor_source_open_safetensors(s, path, err, errlen);
    else
        rc = dino_errf(err, errlen, "%s is not a dino.c native file, a PyTorch .pth or a safetensors file",
                       path);
    if (rc) {
        memset(s, 0, sizeof *s);
        return -1;
    }
    // Names are the reader's own strings, which live until close. A name
    // given twice (a hostile safetensors header can) is refused, not shadowed.
    int n = tensor_source_count(s);
    for (int i = 0; i < n; i++) {
        TensorInfo t;
        tensor_source_info(s, i, &t);
        if (key_index_add(&s->names, 0, t.name, strlen(t.name), (size_t)i) != (size_t)i) {
            dino_errf(err, errlen, "%s: two tensors are named '%s'", path, t.name);
            tensor_source_close(s);
            return -1;
        }
    }
    return 0;
}

void tensor_source_close(TensorSource *s) {
    if (s->ops) s->ops->close(s->impl);
    key_index_free(&s->names);
    memset(s, 0, sizeof *s);
}

int tensor_source_count(const TensorSource *s) { return s->ops->count(s->impl); }

void tensor_source_info(const TensorSource *s, int i, TensorInfo *out) {
    DINO_ASSERT(i >= 0 && i < tensor_source_count(s));
    memset(out, 0, sizeof *out);
    s->ops->info(s->impl, i, out);
}

int tensor_source_find(const TensorSource *s, const char *name) {
    size_t i = key_index_get(&s->names, 0, name, strlen(name));
    return i == KEY_INDEX_NONE ? -1 : (int)i;
}

int tensor_source_read_f32(TensorSource *s, int i, float *dst, size_t n, char *err,
                           size_t errlen) {
    TensorInfo t;
    tensor_source_info(s, i, &t);
    if (n != t.numel)
        return dino_errf(err, errlen, "%s: tensor '%s' has %zu values, not the %zu asked for", s->path,
                         t.file_name, t.numel, n);
    return s->ops->read_f32(s->impl, i, dst, err, errlen);
}

const char *tensor_source_meta(TensorSource *s, const char *key) { return s->ops->meta(s->impl, key); }

void tensor_source_describe(const TensorSource *s, const char *names, FILE *out) {
    s->ops->describe(s->impl, names, out);
}
