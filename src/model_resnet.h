// The multi-crop passes of model.h for a ResNet backbone (model_resnet.c);
// model.c dispatches to these. Internal to the library.
#ifndef DINO_MODEL_RESNET_H
#define DINO_MODEL_RESNET_H

#include "model.h"

// rows_mode: 1 for the chunked training pass (multicrop_train_acts_create).
MultiCropActs *resnet_multicrop_acts_create(const DinoModel *m, const Batch *b, int n_groups,
                                            int train, int rows_mode);
const float *resnet_multicrop_forward(const DinoModel *m, float *params, MultiCropActs *a,
                                      const Batch *b);
void resnet_multicrop_backward(const DinoModel *m, const float *params, float *grads,
                               MultiCropActs *a, const float *dlogits);
void resnet_multicrop_train_pass(const DinoModel *m, float *params, float *grads, MultiCropActs *a,
                                 const Batch *b, MultiCropLossFn loss_fn,
                                 MultiCropFeatureFn feature_fn, void *ctx);

#endif
