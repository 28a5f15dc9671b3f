// The CUDA training engine (train/engine.h, train_cuda.h). forward_backward:
// the batch through pinned staging to the device (copy stream), the step's
// drop-path factors copied in, teacher forward on the global crops, student
// forward on every crop, loss, centre batch sum, backward; the host waits
// only for the loss statistics, while the backward runs. update, once the
// trainer has found the loss finite: gradient all-reduce (NCCL, several
// ranks), per-tensor clipping, AdamW with the frozen tensors left alone,
// teacher EMA and the centre update, left queued so that the next batch's
// upload overlaps them. The schedules, masks and clipping policy come from
// the trainer (EngineStep).
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "common.h"
#include "params.h"
#include "train/dist.h"
#include "train/engine.h"
}
#include "cuda/cuda_common.cuh"
#include "cuda/model_cuda.h"
#include "cuda/train_cuda.h"

#ifdef DINO_NCCL
#include <nccl.h>
#endif

#ifdef DINO_NCCL
#define NCCL_CHECK(call)                                                                         \
    do {                                                                                         \
        ncclResult_t r_ = (call);                                                                \
        if (r_ != ncclSuccess)                                                                   \
            dist_abort(1, "NCCL: %s (%s)", ncclGetErrorString(r_), #call);                       \
    } while (0)
#endif

typedef struct {
    TrainEngine base;                  // first: a TrainEngine* is a CudaTrainer*
    CudaCtx ctx;
    cudaStream_t compute, copy;
    size_t total;                      // floats per flat buffer (the ParamTable's)
    float *student, *teacher, *grads;  // device, ParamTable layout
    CudaOptim opt;                     // AdamW moments on the device, step counts on the host
    DinoLossCuda loss;                 // centre and loss workspace on the device
    // activations (allocated on the first batch, again only if its shape changes)
    TrainArena ta;
    float *arena;
    // staging
    StagingRing ring;
    float *pinned[2];
    float *drop_host;                  // pinned drop-path factors of one step
    double *stats_host;                // pinned: the loss statistics read back each step
    cudaEvent_t uploaded[2], consumed[2], loss_ready, drop_done;
    int drop_pending;
    // data parallel
    int world, rank;
    int debug_sync;                    // EngineOptions.debug_sync: wait and check after each phase
    int quiet;
    int B;                             // the batch of the step in flight
    float *csum;                       // its centre batch sum (in the arena)
#ifdef DINO_NCCL
    ncclComm_t comm;
#endif
    char desc[384];
} CudaTrainer;

static void cuda_trainer_free(CudaTrainer *c);
static void cuda_trainer_upload(CudaTrainer *c);

// With EngineOptions.debug_sync every phase of a step is waited for and
// checked, so an asynchronous fault is reported with the phase that caused it.
static void phase_done(CudaTrainer *c, const char *phase) {
    if (!c->debug_sync) return;
    cudaError_t e = cudaStreamSynchronize(c->compute);
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess) dino_fatal_at(__FILE__, __LINE__, "CUDA error after %s: %s", phase, cudaGetErrorString(e));
    fprintf(stderr, "cuda: %s ok\n", phase);
}

static void free_arena(CudaTrainer *c) {
    if (!c->arena) return;
    CUDA_CHECK(cudaStreamSynchronize(c->copy));
    CUDA_CHECK(cudaStreamSynchronize(c->compute));
    cuda_free(c->arena);
    for (int s = 0; s < 2; s++) CUDA_CHECK(cudaFreeHost(c->pinned[s]));
    CUDA_CHECK(cudaFreeHost(c->drop_host));
    c->arena = NULL;
    c->pinned[0] = c->pinned[1] = c->drop_host = NULL;
}

// Plans and allocates the arena and the staging buffers for batches shaped like b.
// 0, or -1 with the engine's err filled.
static int ensure_arena(CudaTrainer *c, const Batch *b) {
    if (c->arena && multicrop_plan_matches(&c->ta.plan, b)) return 0;
    free_arena(c);
    MultiCropPlan p;
    char err[200];
    const DinoModel *m = c->base.state->model;
    if (multicrop_plan(&p, b, &m->vit, err, sizeof err))
        return dino_errf(c->base.err, sizeof c->base.err, "--device cuda: %s", err);
    DINO_ASSERT(p.ncrops == c->base.state->loss->ncrops);
    size_t n = train_arena_layout(&c->ta, &p, &m->vit, &m->head, 0);
    c->arena = (float *)cuda_malloc(n * sizeof(float));
    CUDA_CHECK(cudaMemsetAsync(c->arena, 0, n * sizeof(float), c->compute));
    // The copy stream is not ordered after the compute stream: the zeroing
    // must be over before the first upload writes its slot.
    CUDA_CHECK(cudaStreamSynchronize(c->compute));
    for (int s = 0; s < 2; s++)
        CUDA_CHECK(cudaMallocHost((void **)&c->pinned[s], p.pixels_total * sizeof(float)));
    CUDA_CHECK(cudaMallocHost((void **)&c->drop_host, (c->ta.drop_total ? c->ta.drop_total : 1) * sizeof(float)));
    staging_init(&c->ring);
    c->drop_pending = 0;
    if (!c->quiet)
        dino_info("cuda: activation arena %.2f GiB, staging 2 x %.1f MiB pinned", n * 4.0 / (1 << 30),
                  p.pixels_total * 4.0 / (1 << 20));
    return 0;
}

extern const TrainEngineOps cuda_engine_ops;

extern "C" TrainEngine *train_engine_cuda_create(TrainState *st, const EngineOptions *o, char *err,
                                                 size_t errlen) {
    int ndev = cuda_require_device(err, errlen);
    if (ndev < 0) return NULL;
    if (st->opt->kind != OPTIM_ADAMW) {
        dino_errf(err, errlen, "--device cuda trains with --optimizer adamw only, got '%s'",
                  optim_kind_name(st->opt->kind));
        return NULL;
    }
    CudaGemmMode mode;
    if (cuda_gemm_mode_choose(o ? o->cuda_gemm : NULL, &mode, err, errlen)) return NULL;
    CudaTrainer *c = (CudaTrainer *)callocCheck(1, sizeof *c);
    c->base.ops = &cuda_engine_ops;
    c->base.kind = DEVICE_CUDA;
    c->base.state = st;
    c->debug_sync = o ? o->debug_sync : 0;
    c->quiet = o ? o->quiet : 0;
    c->world = dist_world();
    c->rank = dist_rank();
    int dev = device_for_rank(c->rank, ndev);
    if (cuda_ctx_init(&c->ctx, dev, mode, err, errlen)) {  // before anything else is made
        free(c);
        return NULL;
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->compute, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->copy, cudaStreamNonBlocking));
    for (int s = 0; s < 2; s++) {
        CUDA_CHECK(cudaEventCreateWithFlags(&c->uploaded[s], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&c->consumed[s], cudaEventDisableTiming));
    }
    CUDA_CHECK(cudaEventCreateWithFlags(&c->loss_ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->drop_done, cudaEventDisableTiming));
    CUDA_CHECK(cudaMallocHost((void **)&c->stats_host, 4 * sizeof(double)));
    c->total = st->model->table.total;
    c->student = (float *)cuda_malloc(c->total * sizeof(float));
    c->teacher = (float *)cuda_malloc(c->total * sizeof(float));
    c->grads = (float *)cuda_malloc(c->total * sizeof(float));
    cuda_optim_init(&c->opt, &st->model->table);
    dino_loss_cuda_init(&c->loss, st->loss);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    snprintf(c->desc, sizeof c->desc, "%s (device %d of %d), sm_%d%d, %.1f GiB, GEMM %s", prop.name, dev,
             ndev, prop.major, prop.minor, prop.totalGlobalMem / (double)(1 << 30),
             cuda_gemm_mode_name(mode));
    if (c->world > 1) {
#ifdef DINO_NCCL
        ncclUniqueId id;
        if (c->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
        dist_broadcast(&id, sizeof id, 0);
        NCCL_CHECK(ncclCommInitRank(&c->comm, c->world, id, c->rank));
#else
        cuda_trainer_free(c);
        dino_errf(err, errlen, "--device cuda with %d ranks needs NCCL; this build has none (rebuild with NCCL installed)",
                  dist_world());
        return NULL;
#endif
    }
    cuda_trainer_upload(c);
    return &c->base;
}

static void cuda_trainer_free(CudaTrainer *c) {
    if (!c) return;
    cudaStreamSynchronize(c->compute);
    cudaStreamSynchronize(c->copy);
#ifdef DINO_NCCL
    if (c->world > 1 && c->comm) ncclCommDestroy(c->comm);
#endif
    free_arena(c);
    cuda_free(c->student);
    cuda_free(c->teacher);
    cuda_free(c->grads);
    cuda_optim_free(&c->opt);
    dino_loss_cuda_free(&c->loss);
    for (int s = 0; s < 2; s++) {
        cudaEventDestroy(c->uploaded[s]);
        cudaEventDestroy(c->consumed[s]);
    }
    cudaEventDestroy(c->loss_ready);
    cudaEventDestroy(c->drop_done);
    cudaFreeHost(c->stats_host);
    cudaStreamDestroy(c->compute);
    cudaStreamDestroy(c->copy);
    cuda_ctx_free(&c->ctx);
    free(c);
}

static void cuda_trainer_sync(CudaTrainer *c) {
    CUDA_CHECK(cudaStreamSynchronize(c->copy));
    CUDA_CHECK(cudaStreamSynchronize(c->compute));
}

// The state that moves between the TrainState's host buffers and the device,
// buffer by buffer (the AdamW step counts stay on the host in both).
typedef struct {
    float *dev, *host;
    size_t bytes;
} StateBuffer;

static int state_buffers(CudaTrainer *c, const TrainState *t, StateBuffer s[5]) {
    const size_t bytes = c->total * sizeof(float);
    s[0] = StateBuffer{c->student, t->student, bytes};
    s[1] = StateBuffer{c->teacher, t->teacher, bytes};
    s[2] = StateBuffer{c->opt.m, t->opt->m, bytes};
    s[3] = StateBuffer{c->opt.v, t->opt->v, bytes};
    s[4] = StateBuffer{c->loss.center, t->loss->center, (size_t)t->loss->out_dim * sizeof(float)};
    return 5;
}

static void cuda_trainer_upload(CudaTrainer *c) {
    const TrainState *t = c->base.state;
    cuda_trainer_sync(c);
    StateBuffer s[5];
    for (int i = 0, n = state_buffers(c, t, s); i < n; i++) cuda_upload(s[i].dev, s[i].host, s[i].bytes);
    memcpy(c->opt.step, t->opt->step, (size_t)t->model->table.n * sizeof(int64_t));
    // The copies ran on the legacy default stream, which does not order
    // itself with our non-blocking streams: finish them before any kernel.
    CUDA_CHECK(cudaDeviceSynchronize());
}

static void cuda_trainer_download(CudaTrainer *c) {
    const TrainState *t = c->base.state;
    cuda_trainer_sync(c);
    StateBuffer s[5];
    for (int i = 0, n = state_buffers(c, t, s); i < n; i++) cuda_download(s[i].host, s[i].dev, s[i].bytes);
    memcpy(t->opt->step, c->opt.step, (size_t)t->model->table.n * sizeof(int64_t));
}

// Host -> pinned -> device for batch b, double-buffered (train_plan.h).
// Returns the device images of the slot.
static float *upload_batch(CudaTrainer *c, const Batch *b) {
    StagingAcquire q = staging_acquire(&c->ring);
    const int s = q.slot;
    if (q.wait_upload) CUDA_CHECK(cudaEventSynchronize(c->uploaded[s]));
    staging_copy_batch(c->pinned[s], b, &c->ta.plan);
    if (q.wait_consume) CUDA_CHECK(cudaStreamWaitEvent(c->copy, c->consumed[s], 0));
    float *dev = c->arena + c->ta.images[s];
    CUDA_CHECK(cudaMemcpyAsync(dev, c->pinned[s], c->ta.plan.pixels_total * sizeof(float),
                              cudaMemcpyHostToDevice, c->copy));
    CUDA_CHECK(cudaEventRecord(c->uploaded[s], c->copy));
    staging_uploaded(&c->ring, s);
    CUDA_CHECK(cudaStreamWaitEvent(c->compute, c->uploaded[s], 0));
    return dev;
}

static int cuda_forward_backward(TrainEngine *e, const EngineStep *in, EngineLoss *out) {
    CudaTrainer *c = (CudaTrainer *)e;
    const TrainState *t = e->state;
    const Batch *b = in->batch;
    const int K = t->loss->out_dim, B = b->B;
    const DinoModel *m = t->model;
    cudaStream_t s = c->compute;
    if (ensure_arena(c, b)) return -1;
    const MultiCropPlan *p = &c->ta.plan;
    float *arena = c->arena;
    float *images = upload_batch(c, b);
    const float *gimg[BATCH_MAX_GROUPS];
    size_t off = 0;
    for (int g = 0; g < p->n_groups; g++) {
        gimg[g] = images + off;
        off += p->pixels[g];
    }

    // Drop-path factors: drawn by the trainer (keyed by position), copied in
    // through pinned memory that the previous step's copy has released.
    const float *drop[BATCH_MAX_GROUPS] = {0};
    const int use_drop = in->use_drop;
    if (use_drop) {
        if (c->drop_pending) CUDA_CHECK(cudaEventSynchronize(c->drop_done));
        for (int g = 0; g < p->n_groups; g++) {
            const size_t n = (size_t)2 * m->vit.depth * p->rows[g];
            float *h = c->drop_host + c->ta.drop[g];
            memcpy(h, in->drop[g], n * sizeof(float));
            float *d = arena + c->ta.student_vit[g].drop;
            CUDA_CHECK(cudaMemcpyAsync(d, h, n * sizeof(float), cudaMemcpyHostToDevice, s));
            drop[g] = d;
        }
        CUDA_CHECK(cudaEventRecord(c->drop_done, s));
        c->drop_pending = 1;
    }

    // Teacher: the global crops, no drop path; student: every crop.
    const float *tl = model_cuda_forward(&c->ctx, m, c->teacher, p, 1, &c->ta.teacher_vit,
                                         &c->ta.teacher_head, arena, c->ta.tfeat, gimg, NULL, s);
    phase_done(c, "teacher forward");
    const float *sl = model_cuda_forward(&c->ctx, m, c->student, p, p->n_groups,
                                         c->ta.student_vit, &c->ta.student_head, arena, c->ta.sfeat,
                                         gimg, use_drop ? drop : NULL, s);
    phase_done(c, "student forward");
    const int slot = (int)((c->ring.batches - 1) % 2);
    CUDA_CHECK(cudaEventRecord(c->consumed[slot], s));  // the images are read
    staging_consumed(&c->ring, slot);

    float *dlogits = arena + c->ta.dlogits;
    c->csum = arena + c->ta.center_sum;
    c->B = B;
    dino_loss_forward_backward_cuda(&c->loss, dlogits, sl, tl, B, in->epoch, s);
    CUDA_CHECK(cudaMemcpyAsync(c->stats_host, c->loss.stats, 4 * sizeof(double), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaEventRecord(c->loss_ready, s));
    phase_done(c, "loss");
    dino_center_batch_sum_cuda(c->csum, tl, 2 * B, K, s);
    cuda_memset0(c->grads, c->total * sizeof(float), s);
    model_cuda_backward(&c->ctx, m, c->student, c->grads, p, c->ta.student_vit,
                        &c->ta.scratch, &c->ta.student_head, arena, c->ta.sfeat, c->ta.dfeat,
                        dlogits, use_drop ? drop : NULL, s);
    phase_done(c, "backward");

    // The loss decides whether anything changes; the backward runs meanwhile.
    CUDA_CHECK(cudaEventSynchronize(c->loss_ready));
    out->ls.loss = c->stats_host[0];
    out->ls.teacher_entropy = c->stats_host[1];
    out->ls.teacher_mean_entropy = c->stats_host[2];
    out->ls.teacher_temp = dino_teacher_temp(t->loss, in->epoch);
    out->koleo = 0;
    return 0;
}

static void cuda_update(TrainEngine *e, const EngineStep *in) {
    CudaTrainer *c = (CudaTrainer *)e;
    const TrainState *t = e->state;
    const int K = t->loss->out_dim;
    cudaStream_t s = c->compute;
#ifdef DINO_NCCL
    if (c->world > 1) {
        // The same places as the CPU engine: the centre's sum, the gradients
        // averaged before clipping (as DDP).
        NCCL_CHECK(ncclAllReduce(c->csum, c->csum, (size_t)K, ncclFloat, ncclSum, c->comm, s));
        NCCL_CHECK(ncclAllReduce(c->grads, c->grads, c->total, ncclFloat, ncclAvg, c->comm, s));
    }
#else
    (void)K;
#endif
    if (in->clip_grad > 0) clip_gradients_cuda(&c->opt, c->grads, in->clip_grad, in->frozen, NULL, s);
    adamw_step_cuda(&c->opt, c->student, c->grads, in->lr, in->wd, in->frozen, s);
    ema_update_cuda(c->teacher, c->student, c->total, in->momentum, s);
    dino_center_update_cuda(&c->loss, c->csum, (int64_t)2 * c->B * t->world, s);
    phase_done(c, "all-reduce, clip, AdamW, EMA, centre");
}

static void engine_upload(TrainEngine *e) { cuda_trainer_upload((CudaTrainer *)e); }
static void engine_download(TrainEngine *e) { cuda_trainer_download((CudaTrainer *)e); }
static void engine_sync(TrainEngine *e) { cuda_trainer_sync((CudaTrainer *)e); }
static const char *engine_describe(const TrainEngine *e) { return ((const CudaTrainer *)e)->desc; }
static void engine_free(TrainEngine *e) { cuda_trainer_free((CudaTrainer *)e); }

const TrainEngineOps cuda_engine_ops = {
    "cuda",          cuda_forward_backward, cuda_update,     engine_upload,
    engine_download, engine_sync,           engine_describe, engine_free,
};

extern "C" size_t cuda_engine_fetch(TrainEngine *e, CudaTrainerTensor which, float *host, size_t n) {
    DINO_ASSERT(e->kind == DEVICE_CUDA);
    CudaTrainer *c = (CudaTrainer *)e;
    cuda_trainer_sync(c);
    const float *src = NULL;
    size_t have = 0;
    const TrainArena *ta = &c->ta;
    const int K = c->loss.cfg.out_dim;
    switch (which) {
    case CUDA_TENSOR_STUDENT_LOGITS:
        src = c->arena + ta->student_head.logits, have = (size_t)ta->plan.total_rows * K;
        break;
    case CUDA_TENSOR_TEACHER_LOGITS:
        src = c->arena + ta->teacher_head.logits, have = (size_t)ta->plan.rows[0] * K;
        break;
    case CUDA_TENSOR_DLOGITS:
        src = c->arena + ta->dlogits, have = (size_t)ta->plan.total_rows * K;
        break;
    case CUDA_TENSOR_GRADS:
        src = c->grads, have = c->total;
        break;
    case CUDA_TENSOR_STUDENT_FEATURES:
        src = c->arena + ta->sfeat, have = (size_t)ta->plan.total_rows * ta->student_vit[0].D;
        break;
    }
    DINO_ASSERT(src && c->arena);
    if (n > have) n = have;
    cuda_download(host, src, n * sizeof(float));
    return have;
}
