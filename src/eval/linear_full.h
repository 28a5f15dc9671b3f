// The reference's full linear-probe mode (eval_linear.py, docs/DINO.md §9): every
// epoch the frozen backbone sees freshly augmented training images —
// RandomResizedCrop(crop) with torchvision's defaults (scale 0.08–1, ratio
// 3/4–4/3, bilinear), horizontal flip with p = 0.5, ToTensor, Normalize — and
// the classifier takes one SGD step per batch on their features. Validation
// features (evaluation transform) are computed once by the caller. Random
// draws come from streams keyed by (seed, epoch, sample), not torch's
// generator, so crops differ from a PyTorch run but not between our runs.
#ifndef DINO_EVAL_LINEAR_FULL_H
#define DINO_EVAL_LINEAR_FULL_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "eval/features.h"
#include "eval/linear.h"
#include "vit.h"

// fc gives the crop, batch of the forward pass is lcfg->batch_size, and the
// feature kind (n_last_blocks, avgpool). 0, or -1 with err filled.
int linear_probe_full(const ViTConfig *cfg, const ViTWeights *w, const Dataset *train,
                      const float *val_x, const int64_t *val_y, int64_t n_val,
                      const FeatureConfig *fc, const LinearConfig *lcfg, int num_classes,
                      LinearClassifier *out, LinearResult *res, char *err, size_t errlen);

// The augmented training view of one image: (3, crop, crop) normalised.
void linear_train_view(const Image *im, int crop, uint64_t seed, int epoch, int64_t index,
                       float *out);

#endif
