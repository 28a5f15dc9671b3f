// The training loop and its state (see trainer.h). The order of one
// iteration follows main_dino.py's train_one_epoch: schedules by global
// iteration, teacher forward on the global crops, student forward on all
// crops, loss, backward (the student's forward, loss and backward run a chunk
// of images at a time, see train_chunk_bytes), per-tensor clipping,
// last-layer freeze, optimizer step, teacher EMA, centre update. Everything
// random is keyed by position, so the state saved by trainer_save plus
// (epoch, step) determines the rest of the run.
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "cuda/train_plan.h"
#include "cuda/train_cuda.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "gemm.h"
#include "io/checkpoint.h"
#include "io/model_io.h"
#include "profile.h"
#include "rng.h"
#include "train/dist.h"
#include "train/dist_train.h"
#include "train/koleo.h"

// ---------------------------------------------------------------- trainer state

Trainer *trainer_create(const TrainConfig *cfg, int64_t niter_per_ep, char *err, size_t errlen) {
    if (train_config_check(cfg, err, errlen)) return NULL;
    gemm_set_autocast_bf16(cfg->use_bf16);  // the model's matmuls (src/gemm.h); fp32 elsewhere
    if (niter_per_ep <= 0) {
        snprintf(err, errlen, "the iterations per epoch must be positive");
        return NULL;
    }
    ViTConfig vit;
    HeadConfig head;
    train_config_model(cfg, &vit, &head, err, errlen);
    OptimKind kind;
    optim_kind_parse(cfg->optimizer, &kind);
    const int sinkhorn = !strcmp(cfg->centering, "sinkhorn_knopp");
    Trainer *t = callocCheck(1, sizeof *t);
    t->cfg = *cfg;
    model_build(&t->model, &vit, &head, 1);
    size_t n = t->model.table.total;
    t->student = alignedAllocCheck(n * sizeof(float));
    t->teacher = alignedAllocCheck(n * sizeof(float));
    t->grads = alignedAllocCheck(n * sizeof(float));
    model_init(&t->model, t->student, (uint64_t)cfg->seed);
    memcpy(t->teacher, t->student, n * sizeof(float));  // teacher.load_state_dict(student)
    memset(t->grads, 0, n * sizeof(float));
    optim_init(&t->opt, kind, &t->model.table);
    t->ncrops = 2 + cfg->local_crops_number;
    dino_loss_init(&t->loss, cfg->out_dim, t->ncrops, cfg->warmup_teacher_temp, cfg->teacher_temp,
                   cfg->warmup_teacher_temp_epochs);
    t->loss.sinkhorn_iters = sinkhorn ? 3 : 0;  // DINOv2's n_iterations
    t->niter_per_ep = niter_per_ep;
    int W = cfg->world_size > 0 ? cfg->world_size : 1;
    // lr = args.lr · (batch_size_per_gpu · world_size) / 256, in Python's order
    double base_lr = cfg->lr * (double)(cfg->batch_size_per_gpu * W) / 256.0;
    cosine_schedule_init(&t->lr_sched, base_lr, cfg->min_lr, cfg->epochs, niter_per_ep,
                         cfg->warmup_epochs, 0.0);
    cosine_schedule_init(&t->wd_sched, cfg->weight_decay, cfg->weight_decay_end, cfg->epochs,
                         niter_per_ep, 0, 0.0);
    cosine_schedule_init(&t->mom_sched, cfg->momentum_teacher, 1.0, cfg->epochs, niter_per_ep, 0,
                         0.0);
    t->skip = callocCheck((size_t)t->model.table.n, 1);
    t->grad_norms = callocCheck((size_t)t->model.table.n, sizeof(float));
    t->center_sum = mallocCheck((size_t)cfg->out_dim * sizeof(float));
    if (cfg->device == DEVICE_CUDA && !(t->cuda = cuda_trainer_create(t, err, errlen))) {
        trainer_free(t);
        return NULL;
    }
    return t;
}

static void free_acts(Trainer *t) {
    multicrop_acts_free(t->sacts);
    multicrop_acts_free(t->tacts);
    t->sacts = t->tacts = NULL;
    for (int g = 0; g < BATCH_MAX_GROUPS; g++) {
        free(t->drop[g]);
        t->drop[g] = NULL;
    }
}

void trainer_free(Trainer *t) {
    if (!t) return;
    if (t->cuda) cuda_trainer_free(t->cuda);
    free_acts(t);
    free(t->student);
    free(t->teacher);
    free(t->grads);
    free(t->skip);
    free(t->grad_norms);
    free(t->center_sum);
    optim_free(&t->opt);
    dino_loss_free(&t->loss);
    model_free(&t->model);
    free(t);
}

// The student runs a chunk of images at a time (multicrop_train_pass) with at
// most this many bytes of backbone activations: ViT-S/16 at 224 px keeps ~55
// MB per image, so a 64-image batch would otherwise hold ~3.5 GB. 640 MiB
// chunks are 8 global or 64 local ViT-S crops (a batch of 8 runs in 3
// chunks), or all 256 global crops of the fmnist preset's batch. Smaller
// chunks save memory but cost time: every chunk is one more pass over the
// head's weights and one more set of small parallel regions, which a loaded
// machine makes expensive (ViT-S batch 8 at 320 MiB, 5 chunks: ~50% slower
// than 3 chunks at load 5 on 2 cores). DINO_TRAIN_CHUNK_KIB overrides it
// (measurements, tests); the chunking changes only the order in which
// gradients are summed.
static size_t train_chunk_bytes(void) {
    const char *e = getenv("DINO_TRAIN_CHUNK_KIB");
    long kib = e && *e ? strtol(e, NULL, 10) : 640 * 1024;
    if (kib < 1) kib = 1;
    return (size_t)kib << 10;
}

// (Re)creates activations when the batch shape changes (normally once).
static void ensure_buffers(Trainer *t, const Batch *b) {
    int same = t->sacts && t->acts_B == b->B && t->acts_groups == b->n_groups;
    for (int g = 0; same && g < b->n_groups; g++) same = t->acts_sizes[g] == b->groups[g].size;
    if (same) return;
    free_acts(t);
    int crops = 0;
    for (int g = 0; g < b->n_groups; g++) crops += b->groups[g].n_crops;
    DINO_ASSERT(b->groups[0].n_crops == 2);
    DINO_ASSERT(crops == t->ncrops);
    t->tacts = multicrop_acts_create(&t->model, b, 1, 0);
    t->sacts = multicrop_train_acts_create(&t->model, b, train_chunk_bytes(),
                                           t->cfg.koleo_loss_weight > 0);
    for (int g = 0; g < b->n_groups; g++) {
        size_t nd = (size_t)t->model.vit.depth * 2 * b->groups[g].n_crops * b->B;
        t->drop[g] = mallocCheck(nd * sizeof(float));
        t->acts_sizes[g] = b->groups[g].size;
    }
    t->acts_B = b->B;
    t->acts_groups = b->n_groups;
}

#define DROP_SEED_TAG 0x64726f7070617468ull  // "droppath": streams apart from the data's

void trainer_drop_scales(const TrainConfig *cfg, const ViTConfig *vit, int64_t it, int group,
                         int Bg, float *out) {
    const int L = vit->depth;
    for (int l = 0; l < L; l++) {
        // linspace(0, drop_path_rate, depth)[l]
        float rate = L > 1 ? (float)((double)cfg->drop_path_rate * l / (L - 1)) : 0.0f;
        float keep = 1.0f - rate;
        for (int br = 0; br < 2; br++) {
            float *o = out + (size_t)(l * 2 + br) * Bg;
            if (rate <= 0.0f) {
                for (int b = 0; b < Bg; b++) o[b] = 1.0f;
                continue;
            }
            Rng r;
            rng_stream(&r, (uint64_t)cfg->seed ^ DROP_SEED_TAG, (uint64_t)it, (uint64_t)group,
                       (uint64_t)(l * 2 + br));
            // mask = floor(keep + U[0,1)), output = x / keep · mask
            for (int b = 0; b < Bg; b++) o[b] = floorf(keep + rng_uniform(&r)) >= 1.0f ? 1.0f / keep : 0.0f;
        }
    }
}

// multicrop_train_pass's loss callback: the DINO loss rows of one chunk.
static void student_loss_rows(void *ctx, float *dlogits, const float *logits, int row0, int nrows) {
    PROF(PROF_LOSS, dino_loss_student(&((Trainer *)ctx)->loss, dlogits, logits, row0, nrows));
}

// Its feature callback when KoLeo is on: the global crops (group 0, one chunk
// of 2B rows) get one KoLeo term per crop over the batch, as DINOv2's
// koleo_loss over student_cls_tokens.chunk(2).
static void student_koleo_rows(void *ctx, float *dfeatures, const float *features, int row0,
                               int nrows) {
    Trainer *t = ctx;
    const int B = t->acts_B, D = t->model.vit.dim;
    if (row0 >= 2 * B) return;
    DINO_ASSERT(row0 == 0 && nrows == 2 * B);
    for (int k = 0; k < 2; k++)
        PROF(PROF_LOSS, t->koleo_sum += koleo_loss(features + (size_t)k * B * D, B, D,
                                                   t->cfg.koleo_loss_weight,
                                                   dfeatures + (size_t)k * B * D));
}

int trainer_step(Trainer *t, const Batch *b, StepStats *st) {
    if (t->cuda) return cuda_trainer_step(t->cuda, t, b, st);
    double t0 = dino_now();
    const TrainConfig *c = &t->cfg;
    const int64_t it = (int64_t)t->epoch * t->niter_per_ep + t->step;
    const int K = c->out_dim, B = b->B;
    ensure_buffers(t, b);
    memset(st, 0, sizeof *st);
    st->lr = cosine_schedule_at(&t->lr_sched, it);
    st->wd = cosine_schedule_at(&t->wd_sched, it);
    st->momentum = cosine_schedule_at(&t->mom_sched, it);

    // Teacher: the two global crops only, no drop path, no stored activations.
    const float *tl = multicrop_forward(&t->model, t->teacher, t->tacts, b, NULL);
    LossStats ls;
    PROF(PROF_LOSS, ls = dino_loss_teacher(&t->loss, tl, B, t->epoch));
    // The centre's batch statistic (a distributed run all-reduces this sum);
    // the Sinkhorn-Knopp teacher has no centre.
    const int centre = t->loss.sinkhorn_iters == 0;
    if (centre) PROF(PROF_LOSS, dino_center_batch_sum(t->center_sum, tl, 2 * B, K));
    // Student: every crop, with keyed drop-path masks, forward, loss and
    // backward a chunk of images at a time (the loss rows are independent).
    float *drop[BATCH_MAX_GROUPS] = {0};
    if (c->drop_path_rate > 0)
        for (int g = 0; g < b->n_groups; g++) {
            dist_drop_scales(c, &t->model.vit, it, g, b->groups[g].n_crops, B, t->drop[g]);
            drop[g] = t->drop[g];
        }
    memset(t->grads, 0, t->model.table.total * sizeof(float));
    t->koleo_sum = 0;
    multicrop_train_pass(&t->model, t->student, t->grads, t->sacts, b,
                         c->drop_path_rate > 0 ? drop : NULL, student_loss_rows,
                         c->koleo_loss_weight > 0 ? student_koleo_rows : NULL, t);
    ls.loss = dino_loss_total(&t->loss);
    if (c->koleo_loss_weight > 0) {
        // A rank's KoLeo sees its own batch (DINOv2); the logged value is the ranks' mean.
        double k = t->koleo_sum;
        if (dist_world() > 1) dist_allreduce_f64(&k, 1, DIST_AVG);
        st->koleo = k;
        ls.loss += (double)c->koleo_loss_weight * t->koleo_sum;
    }
    dist_reduce_loss_stats(&ls);  // every rank sees the global loss and stops together
    st->loss = ls.loss;
    st->teacher_temp = ls.teacher_temp;
    st->teacher_entropy = ls.teacher_entropy;
    st->teacher_mean_entropy = ls.teacher_mean_entropy;
    // Nothing the run keeps has changed yet (the gradients are scratch).
    if (!isfinite(ls.loss) || !isfinite((float)ls.loss)) return -1;
    if (centre) dist_allreduce_f32(t->center_sum, (size_t)K, DIST_SUM);  // divided by 2B·world below
    dist_allreduce_f32(t->grads, t->model.table.total, DIST_AVG);  // before clipping, as DDP

    // cancel_gradients_last_layer: while epoch < freeze_last_layer the last
    // layer has no gradient, so the optimizer leaves it completely alone.
    const ParamTable *tab = &t->model.table;
    for (int i = 0; i < tab->n; i++)
        t->skip[i] = t->epoch < c->freeze_last_layer && strstr(tab->p[i].name, "last_layer") != NULL;
    if (c->clip_grad > 0) clip_gradients(tab, t->grads, (float)c->clip_grad, t->skip, t->grad_norms);
    optim_step(&t->opt, t->student, t->grads, st->lr, st->wd, t->skip);
    ema_update(t->teacher, t->student, tab->total, st->momentum);
    int W = c->world_size > 0 ? c->world_size : 1;
    if (centre) dino_center_update(&t->loss, t->center_sum, (int64_t)2 * B * W);
    st->seconds = dino_now() - t0;
    return 0;
}

void trainer_advance(Trainer *t, const StepStats *st) {
    // MetricLogger: loss.item() is a float32 value summed in double.
    t->ep_loss += (double)(float)st->loss;
    t->ep_lr += st->lr;
    t->ep_wd += st->wd;
    t->ep_count++;
    t->step++;
}

// ---------------------------------------------------------------- checkpoints

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
        {"jpeg_min_side", NULL},    {"device", NULL},
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
    if (t->cuda) cuda_trainer_download(t->cuda, t);  // the device state is the current one
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
    if (t->cuda) cuda_trainer_upload(t->cuda, t);
    rc = 0;
done:
    ckpt_close(ck);
    return rc;
}

// ---------------------------------------------------------------- the run

static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig) {
    if (g_stop_signal) {  // second signal: stop now
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop_signal = sig;
}

static int mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static void fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) s = 0;
    long v = (long)(s + 0.5);
    if (v >= 3600) snprintf(buf, n, "%ldh%02ldm", v / 3600, (v / 60) % 60);
    else if (v >= 60) snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
    else snprintf(buf, n, "%lds", v);
}

// Numeric value after "key": in a JSON line, or NAN.
static double json_number(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

// On resume, drops the log lines written after the checkpoint (the run
// repeats those iterations), so log.txt reads like one uninterrupted run.
static void trim_log(const char *path, int epoch, int64_t global_step) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fclose(f);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    int dropped = 0;
    while (getline(&line, &cap, f) > 0) {
        double it = json_number(line, "it"), ep = json_number(line, "epoch");
        int is_step = strstr(line, "\"type\": \"step\"") != NULL;
        int keep = is_step ? !(it >= (double)global_step) : !(ep >= (double)epoch);
        if (strstr(line, "\"type\": \"") && !is_step) keep = 1;  // other records
        if (keep) fputs(line, o);
        else dropped++;
    }
    free(line);
    fclose(f);
    if (fclose(o) == 0 && dropped) rename(tmp, path);
    else unlink(tmp);
}

typedef struct {
    double h, hbar;  // exponential moving averages of the two entropies
    int64_t n;
    int warned_epoch;
} CollapseMonitor;

// Warns when the teacher output collapses: to the uniform distribution (each
// row's entropy near ln K) or to one dimension (the batch mean's entropy near 0).
// Early in training the teacher is close to uniform in every healthy run (the
// reference's first-epoch loss is near ln K while the centre catches up with
// the random network's nearly identical outputs), so the uniform warning
// waits until the learning-rate warm-up and the first epoch are over.
static void collapse_check(CollapseMonitor *m, const StepStats *st, int K, int epoch,
                           int warmup_epochs) {
    const double a = 0.9;
    m->h = m->n ? a * m->h + (1 - a) * st->teacher_entropy : st->teacher_entropy;
    m->hbar = m->n ? a * m->hbar + (1 - a) * st->teacher_mean_entropy : st->teacher_mean_entropy;
    m->n++;
    // At most one warning per ten epochs: the state is in the log anyway.
    if (m->n < 20 || (m->warned_epoch >= 0 && epoch < m->warned_epoch + 10)) return;
    double lnK = log((double)K);
    if (epoch >= (warmup_epochs > 1 ? warmup_epochs : 1) && m->h > 0.97 * lnK) {
        dino_warn("collapse: after the warm-up the teacher output is still close to uniform (mean entropy %.3f, "
                  "ln %d = %.3f), so the loss sits near ln K. Try a lower --lr, more --warmup_epochs, a lower "
                  "--teacher_temp or a higher --momentum_teacher",
                  m->h, K, lnK);
        m->warned_epoch = epoch;
    } else if (m->hbar < 0.05 * lnK) {
        dino_warn("collapse: the teacher puts every image on the same output dimension (entropy of the "
                  "batch mean %.3f, ln K = %.3f). Try a lower --lr or a higher --teacher_temp", m->hbar, lnK);
        m->warned_epoch = epoch;
    }
}

static int save_or_warn(const Trainer *t, const char *path) {
    char err[512];
    if (t->cfg.rank != 0) return 0;  // rank 0 writes for everyone
    if (trainer_save(t, path, err, sizeof err)) {
        dino_warn("could not write the checkpoint: %s", err);
        return -1;
    }
    return 0;
}

// A second CPU-bound job on a small machine slows training far more than by
// the share of cores it takes: threads that wait at a barrier for a partner
// that is descheduled spin away their time slice (docs/PERFORMANCE.md, "Two
// threads on a loaded machine"). Say so at the start, where the user can
// still choose. The minimum of three looks ignores a process that runs for a
// moment; the run's own other ranks are assumed to share this host.
static void warn_if_machine_busy(int world_size, int threads) {
    int others = -1;
    for (int i = 0; i < 3; i++) {
        if (i) usleep(50000);
        int n = dino_other_running_tasks();
        if (n >= 0 && (others < 0 || n < others)) others = n;
    }
    others -= world_size - 1;
    int cores = omp_get_num_procs();
    if (others <= 0 || others + threads <= cores) return;
    const char *hint = threads > 1 && !getenv("OMP_WAIT_POLICY")
                           ? " (--threads 1 or OMP_WAIT_POLICY=passive helps: docs/PERFORMANCE.md)"
                           : "";
    dino_warn("%d other task%s running on this machine's %d cores; sharing them, this run may train "
              "several times slower than alone%s",
              others, others == 1 ? " is" : "s are", cores, hint);
}

int train_run(const TrainConfig *cfg0) {
    TrainConfig c = *cfg0;
    char err[1024];
    // Data parallel (dist.h): rank 0 alone writes output_dir and talks.
    c.world_size = dist_init();
    c.rank = dist_rank();
    const int lead = c.rank == 0;
    if (!lead) c.quiet = 1;
    if (lead) warn_if_machine_busy(c.world_size, dino_get_threads());
    if (lead && mkdir_p(c.output_dir)) dino_die("cannot create --output_dir '%s': %s", c.output_dir, strerror(errno));
    Dataset *ds = dataset_open(c.data_path, SPLIT_TRAIN, err, sizeof err);
    if (!ds) dino_die("--data_path: %s", err);

    LoaderConfig lc;
    loader_config_default(&lc);
    lc.mode = LOADER_MULTICROP;
    lc.aug.global_size = c.global_crop_size;
    lc.aug.local_size = c.local_crop_size;
    lc.aug.n_local = c.local_crops_number;
    lc.aug.global_scale[0] = c.global_crops_scale[0];
    lc.aug.global_scale[1] = c.global_crops_scale[1];
    lc.aug.local_scale[0] = c.local_crops_scale[0];
    lc.aug.local_scale[1] = c.local_crops_scale[1];
    lc.aug.blur_sigma[0] = c.blur_sigma[0];
    lc.aug.blur_sigma[1] = c.blur_sigma[1];
    lc.aug.solarize_p = c.solarization_prob;
    lc.jpeg_min_side = c.jpeg_min_side;
    lc.batch_size = c.batch_size_per_gpu;
    lc.seed = (uint64_t)c.seed;
    lc.shuffle = 1;
    lc.drop_last = 1;
    lc.rank = c.rank;
    lc.world_size = c.world_size;
    int cores = omp_get_num_procs();
    lc.threads = c.num_workers < cores ? c.num_workers : cores;
    if (lc.threads < 0) lc.threads = 0;
    Loader *loader = loader_create(ds, &lc);
    int64_t niter = loader_steps_per_epoch(loader);
    if (niter <= 0)
        dino_die("--data_path %s has %lld images, fewer than one batch of --batch_size_per_gpu %d",
                 c.data_path, (long long)dataset_size(ds), c.batch_size_per_gpu);

    dist_check_config(&c, dataset_size(ds), niter);
    Trainer *t = trainer_create(&c, niter, err, sizeof err);
    if (!t) dino_die("%s", err);

    char ckpt_path[4200], log_path[4200];
    snprintf(ckpt_path, sizeof ckpt_path, "%s/checkpoint.dino", c.output_dir);
    snprintf(log_path, sizeof log_path, "%s/log.txt", c.output_dir);
    const int resumed = lead && access(ckpt_path, F_OK) == 0;
    if (resumed && trainer_load(t, ckpt_path, err, sizeof err)) dino_die("cannot resume: %s", err);
    dist_sync_trainer(t);  // every rank starts from rank 0's weights and position
    const int64_t total = (int64_t)c.epochs * niter;
    const int64_t first_it = (int64_t)t->epoch * niter + t->step;
    // Running a finished run again changes nothing, not even log.txt, so a
    // script may simply re-run the command until it succeeds.
    if (first_it >= total || (c.stop_after_steps > 0 && first_it >= c.stop_after_steps)) {
        if (lead && first_it >= total)
            dino_info("nothing to do: %s has finished all %d epochs", ckpt_path, c.epochs);
        else if (lead)
            dino_info("nothing to do: %s is at iteration %lld, at or past --stop_after_steps %lld",
                      ckpt_path, (long long)first_it, (long long)c.stop_after_steps);
        trainer_free(t);
        loader_free(loader);
        dataset_close(ds);
        dist_finalize();
        return 0;
    }
    if (resumed) {
        dino_info("resuming from %s at epoch %d, step %lld", ckpt_path, t->epoch, (long long)t->step);
        trim_log(log_path, t->epoch, first_it);
    } else if (lead) {
        // A run killed before its first checkpoint left records of
        // iterations that run again now (found by tests/test_faults.c).
        trim_log(log_path, 0, 0);
    }
    if (t->cuda) cuda_trainer_upload(t->cuda, t);
    dist_report(&c, lc.threads, c.dist_report);
    char desc[256];
    vit_config_describe(&t->model.vit, desc, sizeof desc);
    size_t ntrain = 0;
    for (int i = 0; i < t->model.table.n; i++)
        if (t->model.table.p[i].trainable) ntrain += t->model.table.p[i].numel;
    if (!c.quiet) {
        dino_info("model: %s; head %d -> %d -> %d -> %d (norm_last_layer %s); %.2fM trainable parameters",
                  desc, t->model.head.in_dim, t->model.head.hidden, t->model.head.bottleneck,
                  t->model.head.out_dim, c.norm_last_layer ? "true" : "false", ntrain / 1e6);
        dino_info("data: %s; %d global %d px + %d local %d px crops; %lld iterations per epoch of %d images",
                  dataset_describe(ds), 2, c.global_crop_size, c.local_crops_number, c.local_crop_size,
                  (long long)niter, c.batch_size_per_gpu);
        dino_info("optimizer %s, peak lr %.3g after %d warm-up epochs, %d epochs, %d threads",
                  c.optimizer, t->lr_sched.base, c.warmup_epochs, c.epochs, dino_get_threads());
    }
    if (c.eval_knn_every > 0 && !train_eval_hook)
        dino_warn("--eval_knn_every: k-NN evaluation during training is not part of this build; ignored");

    FILE *log = fopen(lead ? log_path : "/dev/null", lead ? "a" : "w");
    if (!log) dino_die("cannot write %s: %s", log_path, strerror(errno));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_stop_signal = 0;

    // Fault injection for tests/test_faults.c (docs/RELIABILITY.md): the
    // environment variable DINO_INJECT_NAN_AT_STEP=N puts a NaN into the first
    // pixel of global iteration N's batch, to check that a non-finite loss
    // stops the run cleanly and keeps the last good checkpoint.
    const char *inject_env = getenv("DINO_INJECT_NAN_AT_STEP");
    const int64_t inject_nan_at = inject_env && *inject_env ? strtoll(inject_env, NULL, 10) : -1;
    CollapseMonitor mon = {.warned_epoch = -1};
    int status = 0;
    int ckpt_failed = 0;  // the latest write of checkpoint.dino failed (the previous one is kept)
    const double t_start = dino_now();
    double win_t = 0, win_img = 0, win_wait = 0, win_steps = 0;
    while (t->epoch < c.epochs) {
        loader_start(loader, t->epoch, t->step);
        while (t->step < niter) {
            const double t_wait = dino_now();
            const Batch *b = loader_next(loader);
            // Time blocked on the data loader: ~0 when augmentation keeps up
            // (with --device cuda the GPU meanwhile runs the previous step's tail).
            win_wait += dino_now() - t_wait;
            if (!b && loader_error(loader)) dino_die("%s", loader_error(loader));
            if (!b) dino_die("the data loader ended epoch %d early at step %lld", t->epoch, (long long)t->step);
            dist_fault_hook((int64_t)t->epoch * niter + t->step);
            StepStats st;
            if (inject_nan_at >= 0 && (int64_t)t->epoch * niter + t->step == inject_nan_at)
                b->groups[0].pixels[0] = NAN;  // fault injection (see inject_nan_at)
            if (trainer_step(t, b, &st)) {
                fprintf(stderr,
                        "dino train: error: the loss is %g at epoch %d step %lld (lr %.3g); stopping. "
                        "The last good checkpoint is %s. Try a lower --lr, a smaller --clip_grad or a higher --teacher_temp.\n",
                        st.loss, t->epoch, (long long)t->step, st.lr, ckpt_path);
                status = 1;
                goto out;
            }
            collapse_check(&mon, &st, c.out_dim, t->epoch, c.warmup_epochs);
            const int epoch = t->epoch;
            const int64_t step = t->step, it = (int64_t)epoch * niter + step;
            trainer_advance(t, &st);
            win_t += st.seconds;
            win_img += (double)b->B * c.world_size;  // images of all ranks
            win_steps += 1;
            int every = c.log_every_steps > 0 ? c.log_every_steps : 0;
            if (every && (it % every == 0 || t->step == niter)) {
                double ips = win_img / (win_t > 0 ? win_t : 1e-9);
                fprintf(log,
                        "{\"type\": \"step\", \"epoch\": %d, \"step\": %lld, \"it\": %lld, \"loss\": %.9g, "
                        "\"lr\": %.9g, \"wd\": %.9g, \"momentum\": %.12g, \"teacher_temp\": %.9g, "
                        "\"teacher_entropy\": %.6g, \"teacher_mean_entropy\": %.6g, ",
                        epoch, (long long)step, (long long)it, st.loss, st.lr, st.wd, st.momentum,
                        st.teacher_temp, st.teacher_entropy, st.teacher_mean_entropy);
                if (c.koleo_loss_weight > 0) fprintf(log, "\"koleo\": %.6g, ", st.koleo);
                fprintf(log, "\"images_per_s\": %.4g}\n", ips);
                fflush(log);
                if (!c.quiet) {
                    double elapsed = dino_now() - t_start;
                    double per = elapsed / (double)(it + 1 - first_it);
                    char eta[32];
                    fmt_duration(per * (double)(total - it - 1), eta, sizeof eta);
                    fprintf(stderr,
                            "epoch %d/%d step %lld/%lld | %.1f img/s | data wait %.3f s | loss %.4f | "
                            "lr %.3e wd %.4f | H %.3f Hmean %.3f | ETA %s\n",
                            epoch, c.epochs, (long long)step + 1, (long long)niter, ips,
                            win_steps > 0 ? win_wait / win_steps : 0.0, st.loss, st.lr, st.wd,
                            st.teacher_entropy, st.teacher_mean_entropy, eta);
                }
                win_t = win_img = win_wait = win_steps = 0;
            }
            int saved = 0;
            if (t->step == niter) {
                // End of epoch: the reference's log line, then the checkpoints.
                double n = t->ep_count > 0 ? (double)t->ep_count : 1.0;
                char extra[512] = "";
                if (lead && c.eval_knn_every > 0 && train_eval_hook && (epoch + 1) % c.eval_knn_every == 0) {
                    if (t->cuda) cuda_trainer_download(t->cuda, t);
                    char frag[480];
                    if (train_eval_hook(&c, &t->model, t->teacher, epoch, frag, sizeof frag) == 0)
                        snprintf(extra, sizeof extra, ", %s", frag);
                }
                fprintf(log, "{\"train_loss\": %.10g, \"train_lr\": %.10g, \"train_wd\": %.10g, \"epoch\": %d%s}\n",
                        t->ep_loss / n, t->ep_lr / n, t->ep_wd / n, epoch, extra);
                fflush(log);
                t->epoch++;
                t->step = 0;
                t->ep_loss = t->ep_lr = t->ep_wd = 0;
                t->ep_count = 0;
                ckpt_failed = save_or_warn(t, ckpt_path) != 0;
                if (c.saveckp_freq > 0 && epoch % c.saveckp_freq == 0) {
                    char p[4300];
                    snprintf(p, sizeof p, "%s/checkpoint%04d.dino", c.output_dir, epoch);
                    save_or_warn(t, p);
                }
                saved = 1;
            }
            const int64_t done_it = (int64_t)t->epoch * niter + t->step;
            if (!saved && c.checkpoint_every_steps > 0 && done_it % c.checkpoint_every_steps == 0) {
                ckpt_failed = save_or_warn(t, ckpt_path) != 0;
                saved = 1;
            }
            // A signal may reach the ranks at different iterations: they stop together.
            g_stop_signal = dist_max_i32(g_stop_signal);
            if (g_stop_signal || (c.stop_after_steps > 0 && done_it >= c.stop_after_steps)) {
                if (!saved || ckpt_failed) ckpt_failed = save_or_warn(t, ckpt_path) != 0;
                if (ckpt_failed) {
                    status = 1;
                    goto out;
                }
                if (g_stop_signal) {
                    dino_info("interrupted (signal %d): checkpoint written at epoch %d step %lld; "
                              "run the same command to resume", (int)g_stop_signal, t->epoch, (long long)t->step);
                    status = 128 + (int)g_stop_signal;
                } else if (!c.quiet) {
                    dino_info("stopped after %lld iterations as asked; checkpoint at epoch %d step %lld",
                              (long long)done_it, t->epoch, (long long)t->step);
                }
                goto out;
            }
            if (t->step == 0) break;  // the epoch rolled over
        }
    }
out:
    // A run whose last checkpoint could not be written must not look successful.
    if (ckpt_failed) {
        fprintf(stderr, "dino train: error: the last checkpoint could not be written; %s holds the previous one\n",
                ckpt_path);
        if (status == 0) status = 1;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    fclose(log);
    trainer_free(t);
    loader_free(loader);
    dataset_close(ds);
    dist_finalize();
    return status;
}
