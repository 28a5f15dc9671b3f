// A DINO network: ViT backbone + projection head over one flat parameter
// buffer whose table uses the reference's names ("backbone.*", "head.*").
// The multi-crop pass runs each resolution group through the backbone once
// and the head once over all CLS features, in crop-major order (docs/DINO.md §3); the
// training pass does the same in chunks of images.
#ifndef DINO_MODEL_H
#define DINO_MODEL_H

#include "batch.h"
#include "head.h"
#include "params.h"
#include "resnet.h"
#include "vit.h"

// Which backbone a DinoModel has. The multi-crop passes below run ViTs only.
typedef enum { MODEL_BACKBONE_VIT = 0, MODEL_BACKBONE_RESNET = 1 } ModelBackbone;

typedef struct {
    ModelBackbone backbone;
    ViTConfig vit;        // MODEL_BACKBONE_VIT
    ResNetConfig resnet;  // MODEL_BACKBONE_RESNET
    HeadConfig head;
    int has_head;      // 0 for a backbone-only model (evaluation, official weights)
    ParamTable table;  // "backbone.*" then "head.*"
} DinoModel;

// Builds the table. has_head = 0 leaves out the head.
void model_build(DinoModel *m, const ViTConfig *vit, const HeadConfig *head, int has_head);
// The same with a ResNet backbone (resnet.h; "backbone.conv1.weight", ...).
void model_build_resnet(DinoModel *m, const ResNetConfig *rn, const HeadConfig *head, int has_head);
void model_free(DinoModel *m);
// Width of the backbone's feature (ViT: D; ResNet: the pooled 2048).
int model_feature_dim(const DinoModel *m);
// A one-line description of the backbone (vit_config_describe / resnet_config_describe).
void model_describe_backbone(const DinoModel *m, char *buf, size_t n);
// ResNet weights bound in a buffer laid out as m->table (ResNet models only).
void model_bind_resnet(const DinoModel *m, float *base, ResNetWeights *rw);
// Points backbone and head pointers into a buffer laid out as m->table (vw
// is left zeroed for a ResNet backbone: see model_bind_resnet).
void model_bind(const DinoModel *m, float *base, ViTWeights *vw, HeadWeights *hw);
void model_init(const DinoModel *m, float *params, uint64_t seed);

// Activations for multi-crop passes: one ViTActs per crop group and one head.
typedef struct {
    int n_groups;
    int B;
    int sizes[BATCH_MAX_GROUPS];
    int n_crops[BATCH_MAX_GROUPS];
    struct ViTActs *vit[BATCH_MAX_GROUPS];
    struct ResNetActs *rn[BATCH_MAX_GROUPS];  // a ResNet backbone instead (model_resnet.c)
    HeadActs *head;
    float *features;  // (total crops·B, D): CLS features in crop-major order
    float *dfeatures;
    float *dtokens[BATCH_MAX_GROUPS];  // (n_crops·B, T, D) backward scratch: dL/d(tokens)
    int train;
    // Chunked training pass only (multicrop_train_acts_create):
    int chunk_rows[BATCH_MAX_GROUPS];  // images of a group per chunk
    void *arena;                       // the groups' ViTActs, used one at a time
    float *dlogits;                    // (chunk rows, out_dim)
    float *drop_chunk;                 // (2·depth, chunk rows) drop-path factors
} MultiCropActs;

// A ResNet backbone runs its BatchNorms as the reference trains them, student
// and teacher alike: batch statistics over each resolution group (all-reduced
// over the ranks, SyncBatchNorm), and every forward updates the running
// statistics held in `params` (so multicrop_forward writes them, as torch's
// train-mode forward does). Its chunked training pass runs whole groups, the
// unit its statistics are taken over; drop_scale does not apply.
//
// Activations for the first n_groups groups of batches shaped like `b`.
MultiCropActs *multicrop_acts_create(const DinoModel *m, const Batch *b, int n_groups, int train);
void multicrop_acts_free(MultiCropActs *a);
// Runs groups 0..a->n_groups-1 of the batch; returns logits (crops·B, out_dim).
// drop_scale per group as in vit_forward (NULL: no drop path).
const float *multicrop_forward(const DinoModel *m, const float *params, MultiCropActs *a,
                               const Batch *b, float *const *drop_scale);
// Backward from dlogits (crops·B, out_dim); accumulates into grads.
void multicrop_backward(const DinoModel *m, const float *params, float *grads, MultiCropActs *a,
                        const float *dlogits);

// The training pass in chunks. A crop's loss terms and gradient depend only
// on its own logits (and the teacher's, computed before), so the student can
// run forward, loss and backward over a few images at a time and keep only
// one chunk's activations, instead of every crop's at once. Chunks are
// contiguous images of one group, at most max_bytes of ViT activations each
// (at least one image), except that whole_first_group keeps group 0 (the
// global crops) in one chunk whatever its size, for a loss over the batch's
// features (KoLeo); the head's weight norm is prepared once per pass and its
// weight gradients are summed over the chunks (head_backward_rows). A head
// with BatchNorm (head.use_bn) takes its statistics over every crop, so it
// runs forward and backward once over all of them: the backbone's chunks
// run forward first, keeping only their features, then forward again and
// backward after the head (the last one run keeps its activations). loss_fn
// and feature_fn see the same chunks either way.
MultiCropActs *multicrop_train_acts_create(const DinoModel *m, const Batch *b, size_t max_bytes,
                                           int whole_first_group);
// Called once per chunk with its logits (nrows, out_dim), rows row0.. of the
// crop-major order of multicrop_forward; must write dlogits (nrows, out_dim).
typedef void (*MultiCropLossFn)(void *ctx, float *dlogits, const float *logits, int row0,
                                int nrows);
// Optional, called once per chunk after the head's backward with the chunk's
// CLS features (nrows, D) and their gradient so far: may add a loss term's
// gradient with respect to the features into dfeatures.
typedef void (*MultiCropFeatureFn)(void *ctx, float *dfeatures, const float *features, int row0,
                                   int nrows);
// Forward, loss_fn (and feature_fn when not NULL) and backward over every
// chunk of the batch; accumulates the parameter gradients into grads.
// drop_scale as in multicrop_forward.
void multicrop_train_pass(const DinoModel *m, const float *params, float *grads, MultiCropActs *a,
                          const Batch *b, float *const *drop_scale, MultiCropLossFn loss_fn,
                          MultiCropFeatureFn feature_fn, void *ctx);

#endif
