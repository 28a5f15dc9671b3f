// Flags and steps that the evaluation commands (features, knn, linear,
// attention) share: which model file and checkpoint key, which dataset and
// split, the evaluation transform's sizes, and which tokens make a feature.
// eval_features_from_model loads the model and runs it over a split, dying
// with one sentence on any user error.
#ifndef DINO_CLI_EVAL_COMMON_H
#define DINO_CLI_EVAL_COMMON_H

#include <stdint.h>

typedef struct {
    const char *pretrained_weights;  // any supported model file
    const char *checkpoint_key;      // "teacher" (reference default) or "student"
    const char *arch;                // used only when the file does not say
    int patch_size;
    const char *data_path;
    int batch_size;     // images per forward pass
    int crop;           // centre-crop size (224); 0: the dataset's native size if smaller than 224
    int resize;         // shorter side before cropping; 0: crop·256/224
    int n_last_blocks;  // concatenate the CLS tokens of the last n blocks
    int avgpool;        // append the mean of the last block's patch tokens
} EvalModelArgs;

void eval_model_args_default(EvalModelArgs *a);

#define EVAL_MODEL_ARG_SPECS(ma)                                                                  \
    {"pretrained_weights", ARG_STRING, &(ma).pretrained_weights, "model file (.pth, .safetensors, native)"}, \
    {"checkpoint_key", ARG_STRING, &(ma).checkpoint_key, "teacher or student, for training checkpoints"}, \
    {"arch", ARG_STRING, &(ma).arch, "architecture when the file does not say"},                 \
    {"patch_size", ARG_INT, &(ma).patch_size, "patch size when the file does not say"},          \
    {"data_path", ARG_STRING, &(ma).data_path, "dataset (ImageFolder, IDX, CIFAR, list, folder)"}, \
    {"batch_size", ARG_INT, &(ma).batch_size, "images per forward pass"},                        \
    {"crop", ARG_INT, &(ma).crop, "centre-crop size (0: 224, or the native size of small images)"}, \
    {"resize", ARG_INT, &(ma).resize, "shorter side before the crop (0: crop*256/224)"},        \
    {"n_last_blocks", ARG_INT, &(ma).n_last_blocks, "concatenate the CLS tokens of the last n blocks"}, \
    {"avgpool_patchtokens", ARG_BOOL, &(ma).avgpool, "append the mean patch token of the last block"}

typedef struct {
    float *x;         // (n, d)
    int64_t *labels;  // (n), -1 where unlabelled
    int64_t n;
    int d;
    int labelled;     // every sample has a label
    int num_classes;
} EvalFeatures;

// Loads the model named by a->pretrained_weights and runs it over split
// `split` (0 train, 1 val/test) of a->data_path. Dies with one sentence on a
// bad file, wrong architecture or unreadable dataset.
void eval_features_from_model(const EvalModelArgs *a, int split, EvalFeatures *out);

#endif
