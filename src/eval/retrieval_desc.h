// Image descriptors of the reference's retrieval and copy-detection
// evaluations (docs/DOWNSTREAM.md), from the final-norm tokens of the last
// block.
#ifndef DINO_EVAL_RETRIEVAL_DESC_H
#define DINO_EVAL_RETRIEVAL_DESC_H

#include <stddef.h>

#include "resnet.h"
#include "vit.h"

// The CLS token of x (3, H, W), L2-normalised, into out (D). With
// multiscale, the CLS tokens of x and of x rescaled by 1/√2 and 1/2
// (retrieval_rescale) are averaged, then L2-normalised (utils.multi_scale).
// 0, or -1 with err filled when a scale leaves less than one patch.
int retrieval_cls_descriptor(const ViTConfig *cfg, const ViTWeights *w, const float *x, int H,
                             int W, int multiscale, float *out, char *err, size_t errlen);
// The same with a ResNet's pooled feature (evaluation mode) for the CLS token.
int retrieval_resnet_descriptor(const ResNetConfig *cfg, ResNetWeights *w, const float *x, int H,
                                int W, int multiscale, float *out, char *err, size_t errlen);

// Copy-detection descriptors of B images x (B, 3, S, S), run with acts made
// by vit_acts_create(cfg, >= B, S, S, 0): per image the CLS token followed
// by the GeM (p = 4, clamped at 1e-6) of the patch tokens, (B, 2·D), not
// normalised.
void retrieval_copy_descriptors(const ViTConfig *cfg, const ViTWeights *w, struct ViTActs *acts,
                                const float *x, int B, float *out);

// Divides each of the n rows of x (n, d) by its L2 norm (at least 1e-12),
// as torch's F.normalize.
void retrieval_l2_normalize(float *x, int64_t n, int d);

#endif
