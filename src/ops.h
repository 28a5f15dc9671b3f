// Layer functions of the ViT and the DINO head, CPU fp32 (llm.c style): each
// layer is a forward and a backward function, outputs first, then inputs, then
// weights, then sizes, with the shapes in the comments. Backward functions
// accumulate (+=) into parameter gradients; for the input gradient each
// function says whether it writes or accumulates. GEMMs go through cblas with
// the transposes folded into the call (weights are never copied), and BLAS is
// never called from inside an OpenMP parallel region. Numerics follow PyTorch
// (docs/ENGINE.md, Numerics): LayerNorm with biased variance and eps inside the sqrt,
// exact erf GELU, softmax attention with scale hd^-0.5, F.normalize, the old
// weight_norm, and bicubic interpolation with align_corners=False.
#ifndef DINO_OPS_H
#define DINO_OPS_H

#include <stddef.h>

// ---- linear: out = inp·Wᵀ + b ----
// out (N,OC), inp (N,C), w (OC,C), b (OC) or NULL.
void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC);
// out = gelu(inp·Wᵀ + b) in one pass where the GEMM backend fuses it
// (src/gemm.h), else linear_forward then gelu_forward. For passes that keep
// no pre-activation for a backward.
void linear_gelu_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                         int OC);
// dinp (N,C) is written (skipped when NULL); dw (OC,C) and db (OC) accumulate
// (either may be NULL).
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC);
// A linear branch added to a residual stream with per-sample stochastic depth:
// out[b] = res[b] + scale[b]·(inp[b]·Wᵀ + bias) for each sample b of T rows.
// scale NULL means 1. out may equal res. out/res (B·T,OC), inp (B·T,C).
void linear_residual_forward(float *out, const float *res, const float *inp, const float *w,
                             const float *b, const float *scale, int B, int T, int C, int OC);

// ---- patch embedding as a GEMM over unfolded patches (docs/DINO.md §1) ----
// cols (B·GH·GW, C·p·p) from img (B,C,H,W), GH = H/p, GW = W/p (the remainder
// is dropped like Conv2d's floor); each row in (channel, ky, kx) order.
void patch_unfold(float *cols, const float *img, int B, int C, int H, int W, int p);
// The adjoint: dimg (B,C,H,W) is written (pixels outside the grid get 0).
void patch_fold(float *dimg, const float *dcols, int B, int C, int H, int W, int p);

// ---- LayerNorm over the last dim, biased variance, eps inside the sqrt ----
// out, inp (N,C); w, b (C); mean, rstd (N) saved for backward (may be NULL).
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps);
// The output again from the saved mean and rstd (bit-identical to the
// forward's, without its two reduction passes).
void layernorm_apply(float *out, const float *inp, const float *w, const float *b,
                     const float *mean, const float *rstd, int N, int C);
// dinp (N,C) accumulates; dw, db (C) accumulate.
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C);

// ---- exact GELU: 0.5·x·(1 + erf(x/√2)) ----
// out may equal inp.
void gelu_forward(float *out, const float *inp, size_t n);
// dinp = dout·gelu'(inp) (written; dinp may equal dout).
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
// Both at once for a backward pass that needs the output again: out =
// gelu(inp), grad = gelu'(inp) (within a few ulp of the two functions above);
// then gelu_backward_saved: dinp = dout·grad (dinp may equal dout).
void gelu_grad_forward(float *out, float *grad, const float *inp, size_t n);
void gelu_backward_saved(float *dinp, const float *grad, const float *dout, size_t n);

// ---- multi-head self-attention core (between qkv and proj) ----
// qkv (B,T,3D) rows [q;k;v], head h = columns h·hd..h·hd+hd-1 of each part.
// out (B,T,D) = concat_h softmax(q_h k_hᵀ·hd^-0.5) v_h; att (B,NH,T,T) holds
// the probabilities (att may be NULL when they are not needed).
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int D, int NH);
// dqkv (B,T,3D) is written; att holds the forward's probabilities, or is NULL:
// then they are recomputed from qkv, bit-identically to attention_forward.
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B,
                        int T, int D, int NH);

// The same forward as two batched matmuls on oneDNN (one call each for all
// samples and heads: S = scale·Q·Kᵀ, out = softmax(S)·V) and a row softmax,
// for comparing the two (`dino bench attention`); fp32 only. S (B,NH,T,T)
// is scratch and holds the probabilities afterwards. Returns -1 where
// oneDNN cannot run it.
int attention_forward_batched(float *out, float *S, const float *qkv, int B, int T, int D, int NH);

// ---- residual stream / drop path ----
// out[b] = scale[b]·inp[b] for samples of n floats (per-sample stochastic
// depth mask factor; 0 or 1/keep). out (B,n).
void scale_rows_forward(float *out, const float *inp, const float *scale, int B, size_t n);

// ---- L2 normalisation along the last dim (F.normalize, p=2) ----
// out (N,C) = inp / max(||inp||, eps); norm (N) saved.
void l2norm_forward(float *out, float *norm, const float *inp, int N, int C, float eps);
// dinp (N,C) is written. out is the forward output.
void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int N,
                     int C, float eps);

// ---- weight norm, dim 0: w[o,:] = g[o]·v[o,:]/||v[o,:]|| (In = input width) ----
// w, v (O,In); g (O); vnorm (O) saved. No eps, as in PyTorch.
void weightnorm_forward(float *w, float *vnorm, const float *g, const float *v, int O, int In);
// Only the factors: scale (O) = g/||v||, vnorm (O) (the same values as
// weightnorm_forward's), for w·x computed as scale ⊙ (v·x).
void weightnorm_scales(float *scale, float *vnorm, const float *g, const float *v, int O, int In);
// dv (O,In) and dg (O) accumulate (dg may be NULL: g not trainable).
void weightnorm_backward(float *dg, float *dv, const float *dw, const float *g, const float *v,
                         const float *vnorm, int O, int In);

// ---- bicubic resize of a channels-last grid (F.interpolate, bicubic,
// align_corners=False, A = -0.75, taps clamped to the border) ----
// in (IH,IW,C) -> out (OH,OW,C). scale_h/scale_w are the source step per
// output pixel: (float)(1/scale_factor) when a scale factor is given.
void bicubic_forward(float *out, const float *in, int IH, int IW, int OH, int OW, int C,
                     float scale_h, float scale_w);
// The adjoint: din (IH,IW,C) accumulates.
void bicubic_backward(float *din, const float *dout, int IH, int IW, int OH, int OW, int C,
                      float scale_h, float scale_w);

#endif
