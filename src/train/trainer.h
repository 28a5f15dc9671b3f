// DINO training (SPEC §4, §6, §7): the configuration with the reference's
// flag names and defaults, the student/teacher/optimizer/loss state, one
// training iteration on a Batch, checkpoints that capture the exact position
// (epoch, step) so a resumed run is bit-identical to an uninterrupted one,
// and the run loop with logging, the collapse monitor, signal handling and
// the non-finite-loss stop. cmd_train.c only parses flags and calls train_run.
#ifndef DINO_TRAIN_TRAINER_H
#define DINO_TRAIN_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "model.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/schedule.h"
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
// Every check of the configuration that needs no data (model shapes, crop
// sizes on the patch grid, optimizer, schedules, loss): 0, or -1 with err
// naming the flags. trainer_create runs it too.
int train_config_check(const TrainConfig *c, char *err, size_t errlen);

// Statistics of one iteration.
typedef struct {
    double loss;
    double lr, wd, momentum, teacher_temp;
    double teacher_entropy, teacher_mean_entropy;
    double koleo;  // the KoLeo loss before its weight (0 when off); loss includes weight·koleo
    double seconds;
} StepStats;

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
    // work buffers, sized on the first batch
    MultiCropActs *sacts, *tacts;
    int acts_B, acts_sizes[BATCH_MAX_GROUPS], acts_groups;
    float *drop[BATCH_MAX_GROUPS];
    float *center_sum;
    uint8_t *skip;
    float *grad_norms;
    double koleo_sum;  // KoLeo losses of the step's global crops, summed by the pass
    struct CudaTrainer *cuda;  // --device cuda: the device engine (src/cuda/train_cuda.h), else NULL
} Trainer;

// Builds model, optimizer, loss and schedules for niter_per_ep iterations per
// epoch; initialises the student from cfg->seed and copies it to the teacher.
// NULL with err filled for a bad configuration.
Trainer *trainer_create(const TrainConfig *cfg, int64_t niter_per_ep, char *err, size_t errlen);
void trainer_free(Trainer *t);

// One iteration at position (t->epoch, t->step) on batch b: teacher on the
// global crops, student on all, loss, backward, clipping, last-layer freeze,
// optimizer, EMA, centre. Returns 0, or -1 if the loss is not finite (then
// nothing was changed). Does not advance the position.
int trainer_step(Trainer *t, const Batch *b, StepStats *st);
// Advances the position by one iteration and adds st to the epoch sums.
void trainer_advance(Trainer *t, const StepStats *st);

// The drop-path factors of group g at global iteration `it` (depth·2·Bg
// values, 0 or 1/keep), from streams keyed by (seed, it, group, block·2+branch).
void trainer_drop_scales(const TrainConfig *cfg, const ViTConfig *vit, int64_t it, int group,
                         int Bg, float *out);

// Checkpoint: everything trainer_step reads, plus the position, the epoch's
// running sums and the configuration. Atomic. 0, or -1 with err filled.
int trainer_save(const Trainer *t, const char *path, char *err, size_t errlen);
// Restores a checkpoint written by trainer_save into t (built from a
// compatible configuration). Refuses with err filled when a flag that shapes
// the model, the data or the optimizer differs; reports other differences
// through dino_warn. 0, or -1.
int trainer_load(Trainer *t, const char *path, char *err, size_t errlen);

// Hook for periodic evaluation (`--eval_knn_every`): defined by the
// evaluation code when it is linked in (weak otherwise). Called at the end of
// every eval_knn_every-th epoch with the teacher weights; writes a JSON
// fragment (e.g. "\"knn_top1\": 71.2") into json and returns 0.
int train_eval_hook(const TrainConfig *cfg, const DinoModel *model, const float *teacher,
                    int epoch, char *json, size_t n) __attribute__((weak));

// The whole run: data, resume from output_dir/checkpoint.dino, epochs,
// logging, checkpoints, signals. Returns the process exit status.
int train_run(const TrainConfig *cfg);

#endif
