// The DINO projection head (docs/DINO.md §2): an MLP (Linear-GELU-...-Linear to the
// bottleneck), L2 normalisation, and a weight-normalised last layer
// (w = g·v/||v||, per output row; g fixed at 1 when norm_last_layer).
// With use_bn, a BatchNorm1d follows each hidden Linear (before its GELU), in
// training mode as the reference runs student and teacher alike: batch
// statistics over every row of one forward (all-reduced over the ranks,
// SyncBatchNorm), and the running statistics in the weights updated by each
// forward (docs/DINO.md §2).
#ifndef DINO_HEAD_H
#define DINO_HEAD_H

#include <stdint.h>

#include "params.h"

#define HEAD_MAX_LAYERS 8

typedef struct {
    int in_dim;
    int out_dim;       // 65536
    int nlayers;       // 3
    int hidden;        // 2048
    int bottleneck;    // 256
    int norm_last_layer;  // 1: weight_g fixed at 1 and not trained
    int use_bn;           // 1: BatchNorm1d after each hidden Linear (eps 1e-5, momentum 0.1)
} HeadConfig;

void head_config_default(HeadConfig *cfg, int in_dim, int out_dim);

// Entries in the reference order: mlp.{0,2,4}.{weight,bias}, last_layer.weight_g
// (out,1), last_layer.weight_v (out, bottleneck). weight_g is marked not
// trainable when norm_last_layer. With use_bn the Sequential holds Linear,
// BatchNorm1d, GELU per hidden layer: mlp.{0,3,6}.{weight,bias} and
// mlp.{1,4}.{weight,bias,running_mean,running_var}, the running statistics
// marked as buffers (num_batches_tracked is not kept: momentum is fixed).
void head_param_table(const HeadConfig *cfg, ParamTable *t, const char *prefix);

typedef struct {
    float *mlp_w[HEAD_MAX_LAYERS], *mlp_b[HEAD_MAX_LAYERS];  // layer i: (out_i, in_i)
    // use_bn: the BatchNorm after layer i < nlayers-1 (hidden each), else NULL.
    float *bn_w[HEAD_MAX_LAYERS], *bn_b[HEAD_MAX_LAYERS];
    float *bn_mean[HEAD_MAX_LAYERS], *bn_var[HEAD_MAX_LAYERS];
    float *weight_g;  // (out_dim)
    float *weight_v;  // (out_dim, bottleneck)
} HeadWeights;

void head_weights_bind(HeadWeights *w, const HeadConfig *cfg, float *base);
// trunc_normal(.02) MLP weights, zero biases; weight_v with PyTorch's default
// Linear init; weight_g = 1; BatchNorm weight 1, bias 0, running mean 0 and
// variance 1.
void head_init(const HeadConfig *cfg, HeadWeights *w, uint64_t seed);

typedef struct HeadActs HeadActs;
HeadActs *head_acts_create(const HeadConfig *cfg, int N, int train);
// As head_acts_create; sum_rows (>= N): how many rows of successive
// head_backward_rows calls have their weight gradients summed in one GEMM per
// layer (see below).
HeadActs *head_acts_create_rows(const HeadConfig *cfg, int N, int train, int sum_rows);
void head_acts_free(HeadActs *a);
// in (N, in_dim) -> logits (N, out_dim). With use_bn the forward also moves
// the running statistics in w.
void head_forward(const HeadConfig *cfg, const HeadWeights *w, HeadActs *a, const float *in,
                  int N);
const float *head_output(const HeadActs *a);
// Accumulates parameter gradients into g (weight_g only when trainable) and
// writes din (N, in_dim) if not NULL.
void head_backward(const HeadConfig *cfg, const HeadWeights *w, HeadWeights *g, HeadActs *a,
                   const float *dout, float *din);

// head_forward and head_backward in pieces, for a batch whose rows go through
// the head a chunk at a time with the same weights: head_prepare computes the
// weight norm's per-row factors g/||v|| once; head_forward_rows is head_forward without
// it; head_backward_rows is the backward of the last head_forward_rows (din
// written) that keeps its rows' layer inputs and output gradients (first: the
// first rows of a batch), and when sum_rows are kept, turns them into weight
// gradients (accumulated into g); head_backward_finish does that for the
// rest. Small chunks of rows then cost two passes over each weight matrix per
// chunk instead of three, and the weight-gradient GEMMs run over many rows.
void head_prepare(const HeadConfig *cfg, const HeadWeights *w, HeadActs *a);
void head_forward_rows(const HeadConfig *cfg, const HeadWeights *w, HeadActs *a, const float *in,
                       int N);
void head_backward_rows(const HeadConfig *cfg, const HeadWeights *w, HeadWeights *g, HeadActs *a,
                        const float *dout, float *din, int first);
void head_backward_finish(const HeadConfig *cfg, const HeadWeights *w, HeadWeights *g,
                          HeadActs *a);

#endif
