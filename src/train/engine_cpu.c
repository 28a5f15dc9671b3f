// The CPU engine (engine.h): the teacher over the global crops, then the
// student's forward, loss and backward a chunk of images at a time
// (multicrop_train_pass), KoLeo through the pass's feature callback; after
// the trainer's finiteness check, the all-reduces (dist.h), per-tensor
// clipping, the optimizer, the teacher EMA and the centre update. It works on
// the TrainState's host buffers, so upload and download have nothing to do.
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "profile.h"
#include "train/dist.h"
#include "train/engine.h"
#include "train/koleo.h"

typedef struct {
    TrainEngine base;  // first: a TrainEngine* is a CpuEngine*
    size_t chunk_bytes;
    int koleo;
    // activations, sized on the first batch (again only if its shape changes)
    MultiCropActs *sacts, *tacts;
    int acts_B, acts_sizes[BATCH_MAX_GROUPS], acts_groups;
    float *center_sum;  // (K) the centre's batch statistic of this step
    int centre;         // the step updates the centre (not the Sinkhorn-Knopp teacher)
    int B;              // the step's batch
    float koleo_weight;
    double koleo_sum;   // KoLeo losses of the step's global crops, summed by the pass
} CpuEngine;

// The student runs a chunk of images at a time (multicrop_train_pass) with at
// most this many bytes of backbone activations: ViT-S/16 at 224 px keeps ~55
// MB per image, so a 64-image batch would otherwise hold ~3.5 GB. 640 MiB
// chunks are 8 global or 64 local ViT-S crops (a batch of 8 runs in 3
// chunks), or all 256 global crops of the fmnist preset's batch. Smaller
// chunks save memory but cost time: every chunk is one more pass over the
// head's weights and one more set of small parallel regions, which a loaded
// machine makes expensive (ViT-S batch 8 at 320 MiB, 5 chunks: ~50% slower
// than 3 chunks at load 5 on 2 cores). EngineOptions.chunk_bytes overrides it
// (measurements, tests); the chunking changes only the order in which
// gradients are summed.
#define DEFAULT_CHUNK_BYTES ((size_t)640 << 20)

static void free_acts(CpuEngine *c) {
    multicrop_acts_free(c->sacts);
    multicrop_acts_free(c->tacts);
    c->sacts = c->tacts = NULL;
}

// (Re)creates activations when the batch shape changes (normally once).
static void ensure_acts(CpuEngine *c, const Batch *b) {
    int same = c->sacts && c->acts_B == b->B && c->acts_groups == b->n_groups;
    for (int g = 0; same && g < b->n_groups; g++) same = c->acts_sizes[g] == b->groups[g].size;
    if (same) return;
    free_acts(c);
    DinoModel *m = c->base.state->model;
    int crops = 0;
    for (int g = 0; g < b->n_groups; g++) crops += b->groups[g].n_crops;
    DINO_ASSERT(b->groups[0].n_crops == 2);
    DINO_ASSERT(crops == c->base.state->loss->ncrops);
    c->tacts = multicrop_acts_create(m, b, 1, 0);
    c->sacts = multicrop_train_acts_create(m, b, c->chunk_bytes, c->koleo);
    for (int g = 0; g < b->n_groups; g++) c->acts_sizes[g] = b->groups[g].size;
    c->acts_B = b->B;
    c->acts_groups = b->n_groups;
}

// multicrop_train_pass's loss callback: the DINO loss rows of one chunk.
static void student_loss_rows(void *ctx, float *dlogits, const float *logits, int row0, int nrows) {
    PROF(PROF_LOSS, dino_loss_student(((CpuEngine *)ctx)->base.state->loss, dlogits, logits, row0, nrows));
}

// Its feature callback when KoLeo is on: the global crops (group 0, one chunk
// of 2B rows) get one KoLeo term per crop over the batch, as DINOv2's
// koleo_loss over student_cls_tokens.chunk(2).
static void student_koleo_rows(void *ctx, float *dfeatures, const float *features, int row0,
                               int nrows) {
    CpuEngine *c = ctx;
    const int B = c->B, D = model_feature_dim(c->base.state->model);
    if (row0 >= 2 * B) return;
    DINO_ASSERT(row0 == 0 && nrows == 2 * B);
    for (int k = 0; k < 2; k++)
        PROF(PROF_LOSS, c->koleo_sum += koleo_loss(features + (size_t)k * B * D, B, D,
                                                   c->koleo_weight,
                                                   dfeatures + (size_t)k * B * D));
}

static int cpu_forward_backward(TrainEngine *e, const EngineStep *in, EngineLoss *out) {
    CpuEngine *c = (CpuEngine *)e;
    TrainState *s = e->state;
    const Batch *b = in->batch;
    const int K = s->loss->out_dim, B = b->B;
    ensure_acts(c, b);
    c->B = B;
    c->koleo_weight = in->koleo_weight;
    // Teacher: the two global crops only, no drop path, no stored activations.
    const float *tl = multicrop_forward(s->model, s->teacher, c->tacts, b, NULL);
    LossStats ls;
    PROF(PROF_LOSS, ls = dino_loss_teacher(s->loss, tl, B, in->epoch));
    // The centre's batch statistic (a distributed run all-reduces this sum);
    // the Sinkhorn-Knopp teacher has no centre.
    c->centre = s->loss->sinkhorn_iters == 0;
    if (c->centre) PROF(PROF_LOSS, dino_center_batch_sum(c->center_sum, tl, 2 * B, K));
    // Student: every crop, with the step's drop-path masks, forward, loss and
    // backward a chunk of images at a time (the loss rows are independent).
    float *drop[BATCH_MAX_GROUPS] = {0};
    for (int g = 0; in->use_drop && g < b->n_groups; g++) drop[g] = (float *)in->drop[g];
    memset(s->grads, 0, s->model->table.total * sizeof(float));
    c->koleo_sum = 0;
    multicrop_train_pass(s->model, s->student, s->grads, c->sacts, b, in->use_drop ? drop : NULL,
                         student_loss_rows, in->koleo_weight > 0 ? student_koleo_rows : NULL, c);
    ls.loss = dino_loss_total(s->loss);
    out->ls = ls;
    out->koleo = c->koleo_sum;
    return 0;
}

static void cpu_update(TrainEngine *e, const EngineStep *in) {
    CpuEngine *c = (CpuEngine *)e;
    TrainState *s = e->state;
    const ParamTable *tab = &s->model->table;
    const int K = s->loss->out_dim;
    if (c->centre) dist_allreduce_f32(c->center_sum, (size_t)K, DIST_SUM);  // divided by 2B·world below
    dist_allreduce_f32(s->grads, tab->total, DIST_AVG);  // before clipping, as DDP
    if (in->clip_grad > 0) clip_gradients(tab, s->grads, in->clip_grad, in->frozen, s->grad_norms);
    optim_step(s->opt, s->student, s->grads, in->lr, in->wd, in->frozen);
    ema_update_params(tab, s->teacher, s->student, in->momentum);
    if (c->centre) dino_center_update(s->loss, c->center_sum, (int64_t)2 * c->B * s->world);
}

static void cpu_nothing(TrainEngine *e) { (void)e; }
static const char *cpu_describe(const TrainEngine *e) {
    (void)e;
    return "cpu";
}

static void cpu_free(TrainEngine *e) {
    CpuEngine *c = (CpuEngine *)e;
    free_acts(c);
    free(c->center_sum);
    free(c);
}

static const TrainEngineOps cpu_ops = {
    .name = "cpu",
    .forward_backward = cpu_forward_backward,
    .update = cpu_update,
    .upload = cpu_nothing,
    .download = cpu_nothing,
    .sync = cpu_nothing,
    .describe = cpu_describe,
    .free = cpu_free,
};

TrainEngine *train_engine_cpu_create(TrainState *state, const EngineOptions *o, char *err,
                                     size_t errlen) {
    (void)err, (void)errlen;
    CpuEngine *c = callocCheck(1, sizeof *c);
    c->base.ops = &cpu_ops;
    c->base.kind = DEVICE_CPU;
    c->base.state = state;
    c->chunk_bytes = o && o->chunk_bytes ? o->chunk_bytes : DEFAULT_CHUNK_BYTES;
    c->koleo = o ? o->koleo : 0;
    c->center_sum = mallocCheck((size_t)state->loss->out_dim * sizeof(float));
    return &c->base;
}

const float *train_engine_cpu_teacher_logits(const TrainEngine *e) {
    DINO_ASSERT(e->kind == DEVICE_CPU && ((const CpuEngine *)e)->tacts);
    return head_output(((const CpuEngine *)e)->tacts->head);
}
