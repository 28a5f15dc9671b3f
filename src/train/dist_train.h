// What data-parallel training adds to the trainer, on top of the
// communication layer (dist.h): the check that every rank runs the same
// configuration, the start-up report, copying rank 0's state (fresh or
// resumed) to every rank, drop-path masks that match a single process at
// the same global batch, and the loss statistics averaged over ranks (the
// tests' fault injection is dist_faults.h). Every function is a no-op or the
// single-process behaviour in a world of one.
#ifndef DINO_TRAIN_DIST_TRAIN_H
#define DINO_TRAIN_DIST_TRAIN_H

#include <stdint.h>

#include "train/loss.h"
#include "train/trainer.h"

// One setting as ranks compare it: a flag name (train_settings.h) or a
// property of the data ("dataset images").
typedef struct {
    char key[32];
    char value[96];
} DistItem;

#define DIST_MAX_ITEMS 64

// What dist_check_config compares: every setting whose table line says ranks
// must agree, then the dataset's size and the iterations per epoch. Returns
// the number of items.
int dist_config_items(const TrainConfig *c, int64_t dataset_images, int64_t niter_per_ep,
                      DistItem *items);

// Compares the settings that must agree (model, optimisation, data, stopping)
// and the dataset size with rank 0's. On any difference rank 0 names the
// rank, the flag and both values, MPI is finalized, and every rank returns
// -1 with err filled (then it must stop); else 0.
int dist_check_config(const TrainConfig *c, int64_t dataset_images, int64_t niter_per_ep, char *err,
                      size_t errlen);

// One line on rank 0 ("distributed: N ranks on H hosts ..."); with `full`
// one line per rank: host, pid, compute threads, loader threads.
void dist_report(const TrainConfig *c, int loader_threads, int full);

// Copies rank 0's trainer state (weights, teacher, optimizer, centre,
// position, epoch sums) to every rank: identical starting points whether
// rank 0 initialised or resumed, even when only rank 0 sees the checkpoint.
void dist_sync_trainer(Trainer *t);

// Drop-path factors of this rank's crops of group g (depth·2·n_crops·B
// values, layout as drop_path_scales): the factors a single process with
// a batch of B·world would draw for the same images. With DistributedSampler
// order, local image i of rank r is image world·i + r of that global batch.
void dist_drop_scales(const TrainConfig *c, const ViTConfig *vit, int64_t it, int group,
                      int n_crops, int B, float *out);

// Averages loss, teacher_entropy and teacher_mean_entropy over the ranks
// (the loss is a mean over equal per-rank batches, so this is the global one).
void dist_reduce_loss_stats(LossStats *ls);

#endif
