// Flags and steps that the evaluation commands (features, knn, linear,
// attention) share: which model file and checkpoint key, which dataset and
// split, the evaluation crop, and which tokens make a feature. Every step
// dies with one sentence on a user error (bad file, wrong architecture,
// unreadable dataset).
#ifndef DINO_CLI_EVAL_COMMON_H
#define DINO_CLI_EVAL_COMMON_H

#include <stdint.h>

#include "model.h"
#include "train/trainer.h"
#include "vit.h"

typedef struct {
    const char *pretrained_weights;  // any supported model file
    const char *checkpoint_key;      // "teacher" (reference default) or "student"
    const char *arch;                // NULL: from the file; else checked against it
    int patch_size;                  // 0: from the file; else checked against it
    int heads;                       // attention heads when the file cannot say (0: D/64)
    const char *data_path;
    int batch_size;     // images per forward pass (flag --batch_size_per_gpu, per command)
    int crop;           // centre-crop size; 0: the model's img_size (224; 28 for 28-px models)
    int n_last_blocks;  // concatenate the CLS tokens of the last n blocks
    int avgpool;        // append the mean of the last block's patch tokens
    int device;         // 0 cpu, 1 cuda: where the forward passes run (dino features --device)
    int skip_unreadable;  // leave unreadable images out instead of stopping (dino features)
    int record_paths;     // fill EvalFeatures.paths and .skipped (dino features)
    int use_bf16;         // --use_bf16: the backbone's matmuls with bf16 inputs (src/gemm.h)
} EvalModelArgs;

void eval_model_args_default(EvalModelArgs *a);

// Flag rows of the model file, shared by every command that loads one; the
// second set adds the dataset and the features taken from it.
#define EVAL_MODEL_FILE_ARG_SPECS(ma)                                                             \
    {"pretrained_weights", ARG_STRING, &(ma).pretrained_weights, "model file (.pth, .safetensors, native)"}, \
    {"checkpoint_key", ARG_STRING, &(ma).checkpoint_key, "teacher or student, for training checkpoints"}, \
    {"arch", ARG_STRING, &(ma).arch, "expected architecture (vit_tiny/small/base, resnet50); default: the file's"}, \
    {"patch_size", ARG_INT, &(ma).patch_size, "expected patch size (0: the file's)", ARG_RANGE(0, ARG_MAX_PATCH)}, \
    {"heads", ARG_INT, &(ma).heads, "attention heads, for files that do not record them (0: dim/64; DINOv3: from rope_embed.periods)", ARG_RANGE(0, ARG_MAX_HEADS)}, \
    EVAL_USE_BF16_ARG_SPEC((ma).use_bf16)

// --use_bf16, shared with `dino bench forward` (docs/ENGINE.md, "bf16 mode").
#define EVAL_USE_BF16_ARG_SPEC(var)                                                               \
    {"use_bf16", ARG_BOOL, &(var), "bf16 mixed precision (PyTorch CPU autocast): the backbone's Linear " \
     "layers and attention matmuls take bf16 inputs and sum in fp32; LayerNorm, softmax, GELU and " \
     "outputs stay fp32. Default false: fp32 throughout. CPUs without AVX512-BF16 or AMX run fp32 " \
     "and say so"}

#define EVAL_MODEL_ARG_SPECS(ma)                                                                  \
    EVAL_MODEL_FILE_ARG_SPECS(ma),                                                                \
    {"data_path", ARG_STRING, &(ma).data_path, "dataset (ImageFolder, IDX, CIFAR, list, folder)"}, \
    {"crop", ARG_INT, &(ma).crop, "centre-crop size after resizing to crop*256/224 (0: the model's img_size)", ARG_RANGE(0, ARG_MAX_IMAGE_SIDE)}, \
    {"n_last_blocks", ARG_INT, &(ma).n_last_blocks, "concatenate the CLS tokens of the last n blocks", ARG_RANGE(1, VIT_MAX_DEPTH)}, \
    {"avgpool_patchtokens", ARG_BOOL, &(ma).avgpool, "add the mean patch token of the last block"}

typedef struct {
    DinoModel m;
    float *params;
    ViTWeights w;      // a ViT backbone
    ResNetWeights rw;  // a ResNet backbone (m.backbone)
    char desc[256];
} EvalModel;

// Loads a->pretrained_weights (backbone only, a->checkpoint_key of training
// checkpoints) and checks --arch/--patch_size against it. A ResNet loads too
// (--arch resnet50); commands that need a ViT check em->m.backbone.
void eval_model_load(const EvalModelArgs *a, EvalModel *em);
void eval_model_free(EvalModel *em);
// Dies with one line naming the file when em holds a ResNet: `why` says what
// the command needs that a ResNet has not ("a ResNet has no attention maps").
void eval_model_require_vit(const EvalModelArgs *a, const EvalModel *em, const char *why);
// --use_bf16 on: autocast on and a bf16 copy of the weights made once; off:
// nothing. eval_model_load calls it; bench calls it on its own weights.
void eval_use_bf16(int on, const float *params, size_t n);
// The crop a run uses: a->crop, or vit_eval_crop (img_size; 224 for DINOv2).
int eval_crop(const EvalModelArgs *a, const EvalModel *em);

typedef struct {
    float *x;         // (n, d)
    int64_t *labels;  // (n), -1 where unlabelled
    int64_t n;
    int64_t d;
    int labelled;     // every sample has a label
    int num_classes;  // from the dataset (0: unlabelled)
    int has_splits;   // the dataset holds separate train and val images
    // With EvalModelArgs.record_paths: the file of each row (NULL for IDX and
    // CIFAR), and the unreadable files left out under skip_unreadable.
    char **paths;
    char **skipped;
    int64_t n_skipped;
} EvalFeatures;

void eval_features_free(EvalFeatures *f);

// Runs the model over split `split` (0 train, 1 val) of a->data_path with
// the evaluation transform; tokens (FEATURE_TOKENS_*) selects every patch or
// register token instead
// of the CLS features.
void eval_features_from_model(const EvalModelArgs *a, const EvalModel *em, int split,
                              int tokens, EvalFeatures *out);

// .npy inputs of `dino knn` and `dino linear`: the four files, or a folder
// written by `dino features` holding train_/val_{features,labels}.npy.
typedef struct {
    const char *dir;
    const char *train_features, *train_labels, *val_features, *val_labels;
} FeatureFiles;

// The flags that fill a FeatureFiles, shared by dino knn and dino linear.
#define FEATURE_FILE_ARG_SPECS(f)                                                                 \
    {"features_dir", ARG_STRING, &(f).dir, "folder written by dino features (sets the four files below)"}, \
    {"train_features", ARG_STRING, &(f).train_features, ".npy (N, D) training features"},        \
    {"train_labels", ARG_STRING, &(f).train_labels, ".npy (N) training labels"},                  \
    {"val_features", ARG_STRING, &(f).val_features, ".npy (M, D) validation features"},           \
    {"val_labels", ARG_STRING, &(f).val_labels, ".npy (M) validation labels"}

// Labelled train and validation features for `command`: from the .npy files
// when any is given, else from the model over a->data_path. Exits with one
// line when something is missing, unlabelled, not finite, of mismatched
// dimension or shape, or a label is not below max_classes.
void eval_labelled_features(const char *command, const FeatureFiles *files, int max_classes,
                            const EvalModelArgs *a, EvalFeatures *train, EvalFeatures *val);

// TrainHooks.eval for `dino train --eval_knn_every` (a TrainEvalFn): the
// teacher's 20-NN accuracy on the training dataset's train/val splits.
int eval_knn_during_training(void *ctx, const TrainConfig *cfg, const DinoModel *model,
                             const float *teacher, int epoch, char *json, size_t n);

#endif
