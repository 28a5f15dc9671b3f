// k-NN accuracy of a backbone on a labelled dataset in one call: features of
// the train and val splits with the evaluation transform (features.h), then
// the weighted k-NN of knn.h. This is what `--eval_knn_every` runs during
// training (src/eval/train_hook.c) and what other code should call to score
// a model without going through files.
#ifndef DINO_EVAL_KNN_MODEL_H
#define DINO_EVAL_KNN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "eval/knn.h"
#include "resnet.h"
#include "vit.h"

typedef struct {
    const char *data_path;  // any labelled dataset with train and val/test splits
    int crop;               // evaluation crop (0: cfg->img_size; a ResNet: 224, or 28 for the small stem)
    int batch_size;         // images per forward pass (128)
    int threads;            // loader threads (0: on the calling thread)
    KnnConfig knn;          // k values, temperature (reference defaults)
} KnnModelConfig;

void knn_model_config_default(KnnModelConfig *c, const char *data_path);

// Fills results[0 .. c->knn.n_k). 0, or -1 with err filled (no such dataset,
// a split without labels, unreadable images).
int knn_evaluate_model(const ViTConfig *cfg, const ViTWeights *w, const KnnModelConfig *c,
                       KnnResult *results, char *err, size_t errlen);

// The same for a ResNet backbone (its pooled features in evaluation mode;
// w is only read).
int knn_evaluate_resnet(const ResNetConfig *cfg, ResNetWeights *w, const KnnModelConfig *c,
                        KnnResult *results, char *err, size_t errlen);

#endif
