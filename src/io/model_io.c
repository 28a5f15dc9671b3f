// Loading and saving DinoModels in every supported format (model_io.h).
// The file's tensors come through model_source.h under the reference's names,
// the architecture is inferred from them (model_infer.h), the model is built,
// and every table entry is filled from exactly one tensor whose shape must agree.
#include "io/model_io.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/model_infer.h"
#include "io/model_source.h"
#include "io/safetensors.h"

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static void squeeze(const int64_t *shape, int ndim, int64_t *out, int *nout) {
    *nout = 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] != 1) out[(*nout)++] = shape[i];
}

static int same_shape(const ParamInfo *p, const ModelEntry *e) {
    int64_t a[8], b[8];
    int na, nb;
    squeeze(p->shape, p->ndim, a, &na);
    squeeze(e->shape, e->ndim, b, &nb);
    return p->numel == e->numel && na == nb && memcmp(a, b, (size_t)na * sizeof a[0]) == 0;
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

// DINOv3 tensors a file may lack: the RoPE periods (a non-persistent buffer
// in transformers: made from the base) and the qkv bias of ViT-7B (zeros).
static int dinov3_default(const ViTConfig *vit, const char *name) {
    if (vit->rope_base <= 0) return 0;
    size_t l = strlen(name);
    return !strcmp(name, "rope_embed.periods") ||
           (starts_with(name, "blocks.") && l > 14 && !strcmp(name + l - 14, ".attn.qkv.bias"));
}

// Infers, builds and fills. On failure m is zeroed and *params NULL.
static int load_from_source(ModelSource *s, const ModelLoadOptions *opt, DinoModel *m, float **params,
                            char *err, size_t errlen) {
    ModelHeadMode mode = opt ? opt->head : MODEL_HEAD_AUTO;
    ViTConfig vit;
    ResNetConfig rn;
    HeadConfig head;
    int resnet = model_is_resnet(s);
    memset(&vit, 0, sizeof vit);
    if (resnet ? model_infer_resnet(s, &rn, err, errlen) : model_infer_vit(s, opt, &vit, err, errlen))
        return -1;
    int has_head = 0;
    if (mode != MODEL_HEAD_NONE) {
        int r = model_infer_head(s, resnet ? resnet_out_dim(&rn) : vit.dim, &head, err, errlen);
        if (r < 0) return -1;
        has_head = r;
        if (!has_head && mode == MODEL_HEAD_REQUIRE) {
            dino_errf(err, errlen, "%s has no DINO projection head%s", s->path,
                    model_source_find(s, "head.weight") ? " (its head.weight is a classifier)" : "");
            return -1;
        }
    }
    if (resnet) model_build_resnet(m, &rn, has_head ? &head : NULL, has_head);
    else model_build(m, &vit, has_head ? &head : NULL, has_head);
    float *p = NULL;
    // Every tensor is found and its shape checked before memory is allocated,
    // so the allocation is bounded by what the file really holds.
    ModelEntry **src = mallocCheck((size_t)m->table.n * sizeof *src);
    for (int i = 0; i < m->table.n; i++) {
        const ParamInfo *pi = &m->table.p[i];
        const char *nm = pi->name;
        if (starts_with(nm, "backbone.")) nm += 9;
        ModelEntry *e = model_source_find(s, nm);
        if (!e && dinov3_default(&vit, nm)) {  // filled below
            src[i] = NULL;
            continue;
        }
        if (!e) {
            dino_errf(err, errlen, "%s is missing tensor '%s' for the inferred architecture", s->path, nm);
            goto fail;
        }
        if (s->pos_no_cls && !strcmp(nm, "pos_embed")) {  // checked by model_infer_vit, read after a zero row
            src[i] = e;
            continue;
        }
        if (!same_shape(pi, e)) {
            char a[96], b[96];
            shape_str(pi->shape, pi->ndim, a, sizeof a);
            shape_str(e->shape, e->ndim, b, sizeof b);
            dino_errf(err, errlen, "%s: tensor '%s' has shape %s, expected %s", s->path, e->orig, b, a);
            goto fail;
        }
        src[i] = e;
    }
    p = alignedAllocCheck(m->table.total * sizeof(float) + 64);
    for (int i = 0; i < m->table.n; i++) {
        float *dst = p + m->table.p[i].offset;
        if (s->pos_no_cls && !strcmp(m->table.p[i].name + (starts_with(m->table.p[i].name, "backbone.") ? 9 : 0),
                                     "pos_embed")) {
            memset(dst, 0, (size_t)vit.dim * sizeof(float));
            dst += vit.dim;
        }
        const char *tn = m->table.p[i].name + (starts_with(m->table.p[i].name, "backbone.") ? 9 : 0);
        if (!src[i] && !strcmp(tn, "rope_embed.periods"))
            vit_rope_default_periods(&vit, dst);
        else if (!src[i])
            memset(dst, 0, m->table.p[i].numel * sizeof(float));  // DINOv3 without qkv bias
        else if (model_entry_read(s, src[i], dst, err, errlen))
            goto fail;
        if (!strcmp(tn, "rope_embed.periods"))
            for (size_t j = 0; j < m->table.p[i].numel; j++)
                if (!(dst[j] > 0 && dst[j] < 1e30f)) {  // NaN included
                    dino_errf(err, errlen, "%s: rope_embed.periods holds %g, not a positive period", s->path,
                              (double)dst[j]);
                    goto fail;
                }
    }
    // A tensor of the backbone that was not used means a model we do not
    // understand (e.g. more blocks than the numbering suggests).
    for (int i = 0; i < s->n; i++) {
        const ModelEntry *e = &s->e[i];
        if (e->used || e->is_part) continue;
        // (A ResNet's BatchNorm counters are not needed: momentum 0.1 is fixed.)
        if (resnet && !ends_with(e->name, "num_batches_tracked") &&
            (starts_with(e->name, "layer") || starts_with(e->name, "conv1.") || starts_with(e->name, "bn1."))) {
            dino_errf(err, errlen, "%s: tensor '%s' does not belong to the inferred architecture "
                    "(not a supported ResNet)", s->path, e->orig);
            goto fail;
        }
        if (starts_with(e->name, "blocks.") || starts_with(e->name, "patch_embed.") ||
            starts_with(e->name, "norm.")) {
            dino_errf(err, errlen, "%s: tensor '%s' does not belong to the inferred architecture "
                    "(not a supported ViT)", s->path, e->orig);
            goto fail;
        }
        if (has_head && starts_with(e->name, "head.mlp.") && !ends_with(e->name, "num_batches_tracked")) {
            dino_errf(err, errlen, "%s: head tensor '%s' does not belong to the inferred head", s->path,
                    e->orig);
            goto fail;
        }
    }
    free(src);
    *params = p;
    return 0;
fail:
    free(src);
    free(p);
    model_free(m);
    memset(m, 0, sizeof *m);
    *params = NULL;
    return -1;
}

int model_load(const char *path, const ModelLoadOptions *opt, DinoModel *m, float **params,
               char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    *params = NULL;
    ModelSource s;
    if (model_source_open(&s, path, opt ? opt->checkpoint_key : NULL, err, errlen)) return -1;
    int rc = load_from_source(&s, opt, m, params, err, errlen);
    model_source_close(&s);
    return rc;
}

// ---------------------------------------------------------------- saving

typedef struct {
    char k[48];
    char v[48];
} KV;

// At most: 10 ViT settings and 6 of the head.
#define CONFIG_KV_MAX 16

static int config_kv(const DinoModel *m, KV *kv) {
    int n = 0;
#define PUT(key, ...) (snprintf(kv[n].k, sizeof kv[n].k, "%s", key), \
                       snprintf(kv[n].v, sizeof kv[n].v, __VA_ARGS__), n++)
    if (m->backbone == MODEL_BACKBONE_RESNET) {
        // The stem's stride and pooling are not in the tensor shapes.
        PUT("backbone", "resnet");
        PUT("resnet.stem_stride", "%d", m->resnet.stem_stride);
        PUT("resnet.stem_pool", "%d", m->resnet.stem_pool);
        PUT("resnet.bn_eps", "%g", (double)m->resnet.bn_eps);
        goto head;
    }
    PUT("vit.img_size", "%d", m->vit.img_size);
    PUT("vit.patch", "%d", m->vit.patch);
    PUT("vit.in_chans", "%d", m->vit.in_chans);
    PUT("vit.dim", "%d", m->vit.dim);
    PUT("vit.depth", "%d", m->vit.depth);
    PUT("vit.heads", "%d", m->vit.heads);
    PUT("vit.mlp_hidden", "%d", m->vit.mlp_hidden);
    if (m->vit.rope_base > 0) PUT("vit.rope_base", "%.9g", (double)m->vit.rope_base);
    if (m->vit.pos_interp != VIT_POS_INTERP_DINO)
        PUT("vit.pos_interp", "%s", m->vit.pos_interp == VIT_POS_INTERP_SIZE ? "size" : "size_aa");
    {
        // The shortest text that reads back as the same float ("1e-06").
        char e[32];
        for (int prec = 1; prec <= 9; prec++) {
            snprintf(e, sizeof e, "%.*g", prec, (double)m->vit.ln_eps);
            if ((float)strtod(e, NULL) == m->vit.ln_eps) break;
        }
        PUT("vit.ln_eps", "%s", e);
    }
head:
    if (m->has_head) {
        PUT("head.out_dim", "%d", m->head.out_dim);
        PUT("head.nlayers", "%d", m->head.nlayers);
        PUT("head.hidden", "%d", m->head.hidden);
        PUT("head.bottleneck", "%d", m->head.bottleneck);
        PUT("head.norm_last_layer", "%d", m->head.norm_last_layer);
        if (m->head.use_bn) PUT("head.use_bn", "1");
    }
#undef PUT
    return n;
}

void model_meta_write(CkptWriter *w, const DinoModel *m) {
    KV kv[CONFIG_KV_MAX];
    int n = config_kv(m, kv);
    for (int i = 0; i < n; i++) ckpt_add_meta(w, kv[i].k, kv[i].v);
}

int model_save(const char *path, const DinoModel *m, const float *params, char *err, size_t errlen) {
    if (ends_with(path, ".safetensors")) {
        KV kv[CONFIG_KV_MAX];
        int nkv = config_kv(m, kv);
        const char *meta[2 * (CONFIG_KV_MAX + 1)];
        meta[0] = "format";
        meta[1] = "pt";
        for (int i = 0; i < nkv; i++) {
            meta[2 + 2 * i] = kv[i].k;
            meta[3 + 2 * i] = kv[i].v;
        }
        SafeWriteTensor *t = mallocCheck((size_t)m->table.n * sizeof *t);
        for (int i = 0; i < m->table.n; i++) {
            const ParamInfo *pi = &m->table.p[i];
            t[i].name = starts_with(pi->name, "backbone.") ? pi->name + 9 : pi->name;
            t[i].ndim = pi->ndim;
            t[i].shape = pi->shape;
            t[i].data = params + pi->offset;
        }
        int rc = safetensors_write_f32(path, t, m->table.n, meta, nkv + 1, err, errlen);
        free(t);
        return rc;
    }
    CkptWriter *w = ckpt_writer_open(path, err, errlen);
    if (!w) return -1;
    ckpt_add_meta(w, "dino.kind", "model");
    model_meta_write(w, m);
    for (int i = 0; i < m->table.n; i++) {
        const ParamInfo *pi = &m->table.p[i];
        ckpt_add_tensor(w, pi->name, DT_F32, pi->ndim, pi->shape, params + pi->offset);
    }
    return ckpt_writer_commit(w, err, errlen);
}

// ---------------------------------------------------------------- describe

int model_describe(const char *path, const ModelLoadOptions *opt, FILE *out, int all_tensors,
                   char *err, size_t errlen) {
    ModelSource s;
    if (model_source_open(&s, path, opt ? opt->checkpoint_key : NULL, err, errlen)) return -1;
    fprintf(out, "file: %s\n", path);
    tensor_source_describe(&s.src, model_source_naming(&s), out);
    if (s.src.key) fprintf(out, "model: '%s'\n", s.src.key);
    DinoModel m;
    float *params = NULL;
    char lerr[512];
    if (load_from_source(&s, opt, &m, &params, lerr, sizeof lerr) == 0) {
        char desc[256];
        model_describe_backbone(&m, desc, sizeof desc);
        fprintf(out, "architecture: %s\n", desc);
        if (m.has_head)
            fprintf(out, "head: in=%d hidden=%d bottleneck=%d out=%d nlayers=%d norm_last_layer=%d%s\n",
                    m.head.in_dim, m.head.hidden, m.head.bottleneck, m.head.out_dim, m.head.nlayers,
                    m.head.norm_last_layer, m.head.use_bn ? " use_bn=1" : "");
        else
            fprintf(out, "head: none\n");
        size_t bb = 0;
        for (int i = 0; i < m.table.n; i++)
            if (starts_with(m.table.p[i].name, "backbone.")) bb += m.table.p[i].numel;
        fprintf(out, "parameters: %zu (backbone %zu, head %zu)\n", m.table.total, bb, m.table.total - bb);
        free(params);
        model_free(&m);
    } else {
        fprintf(out, "architecture: not loadable: %s\n", lerr);
    }
    int shown = 0, limit = all_tensors ? s.n : 40, count = 0;
    for (int i = 0; i < s.n; i++) count += !s.e[i].is_part;
    fprintf(out, "tensors (%d%s):\n", count, s.src.key ? " in the selected model" : "");
    for (int i = 0; i < s.n; i++) {
        const ModelEntry *e = &s.e[i];
        if (e->is_part) continue;
        if (shown++ >= limit) {
            fprintf(out, "  ... (--all to list every tensor)\n");
            break;
        }
        char sh[96];
        shape_str(e->shape, e->ndim, sh, sizeof sh);
        fprintf(out, "  %-48s %-9s %s\n", e->orig, e->dtype ? e->dtype : "?", sh);
    }
    model_source_close(&s);
    return 0;
}
