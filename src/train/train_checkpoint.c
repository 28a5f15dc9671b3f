// Training checkpoints (see trainer.h): the student, teacher, optimizer
// state, centre, position and epoch sums, plus the settings the run was
// started with, and the compatibility check of a resume against them
// (train_settings.h's resume class of each setting).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/checkpoint.h"
#include "io/model_io.h"
#include "train/trainer.h"

typedef struct {
    char key[48];
    char value[256];
    TrainSettingResume resume;
} CfgItem;

#define MAX_ITEMS 80

// The settings train_settings.h records, then what follows from them.
static int config_items(const Trainer *t, CfgItem *it) {
    // The model's shape as built: --arch vit_small with --embed_dim 0 and
    // with --embed_dim 384 are one model.
    TrainConfig c = t->cfg;
    const ViTConfig *v = &t->model.vit;
    const HeadConfig *h = &t->model.head;
    c.patch_size = v->patch;
    c.embed_dim = v->dim;
    c.depth = v->depth;
    c.num_heads = v->heads;
    c.img_size = v->img_size;
    c.out_dim = h->out_dim;
    c.head_hidden_dim = h->hidden;
    c.head_bottleneck_dim = h->bottleneck;
    c.head_nlayers = h->nlayers;
    c.norm_last_layer = h->norm_last_layer;
    c.use_bn_in_head = h->use_bn;
    int n = 0;
    for (int i = 0; i < train_settings_count; i++) {
        const TrainSetting *s = &train_settings[i];
        if (s->resume == TS_NOT_RECORDED) continue;
        snprintf(it[n].key, sizeof it[n].key, "%s", s->name);
        train_setting_format(s, &c, it[n].value, sizeof it[n].value);
        it[n++].resume = s->resume;
    }
#define ITEM(k, r, ...) (snprintf(it[n].key, sizeof it[n].key, "%s", k), \
                         snprintf(it[n].value, sizeof it[n].value, __VA_ARGS__), it[n].resume = r, n++)
    // Any split of the same global batch over ranks sees the same images per
    // iteration (DistributedSampler order), so a run may resume on another
    // world size: the global batch must agree, its factors are recorded only.
    ITEM("global_batch", TS_MUST_MATCH, "%d", c.batch_size_per_gpu * (c.world_size > 0 ? c.world_size : 1));
    ITEM("world_size", TS_RECORDED, "%d", c.world_size);
    ITEM("iterations_per_epoch", TS_MUST_MATCH, "%lld", (long long)t->niter_per_ep);
#undef ITEM
    DINO_ASSERT(n <= MAX_ITEMS);
    return n;
}

// Settings recorded since a later version than the first checkpoints: the
// value that older checkpoints, which lack them, were trained with, or NULL
// where that is unknown (a flag of any value), which is then not compared.
static int recorded_later(const char *key, const char **value) {
    static const char *const later[][2] = {
        {"koleo_loss_weight", "0"}, {"blur_sigma", NULL}, {"solarization_prob", NULL},
        {"jpeg_min_side", NULL},    {"device", NULL},     {"use_bn_in_head", "0"},
    };
    for (size_t i = 0; i < sizeof later / sizeof *later; i++)
        if (!strcmp(key, later[i][0])) return *value = later[i][1], 1;
    return 0;
}

static void prefixed(char *buf, size_t n, const char *prefix, const char *name) {
    int len = snprintf(buf, n, "%s%s", prefix, name);
    DINO_ASSERT(len > 0 && (size_t)len < n);
}

int trainer_save(const Trainer *t, const char *path, char *err, size_t errlen) {
    t->engine->ops->download(t->engine);  // the engine's state is the current one
    CkptWriter *w = ckpt_writer_open(path, err, errlen);
    if (!w) return -1;
    char buf[128];
    ckpt_add_meta(w, "format", "dino.c training checkpoint");
    ckpt_add_meta(w, "format_version", "1");
    snprintf(buf, sizeof buf, "%d", t->epoch);
    ckpt_add_meta(w, "epoch", buf);  // the next epoch to run = completed epochs when step == 0
    snprintf(buf, sizeof buf, "%lld", (long long)t->step);
    ckpt_add_meta(w, "step", buf);   // the next iteration within that epoch
    snprintf(buf, sizeof buf, "%lld", (long long)((int64_t)t->epoch * t->niter_per_ep + t->step));
    ckpt_add_meta(w, "global_step", buf);
    snprintf(buf, sizeof buf, "%.17g %.17g %.17g %lld", t->ep_loss, t->ep_lr, t->ep_wd,
             (long long)t->ep_count);
    ckpt_add_meta(w, "epoch_sums", buf);
    CfgItem items[MAX_ITEMS];
    int ni = config_items(t, items);
    char json[8192];
    size_t o = 0;
    o += snprintf(json + o, sizeof json - o, "{");
    for (int i = 0; i < ni; i++) {
        char k[64];
        snprintf(k, sizeof k, "arg.%.47s", items[i].key);
        ckpt_add_meta(w, k, items[i].value);
        if (o < sizeof json)
            o += snprintf(json + o, sizeof json - o, "%s\"%s\": \"%s\"", i ? ", " : "", items[i].key,
                          items[i].value);
    }
    if (o < sizeof json) snprintf(json + o, sizeof json - o, "}");
    ckpt_add_meta(w, "args", json);
    model_meta_write(w, &t->model);  // vit.* / head.*: model_load needs no inference

    const ParamTable *tab = &t->model.table;
    char name[160];
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->p[i];
        prefixed(name, sizeof name, "student.", p->name);
        ckpt_add_tensor(w, name, DT_F32, p->ndim, p->shape, t->student + p->offset);
    }
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->p[i];
        prefixed(name, sizeof name, "teacher.", p->name);
        ckpt_add_tensor(w, name, DT_F32, p->ndim, p->shape, t->teacher + p->offset);
    }
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->p[i];
        if (!p->trainable) continue;
        prefixed(name, sizeof name, "optimizer.m.", p->name);
        ckpt_add_tensor(w, name, DT_F32, p->ndim, p->shape, t->opt.m + p->offset);
        if (t->opt.v) {
            prefixed(name, sizeof name, "optimizer.v.", p->name);
            ckpt_add_tensor(w, name, DT_F32, p->ndim, p->shape, t->opt.v + p->offset);
        }
    }
    int64_t nshape[1] = {tab->n};
    ckpt_add_tensor(w, "optimizer.step", DT_I64, 1, nshape, t->opt.step);
    int64_t cshape[2] = {1, t->cfg.out_dim};
    ckpt_add_tensor(w, "dino_loss.center", DT_F32, 2, cshape, t->loss.center);
    return ckpt_writer_commit(w, err, errlen);
}

static const CkptTensor *want_tensor(const Ckpt *ck, const char *path, const char *name,
                                     DType dt, int ndim, const int64_t *shape, char *err,
                                     size_t errlen) {
    const CkptTensor *x = ckpt_tensor(ck, name);
    if (!x) {
        snprintf(err, errlen, "%s has no tensor '%s'; it is not a checkpoint of this configuration", path, name);
        return NULL;
    }
    int ok = x->dtype == dt && x->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = x->shape[d] == shape[d];
    if (!ok) {
        snprintf(err, errlen, "%s: tensor '%s' has another type or shape than this configuration needs", path, name);
        return NULL;
    }
    return x;
}

// A recorded value as a message shows it: numbers and pairs of numbers are
// stored with 17 significant digits so that they compare exactly, and shown
// short; other values (paths, names) as they are.
static const char *shown_value(char *buf, size_t n, const char *v) {
    char *end, *end2;
    double x = strtod(v, &end);
    if (!*v || (*end && *end != ' ')) return v;
    dino_format_double(buf, n, x);
    if (!*end) return buf;
    double y = strtod(end, &end2);  // a pair, "a b"
    if (end2 == end + 1 || *end2) return v;
    size_t len = strlen(buf);
    buf[len] = ' ';
    dino_format_double(buf + len + 1, n - len - 1, y);
    return buf;
}

int trainer_load(Trainer *t, const char *path, char *err, size_t errlen) {
    Ckpt *ck = ckpt_open(path, err, errlen);
    if (!ck) return -1;
    int rc = -1;
    const char *fmt = ckpt_meta(ck, "format");
    if (!fmt || strcmp(fmt, "dino.c training checkpoint") != 0) {
        snprintf(err, errlen, "%s is not a dino.c training checkpoint", path);
        goto done;
    }
    CfgItem items[MAX_ITEMS];
    int ni = config_items(t, items);
    for (int i = 0; i < ni; i++) {
        char k[64];
        snprintf(k, sizeof k, "arg.%.47s", items[i].key);
        const char *v = ckpt_meta(ck, k);
        if (items[i].resume == TS_RECORDED) continue;
        if (!v && !recorded_later(items[i].key, &v)) {
            snprintf(err, errlen, "%s does not record --%s; it was written by another version", path, items[i].key);
            goto done;
        }
        if (!v || strcmp(v, items[i].value) == 0) continue;
        if (items[i].resume == TS_MUST_MATCH) {
            snprintf(err, errlen,
                     "%s was written with --%s %s, this run asks for %s; resume with the same value or use another --output_dir",
                     path, items[i].key, v, items[i].value);
            goto done;
        }
        char was[64], now[64];
        dino_warn("resuming %s written with --%s %s; this run uses %s, so it will not match an uninterrupted run",
                  path, items[i].key, shown_value(was, sizeof was, v),
                  shown_value(now, sizeof now, items[i].value));
    }
    const char *se = ckpt_meta(ck, "epoch"), *ss = ckpt_meta(ck, "step"), *sums = ckpt_meta(ck, "epoch_sums");
    long long ep, stp, cnt;
    double l, lr, wd;
    if (!se || !ss || !sums || sscanf(se, "%lld", &ep) != 1 || sscanf(ss, "%lld", &stp) != 1 ||
        sscanf(sums, "%lf %lf %lf %lld", &l, &lr, &wd, &cnt) != 4 || ep < 0 || stp < 0 ||
        stp >= t->niter_per_ep || cnt < 0) {
        snprintf(err, errlen, "%s: the training position (epoch, step) is missing or invalid", path);
        goto done;
    }
    const ParamTable *tab = &t->model.table;
    char name[160];
    for (int pass = 0; pass < 4; pass++) {
        const char *prefix = pass == 0 ? "student." : pass == 1 ? "teacher." : pass == 2 ? "optimizer.m." : "optimizer.v.";
        float *dst = pass == 0 ? t->student : pass == 1 ? t->teacher : pass == 2 ? t->opt.m : t->opt.v;
        if (!dst) continue;
        for (int i = 0; i < tab->n; i++) {
            const ParamInfo *p = &tab->p[i];
            if (pass >= 2 && !p->trainable) continue;
            prefixed(name, sizeof name, prefix, p->name);
            const CkptTensor *x = want_tensor(ck, path, name, DT_F32, p->ndim, p->shape, err, errlen);
            if (!x) goto done;
            memcpy(dst + p->offset, x->data, p->numel * sizeof(float));
        }
    }
    int64_t nshape[1] = {tab->n};
    const CkptTensor *xs = want_tensor(ck, path, "optimizer.step", DT_I64, 1, nshape, err, errlen);
    if (!xs) goto done;
    memcpy(t->opt.step, xs->data, (size_t)tab->n * sizeof(int64_t));
    int64_t cshape[2] = {1, t->cfg.out_dim};
    const CkptTensor *xc = want_tensor(ck, path, "dino_loss.center", DT_F32, 2, cshape, err, errlen);
    if (!xc) goto done;
    memcpy(t->loss.center, xc->data, (size_t)t->cfg.out_dim * sizeof(float));
    t->epoch = (int)ep;
    t->step = stp;
    t->ep_loss = l;
    t->ep_lr = lr;
    t->ep_wd = wd;
    t->ep_count = cnt;
    t->engine->ops->upload(t->engine);
    rc = 0;
done:
    ckpt_close(ck);
    return rc;
}
