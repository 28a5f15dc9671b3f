// Layer functions of the ResNet backbone (resnet.h), CPU fp32, over
// activations laid out channel-major: (C, B, H, W), so that every channel of
// a batch is one contiguous row, a 1x1 convolution of the whole batch is one
// GEMM and BatchNorm reduces over contiguous rows. Convolutions (no bias, as
// in torchvision's ResNet) are oneDNN's convolution primitives when the fp32
// GEMM backend is oneDNN, else im2col + GEMM over chunks of images
// (docs/ENGINE.md, "Convolutions"); backward functions accumulate (+=)
// weight gradients and say whether they write or accumulate input gradients.
#ifndef DINO_CONV_H
#define DINO_CONV_H

#include <stddef.h>

typedef struct {
    int C, OC, k, stride, pad;  // weight (OC, C, k, k)
    int B, H, W, OH, OW;        // input (C, B, H, W), output (OC, B, OH, OW)
} ConvShape;

// Output size of Conv2d / MaxPool2d: floor((n + 2·pad - k)/stride) + 1.
int conv_out_size(int n, int k, int stride, int pad);
// Fills the input/output sizes of s from its kernel fields and B, H, W.
void conv_shape_set(ConvShape *s, int B, int H, int W);
// Floats of im2col scratch the two functions below need (0 for 1x1 stride-1
// convolutions, which need none; oneDNN's path keeps its own buffers). The chunk of images per GEMM is chosen so
// that this stays at most about CONV_SCRATCH_FLOATS (at least one image).
#define CONV_SCRATCH_FLOATS ((size_t)8 << 20)
size_t conv_scratch_floats(const ConvShape *s);

// out (OC,B,OH,OW) = conv(in (C,B,H,W), w). scratch: conv_scratch_floats.
void conv2d_forward(float *out, const float *in, const float *w, const ConvShape *s, float *scratch);
// din (C,B,H,W) is written, or accumulated when accumulate (skipped when
// NULL); dw (OC,C,k,k) accumulates (skipped when NULL).
void conv2d_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                     const ConvShape *s, float *scratch, int accumulate);

// ---- Evaluation-mode convolution + BatchNorm2d (+ ReLU) ----
// out = bn_eval(conv(in, w)), then max(·, 0) when relu, with BatchNorm's
// running statistics (bn_forward_eval's arguments). On oneDNN's path
// BatchNorm is folded into the convolution: weights w·a and bias b - mean·a
// with a = bn_w/√(var+eps), written into fold, and one primitive adds the
// bias and applies the ReLU (docs/ENGINE.md, "Convolutions"); equal to the
// three layers in turn up to fp32 rounding. Elsewhere the three layers run
// in turn. fold: conv_fold_floats(s); scratch: conv_scratch_floats(s).
size_t conv_fold_floats(const ConvShape *s);
void conv2d_bn_eval_forward(float *out, const float *in, const float *w, const float *bn_w,
                            const float *bn_b, const float *bn_mean, const float *bn_var, float eps,
                            int relu, const ConvShape *s, float *scratch, float *fold);
// ---- Evaluation with activations kept in oneDNN's layout ----
// Slots (CONV_EVAL_SLOTS, per thread) hold activations in the layouts of
// oneDNN's primitives, so consecutive layers skip the reorders out of ours
// and back (docs/ENGINE.md, "Convolutions"). load: in (our layout) into
// slot, laid out for layer l; step: slot dst = layer l (slot src), adding
// what dst holds before the ReLU when sum (a residual); store: slot (a
// step's output) to out in our layout. Each returns 0, or -1 when the
// backend is not oneDNN or the layouts do not chain; the caller then runs
// the layers with conv2d_bn_eval_forward. fold: conv_fold_floats(&l->s).
typedef struct {
    ConvShape s;
    const float *w, *bn_w, *bn_b, *bn_mean, *bn_var;
    float eps;
    int relu;
} ConvBNLayer;
#define CONV_EVAL_SLOTS 4
int conv_eval_load(int slot, const float *in, const ConvBNLayer *l, int sum);
int conv_eval_step(int dst, int src, const ConvBNLayer *l, int sum, float *fold);
int conv_eval_store(float *out, int slot);

// ---- BatchNorm2d over channel-major rows x (C, N), N = B·H·W ----
// Batch statistics: mean and biased variance over the N values of each
// channel (and over every rank's values when sync: SyncBatchNorm, through
// dist_allreduce_f64), out = (x - mean)·rstd·w + b with rstd = 1/√(var+eps),
// saved for backward (mean, rstd: C floats). The running statistics are then
// updated as torch does in training mode: r = (1-momentum)·r + momentum·s,
// with the unbiased variance var·n/(n-1) for the running variance (n the
// count over all ranks). running_* may be NULL (not updated). out may equal x.
void bn_forward_train(float *out, float *mean, float *rstd, const float *x, const float *w,
                      const float *b, float *running_mean, float *running_var, int C, size_t N,
                      float eps, float momentum, int sync);
// Evaluation: out = (x - running_mean)/√(running_var + eps)·w + b. out may equal x.
void bn_forward_eval(float *out, const float *x, const float *w, const float *b,
                     const float *running_mean, const float *running_var, int C, size_t N,
                     float eps);
// Backward of bn_forward_train (batch statistics): dx (C,N) is written (may
// equal dout); dw, db accumulate this rank's sums. With sync, the two sums
// the input gradient needs are all-reduced, as SyncBatchNorm does.
void bn_backward_train(float *dx, float *dw, float *db, const float *dout, const float *x,
                       const float *w, const float *mean, const float *rstd, int C, size_t N,
                       int sync);

// ---- ReLU, max pool, global average pool ----
void relu_forward(float *out, const float *in, size_t n);  // out may equal in
// dx = dout where out > 0, else 0 (written; dx may equal dout).
void relu_backward(float *dx, const float *dout, const float *out, size_t n);
// MaxPool2d(k, stride, pad) over (C,B,H,W) -> (C,B,OH,OW); argmax (the
// flat index of the max inside the input plane, first one on ties as torch)
// is saved when not NULL. Padding never wins (it is -inf).
void maxpool_forward(float *out, int *argmax, const float *in, int CB, int H, int W, int OH,
                     int OW, int k, int stride, int pad);
// din (C,B,H,W) is written.
void maxpool_backward(float *din, const float *dout, const int *argmax, int CB, int H, int W,
                      int OH, int OW);
// feat (B, C) = mean over H·W of in (C, B, HW).
void avgpool_forward(float *feat, const float *in, int C, int B, int HW);
// din (C, B, HW) = dfeat[b, c] / HW (written).
void avgpool_backward(float *din, const float *dfeat, int C, int B, int HW);
// (B,C,HW) <-> (C,B,HW).
void nchw_to_cnhw(float *out, const float *in, int B, int C, int HW);

#endif
