// DINO training: the configuration (train_settings.h's table), the
// student/teacher/optimizer/loss state and one iteration on a Batch
// (trainer.c, over the engine of train/engine.h), checkpoints that capture
// the exact position (epoch, step) so a resumed run is bit-identical to an
// uninterrupted one (train_checkpoint.c), and the run loop with logging
// (train_log.h), the collapse monitor, signal handling and the
// non-finite-loss stop (train_run.c). The command line parses flags and the
// environment, and calls train_run with a TrainHooks.
#ifndef DINO_TRAIN_TRAINER_H
#define DINO_TRAIN_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "model.h"
#include "train/dist_faults.h"
#include "train/engine.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/schedule.h"
#include "train/train_log.h"
#include "train/train_settings.h"

// The settings of a run (train_settings.h lists them, with their flags and
// defaults), plus where this process stands in a distributed run.
typedef struct {
#define X(name, field, kind, ...) TS_FIELD_##kind(field)
    TRAIN_SETTINGS(X)
#undef X
    int world_size;  // 1 (a distributed run scales the lr by the global batch)
    int rank;        // this process's rank; train_run sets both from the launcher (dist.h)
} TrainConfig;

// The defaults of train_settings.h (the reference's where it has the flag).
void train_config_default(TrainConfig *c);
// Small-data preset (train_settings.h's fmnist column): Fashion-MNIST, 28-px
// global / 14-px local crops, 7-px patches, a 4-block ViT of width 128,
// out_dim 1024, batch 64, 2 epochs (docs/TRAINING.md).
void train_config_preset_fmnist(TrainConfig *c);
// The setting's value in c as a checkpoint and the rank check record it:
// numbers exactly (%.17g for doubles, %.9g for floats), pairs as "a b".
void train_setting_format(const TrainSetting *s, const TrainConfig *c, char *buf, size_t n);
// Fills the backbone and head configurations the flags describe. 0, or -1
// with err filled for an impossible combination.
int train_config_model(const TrainConfig *c, ViTConfig *vit, HeadConfig *head, char *err,
                       size_t errlen);
// 1 when --arch names a ResNet backbone (resnet50, resnet_tiny; resnet.h).
// A ResNet ignores the ViT's --patch_size, --embed_dim, --depth,
// --num_heads, --img_size and --drop_path_rate, as the reference builds a
// torchvision model from --arch alone.
int train_config_is_resnet(const TrainConfig *c);
// The ResNet backbone and head the flags describe (a ResNet --arch). 0, or
// -1 with err filled.
int train_config_resnet(const TrainConfig *c, ResNetConfig *rn, HeadConfig *head, char *err,
                        size_t errlen);
// Builds the model (backbone and head) the flags describe, ViT or ResNet.
// 0, or -1 with err filled.
int train_config_build_model(const TrainConfig *c, DinoModel *m, char *err, size_t errlen);
// Every check of the configuration that needs no data (model shapes, crop
// sizes on the patch grid, optimizer, schedules, loss): 0, or -1 with err
// naming the flags. trainer_create runs it too.
int train_config_check(const TrainConfig *c, char *err, size_t errlen);

typedef struct {
    TrainConfig cfg;
    DinoModel model;
    float *student, *teacher, *grads;  // (model.table.total) each
    Optimizer opt;
    DinoLoss loss;
    CosineSchedule lr_sched, wd_sched, mom_sched;
    int64_t niter_per_ep;
    int ncrops;
    // position of the next iteration
    int epoch;
    int64_t step;
    // running sums of the current epoch (the reference's MetricLogger averages)
    double ep_loss, ep_lr, ep_wd;
    int64_t ep_count;
    // the step's inputs that every engine shares (trainer_step)
    uint8_t *last_layer;  // per tensor: part of the head's last layer
    uint8_t *skip;        // per tensor: frozen this step (cancel_gradients_last_layer)
    float *grad_norms;    // per tensor: the norms the CPU engine's clipping saw
    float *drop[BATCH_MAX_GROUPS];  // drop-path factors of the step, per group
    size_t drop_cap[BATCH_MAX_GROUPS];
    TrainState state;     // what the engine reads and writes: the buffers above
    TrainEngine *engine;  // cfg.device's engine
    char err[256];        // trainer_step's -2: what went wrong
} Trainer;

// Builds model, optimizer, loss, schedules and cfg->device's engine for
// niter_per_ep iterations per epoch; initialises the student from cfg->seed
// and copies it to the teacher. eo sets the engine's knobs (chunk size,
// debug sync; NULL: defaults; its quiet and koleo follow cfg). NULL with err
// filled for a bad configuration or an engine that cannot start.
Trainer *trainer_create_with(const TrainConfig *cfg, int64_t niter_per_ep, const EngineOptions *eo,
                             char *err, size_t errlen);
Trainer *trainer_create(const TrainConfig *cfg, int64_t niter_per_ep, char *err, size_t errlen);
void trainer_free(Trainer *t);

// One iteration at position (t->epoch, t->step) on batch b: teacher on the
// global crops, student on all, loss, backward, clipping, last-layer freeze,
// optimizer, EMA, centre. Returns 0, -1 if the loss is not finite (then
// nothing was changed), or -2 when the engine failed (t->err says why).
// Does not advance the position.
int trainer_step(Trainer *t, const Batch *b, StepStats *st);
// Advances the position by one iteration and adds st to the epoch sums.
void trainer_advance(Trainer *t, const StepStats *st);


// Checkpoint: everything trainer_step reads, plus the position, the epoch's
// running sums and the configuration. Atomic. 0, or -1 with err filled.
int trainer_save(const Trainer *t, const char *path, char *err, size_t errlen);
// Restores a checkpoint written by trainer_save into t (built from a
// compatible configuration). Refuses with err filled when a flag that shapes
// the model, the data or the optimizer differs; reports other differences
// through dino_warn. 0, or -1.
int trainer_load(Trainer *t, const char *path, char *err, size_t errlen);

// Periodic evaluation (`--eval_knn_every`): called on rank 0 at the end of
// every eval_knn_every-th epoch with the teacher weights; writes a JSON
// fragment (e.g. "\"knn_top1\": 71.2") into json and returns 0, or -1 when
// it was skipped.
typedef int (*TrainEvalFn)(void *ctx, const TrainConfig *cfg, const DinoModel *model,
                           const float *teacher, int epoch, char *json, size_t n);

// What the caller adds to a run beyond its settings: none of it changes
// what a successful run computes.
typedef struct {
    TrainEvalFn eval;        // NULL: this build cannot evaluate (--eval_knn_every is then ignored)
    void *eval_ctx;
    int64_t inject_nan_at;   // >= 0: a NaN in the first pixel of that global iteration's batch (tests)
    DistFaults faults;       // a rank that dies or hangs at an iteration (tests, dist_faults.h)
    double dist_timeout;     // seconds in one collective before the job is ended (0: 1800, dist.h)
    int wait_policy_set;     // OMP_WAIT_POLICY is set: the busy-machine warning suggests no policy
    EngineOptions engine;    // the engine's knobs (its quiet and koleo follow the settings)
} TrainHooks;

// No evaluation, no faults, default engine knobs.
void train_hooks_default(TrainHooks *h);

// The whole run: data, resume from output_dir/checkpoint.dino, epochs,
// logging, checkpoints, signals. Returns the process exit status (0; 1 for a
// non-finite loss or a checkpoint that could not be written; 128 + signal
// when interrupted), or -1 with err filled when the run cannot start or its
// data fails (the caller then exits without finalizing MPI, so the launcher
// ends the other ranks).
int train_run(const TrainConfig *cfg, const TrainHooks *hooks, char *err, size_t errlen);

#endif
