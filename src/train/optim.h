// Optimizers and the other per-step parameter updates of DINO training
// (docs/DINO.md §6): AdamW with PyTorch's exact float32 arithmetic,
// SGD with momentum, DINO's LARS, per-tensor gradient clipping and the
// teacher EMA. All work on flat buffers described by one ParamTable; the
// reference's parameter groups come from ParamInfo.no_decay (group 1, weight
// decay 0) and tensors that are not trainable are never touched.
#ifndef DINO_TRAIN_OPTIM_H
#define DINO_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"

typedef enum { OPTIM_ADAMW = 0, OPTIM_SGD = 1, OPTIM_LARS = 2 } OptimKind;

typedef struct {
    OptimKind kind;
    const ParamTable *table;
    double beta1, beta2, eps;  // AdamW: 0.9, 0.999, 1e-8 (Python floats in the reference)
    double momentum;           // SGD and LARS: 0.9
    double lars_eta;           // 0.001
    float *m;        // (table->total): AdamW exp_avg, SGD momentum_buffer, LARS mu
    float *v;        // (table->total): AdamW exp_avg_sq; NULL otherwise
    int64_t *step;   // per tensor: AdamW step count; SGD/LARS 1 once the buffer exists
} Optimizer;

// "adamw", "sgd", "lars" -> kind; -1 for an unknown name.
int optim_kind_parse(const char *name, OptimKind *kind);
const char *optim_kind_name(OptimKind kind);

void optim_init(Optimizer *o, OptimKind kind, const ParamTable *t);
void optim_free(Optimizer *o);

// One step at learning rate lr and weight decay wd (group 0; group 1 has 0).
// skip, when not NULL, marks tensors whose gradient is absent this step (the
// frozen last layer): like a PyTorch param with grad None they are left
// completely alone — no decay, no moment update, no step count.
void optim_step(Optimizer *o, float *params, const float *grads, double lr, double wd,
                const uint8_t *skip);

// clip_gradients: for each trainable, not skipped tensor, norm = ||g||₂ (float32)
// and g *= clip/(norm+1e-6) when that is < 1. norms (t->n, may be NULL)
// receives each norm (0 for tensors without gradient).
void clip_gradients(const ParamTable *t, float *grads, float clip, const uint8_t *skip,
                    float *norms);

// θ_t ← m·θ_t + (1−m)·θ_s over n floats, rounded as the reference's
// mul_(m).add_((1−m)·θ_s).
void ema_update(float *teacher, const float *student, size_t n, double m);
// The teacher EMA of the reference, over parameters only: the table's
// buffers (BatchNorm running statistics) keep what the teacher's own
// forwards made of them. A table without buffers is one ema_update.
void ema_update_params(const ParamTable *t, float *teacher, const float *student, double m);

#endif
