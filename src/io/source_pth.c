// PyTorch .pth files as a TensorSource (tensor_source.h): the tensors of one
// dict of the pickle. Which dict, as the reference's loaders look: the
// selected model's ("teacher" by default) when the file has one, else the
// top level when it holds tensors, else the first of the usual wrappers
// ("model", "state_dict", "teacher", "student") that does.
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/pth.h"
#include "io/tensor_source.h"

typedef struct {
    const char *name;
    const PickleValue *t;
} PthTensor;

typedef struct {
    PthFile *pth;
    PthTensor *t;
    int n;
    char meta[32];  // the last metadata value
} PthSource;

static int count_tensors(const PickleValue *d) {
    int c = 0;
    if (!d || d->type != PV_DICT) return 0;
    for (size_t i = 0; i + 1 < d->n; i += 2)
        if (d->items[i + 1]->type == PV_TENSOR) c++;
    return c;
}

static int pth_count(const void *impl) { return ((const PthSource *)impl)->n; }

static void pth_info(const void *impl, int i, TensorInfo *out) {
    const PthTensor *pt = &((const PthSource *)impl)->t[i];
    const PickleValue *v = pt->t;
    out->name = pt->name;
    out->file_name = pt->name;
    out->dtype = dtype_traits(v->storage->st)->name;
    out->ndim = v->ndim;
    for (int j = 0; j < v->ndim; j++) out->shape[j] = v->shape[j];
    out->numel = pth_tensor_numel(v);
}

// Each storage is let go after its tensor, so a load holds one at a time.
static int pth_read(void *impl, int i, float *dst, char *err, size_t errlen) {
    PthSource *ps = impl;
    int rc = pth_tensor_read_f32(ps->pth, ps->t[i].t, dst, err, errlen);
    pth_release_storages(ps->pth);
    return rc;
}

// "args.NAME": a bool or integer attribute of the training run's arguments.
static const char *pth_meta(void *impl, const char *key) {
    PthSource *ps = impl;
    if (strncmp(key, "args.", 5)) return NULL;
    const PickleValue *args = pickle_dict_get(pth_root(ps->pth), "args");
    const PickleValue *v = pickle_attr(args, key + 5);
    if (!v || (v->type != PV_BOOL && v->type != PV_INT)) return NULL;
    snprintf(ps->meta, sizeof ps->meta, "%" PRId64, v->i);
    return ps->meta;
}

static void pth_describe(const void *impl, const char *names, FILE *out) {
    const PickleValue *root = pth_root(((const PthSource *)impl)->pth);
    fprintf(out, "format: PyTorch torch.save zip (.pth)\n");
    fprintf(out, "contents:\n");
    char buf[512];
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const PickleValue *k = root->items[i], *v = root->items[i + 1];
        if (k->type != PV_STR) continue;
        if (v->type == PV_TENSOR) continue;
        if (v->type == PV_DICT && count_tensors(v) > 0) {
            fprintf(out, "  %s: dict of %d tensors\n", k->s, count_tensors(v));
            continue;
        }
        pickle_repr(v, buf, sizeof buf);
        if (strlen(buf) >= sizeof buf - 1) strcpy(buf + sizeof buf - 5, "...");
        fprintf(out, "  %s: %s\n", k->s, buf);
    }
}

static void pth_source_close(void *impl) {
    PthSource *ps = impl;
    if (!ps) return;
    pth_close(ps->pth);
    free(ps->t);
    free(ps);
}

static const TensorSourceOps pth_ops = {
    pth_count, pth_info, pth_read, pth_meta, pth_describe, pth_source_close,
};

// The dict of the model to load (see the top of this file); NULL with err filled.
static const PickleValue *select_dict(const char *path, const PickleValue *root, const char *want,
                                      const char **key, char *err, size_t errlen) {
    if (root->type != PV_DICT) {
        dino_errf(err, errlen, "%s holds a pickled %s, not a dict of tensors (a whole pickled "
                  "model is not read: save its state_dict())", path,
                  root->type == PV_TENSOR ? "tensor" : "object");
        return NULL;
    }
    const PickleValue *sub = pickle_dict_get(root, want);
    if (sub && sub->type == PV_DICT) {
        *key = want;
        return sub;
    }
    if (count_tensors(root) > 0) return root;
    static const char *const wrappers[] = {"model", "state_dict", "teacher", "student"};
    for (size_t i = 0; i < 4; i++) {
        const PickleValue *w = pickle_dict_get(root, wrappers[i]);
        if (w && w->type == PV_DICT && count_tensors(w) > 0) {
            *key = wrappers[i];
            return w;
        }
    }
    dino_errf(err, errlen, "%s has no tensors at its top level nor under '%s'", path, want);
    return NULL;
}

// Collects the tensors of one dict. A tensor with more elements than its
// storage (a broadcast view with zero strides) is no model parameter and
// could make us allocate without bound: refused.
static int collect(PthSource *ps, const char *path, const PickleValue *d, char *err, size_t errlen) {
    ps->t = mallocCheck((d->n / 2 + 1) * sizeof *ps->t);
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        const PickleValue *k = d->items[i], *v = d->items[i + 1];
        if (k->type != PV_STR || v->type != PV_TENSOR) continue;
        if (pth_tensor_numel(v) > v->storage->numel)
            return dino_errf(err, errlen, "%s: tensor '%.100s' is a broadcast view larger than its storage, "
                             "not a model parameter", path, k->s);
        if (pth_storage_check(ps->pth, v->storage, err, errlen)) return -1;
        ps->t[ps->n].name = k->s;
        ps->t[ps->n++].t = v;
    }
    return 0;
}

int tensor_source_open_pth(TensorSource *s, const char *path, const char *key, char *err,
                           size_t errlen) {
    PthFile *pth = pth_open(path, err, errlen);
    if (!pth) return -1;
    PthSource *ps = callocCheck(1, sizeof *ps);
    ps->pth = pth;
    const char *selected = NULL;
    const PickleValue *d = select_dict(path, pth_root(pth), key ? key : "teacher", &selected, err, errlen);
    if (!d || collect(ps, path, d, err, errlen)) {
        pth_source_close(ps);
        return -1;
    }
    s->ops = &pth_ops;
    s->impl = ps;
    s->key = selected;
    return 0;
}
