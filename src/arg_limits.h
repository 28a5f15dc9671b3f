// Upper ends of numbers that several tables of settings share: the
// commands' flag tables (cli/args.h) and the training settings
// (train/train_settings.h), each with its reason. A library header, so that
// the library's own tables may use them without including the CLI.
#ifndef DINO_ARG_LIMITS_H
#define DINO_ARG_LIMITS_H

// A thread count: far more than any machine's cores, below what makes
// OpenMP's thread creation itself exhaust the process.
#define ARG_MAX_THREADS 1024
// Images per batch: 64x the reference's 64 per GPU (its largest run trains
// 1024 over 16 GPUs); a batch of 224-px crops is ~0.6 MB per image per crop.
#define ARG_MAX_BATCH 4096
// Crop and image sides in pixels: 4.6x the reference's 224; tokens grow with
// the square of the side and attention's memory with its fourth power.
#define ARG_MAX_IMAGE_SIDE 1024
// Patch side: 4x the reference's 16; the patch embedding holds 3·p²·dim weights.
#define ARG_MAX_PATCH 64
// Attention heads: ViT-g has 24; more than the width can split usefully.
#define ARG_MAX_HEADS 256
// Epochs: 125x the reference's longest schedule (800).
#define ARG_MAX_EPOCHS 100000
// Numbers that size nothing (step counts, intervals; seeds and random keys
// take it as a bound on either side): any int.
#define ARG_MAX_COUNT 2147483647

#endif
