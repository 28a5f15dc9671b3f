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
// din written, or accumulated when accumulate.
int onednn_conv_backward_data(float *din, const float *dout, const float *w, const ConvShape *s,
                              int accumulate);
// dw accumulated.
int onednn_conv_backward_weights(float *dw, const float *dout, const float *in, const ConvShape *s);

#endif
