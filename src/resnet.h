// The ResNet backbone: torchvision's resnet50() (v1.5: the stride on the
// bottleneck's 3x3 convolution) with fc replaced by identity, as the
// reference's MultiCropWrapper uses it: conv 7x7/2, BatchNorm, ReLU, max-pool
// 3x3/2, bottleneck stages [3, 4, 6, 3], global average pool, 2048-d
// features. The configuration also describes reduced models for tests
// (fewer blocks, narrower stages) and the small stem for 28 px inputs
// (conv 3x3/1, no max-pool, as CIFAR-style ResNets do). Parameter names and
// order are torchvision's state_dict keys; BatchNorm's running statistics
// are table entries marked as buffers (ParamInfo.buffer).
#ifndef DINO_RESNET_H
#define DINO_RESNET_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"

#define RESNET_STAGES 4
#define RESNET_MAX_BLOCKS 64  // over all stages

typedef struct {
    int in_chans;        // 3
    int stem_width;      // 64: conv1's output channels
    int stem_kernel;     // 7 (small stem: 3)
    int stem_stride;     // 2 (small stem: 1)
    int stem_pool;       // 1: max-pool 3x3/2 after the stem (small stem: 0)
    int planes[RESNET_STAGES];  // 64, 128, 256, 512
    int blocks[RESNET_STAGES];  // 3, 4, 6, 3
    int width_per_group;        // 64: inner width = planes·width_per_group/64
    int expansion;              // 4: output channels = planes·expansion
    float bn_eps;               // 1e-5
    float bn_momentum;          // 0.1
} ResNetConfig;

// "resnet50" (torchvision's), "resnet_tiny" (a reduced model for 28 px
// images and tests: resnet50's widths / 16, a 16-channel stem and planes 4,
// 8, 16, 32, one bottleneck per stage, the small stem, 128-d features), or -1.
int resnet_config_preset(ResNetConfig *cfg, const char *arch);
// Replaces the stem with conv 3x3/1 and no max-pool (28 px inputs).
void resnet_config_small_stem(ResNetConfig *cfg);
// 1 when cfg is torchvision's resnet50 (any number of input channels).
int resnet_config_is_resnet50(const ResNetConfig *cfg);
// 1 when cfg is the "resnet_tiny" preset (any number of input channels).
int resnet_config_is_tiny(const ResNetConfig *cfg);
// A one-line description ("resnet50: 2048-d, blocks [3,4,6,3], ...").
void resnet_config_describe(const ResNetConfig *cfg, char *buf, size_t n);
int resnet_out_dim(const ResNetConfig *cfg);
int resnet_n_blocks(const ResNetConfig *cfg);

// Multiply-adds of the convolutions of one H x W image's forward pass
// (resnet50 at 224: 4.09e9, torchvision's "4.09 GFLOPS").
double resnet_forward_macs(const ResNetConfig *cfg, int H, int W);

// Entries in torchvision's state_dict order (num_batches_tracked left out):
// conv1.weight, bn1.{weight,bias,running_mean,running_var},
// layer{1..4}.{j}.{conv1,bn1,conv2,bn2,conv3,bn3}, and for each stage's
// first block downsample.0.weight, downsample.1.*.
void resnet_param_table(const ResNetConfig *cfg, ParamTable *t, const char *prefix);

typedef struct {
    float *w, *b, *mean, *var;  // weight, bias, running_mean, running_var (C each)
} ResNetBN;

typedef struct {
    float *conv1, *conv2, *conv3, *ds_conv;  // ds_conv NULL without a downsample
    ResNetBN bn1, bn2, bn3, ds_bn;
} ResNetBlockWeights;

typedef struct {
    float *conv1;
    ResNetBN bn1;
    ResNetBlockWeights blocks[RESNET_MAX_BLOCKS];
} ResNetWeights;

void resnet_weights_bind(ResNetWeights *w, const ResNetConfig *cfg, float *base);
// torchvision's initialisation: kaiming_normal_(fan_out, relu) convolutions,
// BatchNorm weight 1, bias 0, running mean 0, running variance 1.
void resnet_init(const ResNetConfig *cfg, ResNetWeights *w, uint64_t seed);

// Activations for B images of H x W. keep: keep what resnet_backward needs.
typedef struct ResNetActs ResNetActs;
ResNetActs *resnet_acts_create(const ResNetConfig *cfg, int B, int H, int W, int keep);
// Bytes such activations allocate (for memory budgets).
size_t resnet_acts_bytes(const ResNetConfig *cfg, int B, int H, int W, int keep);
void resnet_acts_free(ResNetActs *a);
// SyncBatchNorm: batch statistics and their gradients are all-reduced over
// the ranks (train/dist.h) when on.
void resnet_acts_set_sync(ResNetActs *a, int sync);

// Forward over images (B, C, H, W) (B as at creation, or fewer). batch_stats:
// BatchNorm in training mode (batch statistics; running statistics in w
// updated, as every train-mode forward in torch does); 0: evaluation mode
// (running statistics). Training activations (keep) need batch_stats.
void resnet_forward(const ResNetConfig *cfg, ResNetWeights *w, ResNetActs *a,
                    const float *images, int B, int batch_stats);
// The pooled features (B, resnet_out_dim) of the last forward.
const float *resnet_output(const ResNetActs *a);
// Backward from dfeat (B, out_dim) after a kept forward: accumulates (+=)
// parameter gradients into g (never into the running statistics).
void resnet_backward(const ResNetConfig *cfg, const ResNetWeights *w, ResNetWeights *g,
                     ResNetActs *a, const float *dfeat);

#endif
