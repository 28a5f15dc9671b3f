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

// A --freeze_last_layer that outlasts any run: the last layer never trains.
#define TRAIN_FREEZE_ALWAYS 1000000
// Local crops per image: 8x the reference's 8 (each is a pass of the student).
#define TRAIN_MAX_LOCAL_CROPS 64

typedef struct {
    // model
    const char *arch;          // vit_tiny / vit_small / vit_base (deit_* aliases)
    int patch_size;            // 16
    int out_dim;               // 65536
    int norm_last_layer;       // 1
    int embed_dim, depth, num_heads;  // 0: from arch
    int img_size;              // position grid is built for this size (224)
    int head_hidden_dim, head_bottleneck_dim, head_nlayers;  // 2048, 256, 3
    float drop_path_rate;      // 0.1
    // teacher and loss (doubles: the reference's Python floats)
    double momentum_teacher;   // 0.996
    double warmup_teacher_temp, teacher_temp;  // 0.04, 0.04
    int warmup_teacher_temp_epochs;            // 0
    const char *centering;     // "centering" (the reference) or "sinkhorn_knopp" (DINOv2's teacher)
    float koleo_loss_weight;   // 0 (off, the reference); DINOv2's KoLeo on the global CLS features (0.1 there)
    // optimisation
    double weight_decay, weight_decay_end;  // 0.04, 0.4
    double clip_grad;          // 3.0 (0: off)
    int batch_size_per_gpu;    // 64
    int epochs;                // 100
    int freeze_last_layer;     // 1 (TRAIN_FREEZE_ALWAYS: the whole run)
    double lr;                 // 0.0005 (scaled by batch/256)
    int warmup_epochs;         // 10
    double min_lr;             // 1e-6
    const char *optimizer;     // adamw / sgd / lars
    // multi-crop
    float global_crops_scale[2];   // 0.4 1.0
    int local_crops_number;        // 8
    float local_crops_scale[2];    // 0.05 0.4
    int global_crop_size, local_crop_size;  // 224, 96
    double blur_sigma[2];          // 0.1 2.0: Gaussian blur radius range
    double solarization_prob;      // 0.2 (global crop 2)
    int jpeg_min_side;             // > 0: DCT-domain JPEG downscaling keeping sides >= this
    // run
    const char *data_path;
    const char *output_dir;
    int saveckp_freq;          // 20
    int seed;                  // 0
    int num_workers;           // 10 (capped to the cores)
    int world_size;            // 1 (a distributed run scales the lr by the global batch)
    int rank;                  // this process's rank; train_run sets both from the launcher (dist.h)
    int dist_report;           // --dist: one start-up line per rank
    int checkpoint_every_steps;  // 0: only at epoch ends
    int log_every_steps;       // 10
    int64_t stop_after_steps;  // > 0: checkpoint and stop at this global step (tests, preemption);
                               // a run already there or past it has nothing to do
    int eval_knn_every;        // 0: off; epochs between k-NN evaluations (hook)
    int quiet;                 // no progress lines
    int device;                // DeviceKind (src/cuda/train_plan.h): 0 cpu, 1 cuda
} TrainConfig;

void train_config_default(TrainConfig *c);
// Small-data preset: Fashion-MNIST, 28-px global / 14-px local crops, 7-px
// patches, a 4-block ViT of width 128, out_dim 1024, batch 64, 2 epochs
// (docs/TRAINING.md).
void train_config_preset_fmnist(TrainConfig *c);
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
