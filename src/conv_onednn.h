// oneDNN's convolution primitives behind conv.h (internal to the convolution
// seam; conv_cpu.c and conv_bn_eval.c call them when the fp32 GEMM backend
// is oneDNN). Same tensors and meaning as conv2d_forward / conv2d_backward:
// activations (C, B, H, W), weights (OC, C, k, k), no bias but in the
// evaluation forwards below. Each returns 0, or -1 when oneDNN has no
// primitive for the shape (nothing written then); the caller then takes
// im2col + GEMM (or the layers one by one).
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
// Activations kept in oneDNN's layouts between evaluation convolutions, in
// ONEDNN_ACT_SLOTS per-thread slots. load: in (user layout) into slot, in
// the input layout of the primitive (s, relu, sum) below. conv: slot dst =
// conv(slot src, w) + bias, plus what dst holds when sum, then max(·, 0)
// when relu. store: slot (a conv's output) to out in our layout. Each
// returns -1 when oneDNN has no primitive or a slot's layout is not the one
// the primitive takes (a caller then starts over on the layers).
#define ONEDNN_ACT_SLOTS 4
int onednn_act_load(int slot, const float *in, const ConvShape *s, int relu, int sum);
int onednn_act_conv(int dst, int src, const ConvShape *s, const float *w, const float *bias, int relu, int sum);
int onednn_act_store(float *out, int slot);

#endif
