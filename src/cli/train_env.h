// What the environment adds to a training run, read by the command line
// only (the library takes it as TrainHooks): DINO_TRAIN_CHUNK_KIB,
// DINO_CUDA_DEBUG_SYNC, DINO_CUDA_GEMM, DINO_INJECT_NAN_AT_STEP, DINO_DIST_DIE_AT_STEP,
// DINO_DIST_HANG_AT_STEP, DINO_DIST_FAULT_RANK, DINO_DIST_TIMEOUT. No
// evaluation is set.
#ifndef DINO_CLI_TRAIN_ENV_H
#define DINO_CLI_TRAIN_ENV_H

#include "train/trainer.h"

void train_hooks_from_env(TrainHooks *h);

#endif
