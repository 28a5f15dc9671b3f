// oneDNN's convolution primitives behind conv.h (internal to the convolution
// seam; conv_cpu.c calls them when the fp32 GEMM backend is oneDNN). Same
// tensors and meaning as conv2d_forward / conv2d_backward: activations
// (C, B, H, W), weights (OC, C, k, k), no bias. Each returns 0, or -1 when
// oneDNN has no primitive for the shape (nothing written then); the caller
// then takes im2col + GEMM.
#ifndef DINO_CONV_ONEDNN_H
#define DINO_CONV_ONEDNN_H

#include "conv.h"

int onednn_conv_forward(float *out, const float *in, const float *w, const ConvShape *s);
// out = conv(in, w) + bias (OC floats), then max(·, 0) when relu, all in one
// primitive (evaluation only: no backward goes with it).
int onednn_conv_forward_bias(float *out, const float *in, const float *w, const float *bias, int relu,
                             const ConvShape *s);
// din written, or accumulated when accumulate.
int onednn_conv_backward_data(float *din, const float *dout, const float *w, const ConvShape *s,
                              int accumulate);
// dw accumulated.
int onednn_conv_backward_weights(float *dw, const float *dout, const float *in, const ConvShape *s);
// Convolutions one after another, each (with its bias and ReLU as above)
// taking the previous one's output, which stays in oneDNN's layout (no
// reorder out and back in): out = conv_n(... conv_1(in)). s[i], w[i],
// bias[i], relu[i] for each of the n (at most ONEDNN_CHAIN_MAX). -1 when a
// primitive is missing or a layout does not chain (nothing written then).
#define ONEDNN_CHAIN_MAX 4
int onednn_conv_chain_bias(float *out, const float *in, int n, const ConvShape *s, const float *const *w,
                           const float *const *bias, const int *relu);

#endif
