// Evaluation-mode Conv2d + BatchNorm2d (+ ReLU) of conv.h. With running
// statistics BatchNorm is an affine map per output channel, so it folds into
// the convolution: conv(x, w)·a + sh = conv(x, w·a) + sh. oneDNN then adds
// the bias and applies the ReLU inside the convolution, which saves two
// passes over the output (docs/ENGINE.md, "Convolutions"). The fold is
// redone on every call, from the weights as they are then, so nothing goes
// stale when they change.
#include <math.h>

#include "conv.h"
#include "conv_onednn.h"
#include "gemm.h"

size_t conv_fold_floats(const ConvShape *s) { return (size_t)s->OC * s->C * s->k * s->k + s->OC; }

// fold = (w·a, sh): the folded weights (OC, C, k, k), then the bias (OC).
static void fold_bn(float *fold, const float *w, const float *bn_w, const float *bn_b,
                    const float *bn_mean, const float *bn_var, float eps, const ConvShape *s) {
    size_t per = (size_t)s->C * s->k * s->k;
    float *bias = fold + (size_t)s->OC * per;
#pragma omp parallel for if ((size_t)s->OC * per > 32768)
    for (int o = 0; o < s->OC; o++) {
        // The same a and sh as bn_forward_eval.
        float a = bn_w[o] / sqrtf(bn_var[o] + eps);
        bias[o] = bn_b[o] - bn_mean[o] * a;
        const float *src = w + (size_t)o * per;
        float *dst = fold + (size_t)o * per;
        for (size_t i = 0; i < per; i++) dst[i] = src[i] * a;
    }
}

void conv2d_bn_eval_forward(float *out, const float *in, const float *w, const float *bn_w,
                            const float *bn_b, const float *bn_mean, const float *bn_var, float eps,
                            int relu, const ConvShape *s, float *scratch, float *fold) {
    if (gemm_f32_backend() == GEMM_ONEDNN) {
        fold_bn(fold, w, bn_w, bn_b, bn_mean, bn_var, eps, s);
        const float *bias = fold + (size_t)s->OC * s->C * s->k * s->k;
        if (onednn_conv_forward_bias(out, in, fold, bias, relu, s) == 0) return;
    }
    size_t N = (size_t)s->B * s->OH * s->OW;
    conv2d_forward(out, in, w, s, scratch);
    bn_forward_eval(out, out, bn_w, bn_b, bn_mean, bn_var, s->OC, N, eps);
    if (relu) relu_forward(out, out, (size_t)s->OC * N);
}

int conv_eval_load(int slot, const float *in, const ConvBNLayer *l, int sum) {
    if (gemm_f32_backend() != GEMM_ONEDNN) return -1;
    return onednn_act_load(slot, in, &l->s, l->relu, sum);
}

int conv_eval_step(int dst, int src, const ConvBNLayer *l, int sum, float *fold) {
    if (gemm_f32_backend() != GEMM_ONEDNN) return -1;
    fold_bn(fold, l->w, l->bn_w, l->bn_b, l->bn_mean, l->bn_var, l->eps, &l->s);
    const float *bias = fold + (size_t)l->s.OC * l->s.C * l->s.k * l->s.k;
    return onednn_act_conv(dst, src, &l->s, fold, bias, l->relu, sum);
}

int conv_eval_store(float *out, int slot) {
    if (gemm_f32_backend() != GEMM_ONEDNN) return -1;
    return onednn_act_store(out, slot);
}
