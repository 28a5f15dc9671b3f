// The engine interface the trainer drives: one training step split in the
// two halves that every engine runs (forward and backward up to the loss;
// then the update once the trainer has found the loss finite), moving the
// state between the host buffers and the engine, and what an engine
// supports. A CPU engine (engine_cpu.c) and a CUDA engine
// (src/cuda/train_cuda.cu) stand behind it. What is the same for every
// engine — the schedules, the drop-path factors, which tensors are frozen,
// the clipping policy, the loss statistics over ranks and the finiteness
// check — is decided once, above it, in trainer_step (train/trainer.c),
// and reaches the engine as an EngineStep.
#ifndef DINO_TRAIN_ENGINE_H
#define DINO_TRAIN_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "device.h"
#include "model.h"
#include "train/loss.h"
#include "train/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

// The host state a run keeps (the checkpoint's source of truth), which an
// engine reads at upload and writes at download. The CPU engine works on
// these buffers directly; the CUDA engine keeps device copies between the two.
typedef struct {
    DinoModel *model;
    float *student, *teacher, *grads;  // (model->table.total) each
    Optimizer *opt;
    DinoLoss *loss;
    float *grad_norms;  // per tensor, the norms clipping saw (CPU engine; may be NULL)
    int world;          // ranks of a data-parallel run (1 alone): the centre's count
} TrainState;

// Features an engine may lack. The configuration check asks before any data
// is read (train_engine_supports), so a run never starts on an engine that
// would refuse it.
typedef enum {
    ENGINE_KOLEO = 0,           // DINOv2's KoLeo regulariser (--koleo_loss_weight)
    ENGINE_SINKHORN_KNOPP = 1,  // DINOv2's Sinkhorn-Knopp teacher (--centering sinkhorn_knopp)
    ENGINE_OPTIM_SGD = 2,       // --optimizer sgd
    ENGINE_OPTIM_LARS = 3,      // --optimizer lars
    ENGINE_RESNET = 4,          // a ResNet backbone (--arch resnet50, resnet_tiny)
    ENGINE_BN_HEAD = 5,         // BatchNorm in the head (--use_bn_in_head)
} EngineFeature;

// 1 when the engine of `kind` supports f, else 0 (every engine trains AdamW
// with the reference's centring).
int train_engine_supports(DeviceKind kind, EngineFeature f);
const char *train_engine_feature_name(EngineFeature f);

// How an engine is built; none of it changes the results.
typedef struct {
    size_t chunk_bytes;  // CPU: the student's activation budget per chunk (0: the default, 640 MiB)
    int debug_sync;      // CUDA: wait for and check every phase of a step
    const char *cuda_gemm;  // CUDA: the GEMM kind, fp32, tf32 or bf16 (NULL or "": tf32; docs/GPU.md)
    int quiet;           // no start-up lines (every rank but 0)
    int koleo;           // the run uses KoLeo (the CPU student keeps its features)
} EngineOptions;

// One step's inputs, the same for every engine.
typedef struct {
    const Batch *batch;
    int epoch;                 // the teacher temperature's position
    double lr, wd, momentum;   // this iteration's schedule values
    const float *drop[BATCH_MAX_GROUPS];  // drop-path factors per group (layout of dist_drop_scales), or NULL
    int use_drop;              // drop path is on (drop[] is filled)
    const uint8_t *frozen;     // per tensor: 1 = no gradient, no update this step
    float clip_grad;           // per-tensor gradient norm limit; 0: no clipping
    float koleo_weight;        // 0: no KoLeo
} EngineStep;

// What the first half of a step returns: this rank's statistics.
typedef struct {
    LossStats ls;   // the DINO loss of this rank's batch, its teacher statistics and temperature
    double koleo;   // the KoLeo losses of the global crops, summed, before the weight (0 when off)
} EngineLoss;

typedef struct TrainEngine TrainEngine;

typedef struct {
    const char *name;
    // Teacher forward, student forward, loss and backward into state->grads
    // (the engine's own copy of them). Changes nothing a checkpoint holds.
    // 0, or -1 with the engine's err filled.
    int (*forward_backward)(TrainEngine *e, const EngineStep *in, EngineLoss *out);
    // Gradient and centre reductions over ranks, clipping, the optimizer,
    // the teacher EMA and the centre update, for the step forward_backward ran.
    void (*update)(TrainEngine *e, const EngineStep *in);
    void (*upload)(TrainEngine *e);    // host state -> engine
    void (*download)(TrainEngine *e);  // engine -> host state (waits for queued work)
    void (*sync)(TrainEngine *e);      // waits until queued work is done (timing)
    const char *(*describe)(const TrainEngine *e);
    void (*free)(TrainEngine *e);
} TrainEngineOps;

struct TrainEngine {
    const TrainEngineOps *ops;
    DeviceKind kind;
    TrainState *state;
    char err[256];
};

// The engine of `kind` over state (which must outlive it), uploaded. NULL
// with err filled when the kind cannot run here (no device, no CUDA build).
TrainEngine *train_engine_create(DeviceKind kind, TrainState *state, const EngineOptions *o,
                                 char *err, size_t errlen);
TrainEngine *train_engine_cpu_create(TrainState *state, const EngineOptions *o, char *err,
                                     size_t errlen);
// In src/cuda/train_cuda.cu (src/cuda/train_cuda_stub.c without CUDA).
TrainEngine *train_engine_cuda_create(TrainState *state, const EngineOptions *o, char *err,
                                      size_t errlen);
void train_engine_free(TrainEngine *e);

// Test access: the teacher logits (2B, K) of the CPU engine's last step.
const float *train_engine_cpu_teacher_logits(const TrainEngine *e);

#ifdef __cplusplus
}
#endif

#endif
