// Frozen-backbone features (docs/DINO.md §8, §9): runs a ViT over a dataset with the
// evaluation transform (resize to crop·256/224 bicubic, centre crop,
// normalise) in batches, decoding on the data loader's worker threads while
// the forward pass runs on OpenMP/OpenBLAS, and writes one row per sample in
// dataset order:
//   default            the final-norm CLS token (model(x) in eval_knn.py), D
//   n_last_blocks = n  the CLS tokens of the last n blocks, each through the
//                      final norm, concatenated (eval_linear.py), n·D
//   avgpool            with n = 1: CLS and the mean patch token of the last
//                      block interleaved as eval_linear.py's reshape leaves
//                      them (c0, a0, c1, a1, ...), 2·D; with n > 1 (where the
//                      reference's shapes fail) the mean is appended, (n+1)·D
//   avgpool = 2        the CLS tokens, then the mean patch token, concatenated
//                      for any n (DINOv2's create_linear_input), (n+1)·D
//   tokens = PATCH     every final-norm patch token, (T−1)·D per sample
//   tokens = REGISTER  every final-norm register (DINOv2) or storage (DINOv3)
//                      token, R·D per sample
#ifndef DINO_EVAL_FEATURES_H
#define DINO_EVAL_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "resnet.h"
#include "vit.h"

// The most memory one forward pass may take (activations, intermediate
// tokens, output rows): beyond it the crop or the batch is a mistake, and a
// smaller batch computes the same features.
#define FEATURES_MAX_PASS_BYTES ((double)((int64_t)16 << 30))

// Rows of whole token sets instead of CLS-based features.
enum { FEATURE_TOKENS_NONE = 0, FEATURE_TOKENS_PATCH = 1, FEATURE_TOKENS_REGISTER = 2 };

typedef struct {
    int crop;           // evaluation crop size (224)
    int batch_size;     // images per forward pass (128)
    int n_last_blocks;  // 1
    int avgpool;        // 0; 1 as DINO; 2 concatenated as DINOv2
    int tokens;         // FEATURE_TOKENS_NONE: rows from CLS (and the mean patch)
    int threads;        // loader worker threads (0: on the caller's thread)
    int verbose;        // progress lines on stderr
    int device;         // 0 cpu, 1 cuda (DeviceKind, src/device.h; make CUDA=1)
    const char *cuda_gemm;  // CUDA: fp32, tf32 or bf16 GEMMs (NULL: tf32; docs/GPU.md)
} FeatureConfig;

void feature_config_default(FeatureConfig *c);

// Floats per sample for images of crop × crop.
int64_t features_dim(const ViTConfig *cfg, const FeatureConfig *fc);

// 0 when fc's crop, blocks and a forward pass over `batch` images are
// valid and within FEATURES_MAX_PASS_BYTES; -1 with err filled (naming the
// crop, the batch and the limit) otherwise. Nothing is allocated.
int features_check(const ViTConfig *cfg, const FeatureConfig *fc, int batch, char *err,
                   size_t errlen);

// Features of B images (B, 3, H, W), already transformed, into out (B, dim),
// using acts made by vit_acts_create(cfg, >= B, H, W, 0).
void features_from_images(const ViTConfig *cfg, const ViTWeights *w, struct ViTActs *acts,
                          const float *images, int B, const FeatureConfig *fc, float *out);

// The whole dataset: out (dataset_size, dim), labels (dataset_size) (-1 when
// unlabelled), in batches of min(batch_size, dataset_size). 0, or -1 with err
// filled (bad flags, a pass beyond the memory limit, unreadable images).
int features_extract(const ViTConfig *cfg, const ViTWeights *w, const Dataset *ds,
                     const FeatureConfig *fc, float *out, int64_t *labels, char *err,
                     size_t errlen);

// As features_extract, but an unreadable image is no error: kept (dataset_size)
// gets 1 for every row produced and 0 for every image that could not be read
// (its row and label are zeros). Still -1 when no image is readable.
int features_extract_skipping(const ViTConfig *cfg, const ViTWeights *w, const Dataset *ds,
                              const FeatureConfig *fc, float *out, int64_t *labels,
                              uint8_t *kept, char *err, size_t errlen);

// A ResNet backbone: its pooled features (resnet_out_dim per image) in
// evaluation mode (running statistics), as the reference's eval scripts take
// model(x) of a resnet50 with fc = identity. features_check_resnet refuses
// what a ResNet has no counterpart for (n_last_blocks > 1, avgpool, patch
// tokens, the CUDA device) and passes beyond FEATURES_MAX_PASS_BYTES.
int features_check_resnet(const ResNetConfig *cfg, const FeatureConfig *fc, int batch, char *err,
                          size_t errlen);
int features_extract_resnet(const ResNetConfig *cfg, ResNetWeights *w, const Dataset *ds,
                            const FeatureConfig *fc, float *out, int64_t *labels, uint8_t *kept,
                            char *err, size_t errlen);

#endif
