// The DINO projection head declared in head.h: MLP (Linear, GELU, ...,
// Linear to the bottleneck), F.normalize, and the weight-normalised last layer
// (w = g·v/||v_row||, applied as a per-row factor every forward), with an
// optional BatchNorm1d after each hidden Linear: conv.h's BatchNorm over a
// channel-major copy of the layer's rows.
#include "head.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "conv.h"
#include "gemm.h"
#include "ops.h"
#include "profile.h"
#include "rng.h"

#define L2_EPS 1e-12f
// nn.BatchNorm1d's defaults.
#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

void head_config_default(HeadConfig *cfg, int in_dim, int out_dim) {
    memset(cfg, 0, sizeof *cfg);
    cfg->in_dim = in_dim;
    cfg->out_dim = out_dim;
    cfg->nlayers = 3;
    cfg->hidden = 2048;
    cfg->bottleneck = 256;
    cfg->norm_last_layer = 1;
}

// Input and output width of MLP layer i.
static void layer_dims(const HeadConfig *cfg, int i, int *in, int *out) {
    int nl = cfg->nlayers;
    *in = i == 0 ? cfg->in_dim : cfg->hidden;
    *out = i == nl - 1 ? cfg->bottleneck : cfg->hidden;
}

// Whether hidden layer i has a BatchNorm after it.
static int has_bn(const HeadConfig *cfg, int i) { return cfg->use_bn && i < cfg->nlayers - 1; }

void head_param_table(const HeadConfig *cfg, ParamTable *t, const char *prefix) {
    DINO_ASSERT(cfg->nlayers >= 1 && cfg->nlayers <= HEAD_MAX_LAYERS);
    char name[PARAM_NAME_MAX];
    // nlayers = 1 is a bare nn.Linear ("mlp.weight"); otherwise a Sequential
    // whose Linears sit at indices 0, 2, 4, ... (GELUs between), or 0, 3, 6,
    // ... with a BatchNorm1d after each hidden one.
    int stride = cfg->use_bn ? 3 : 2;
    static const char *const bn_leaf[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < cfg->nlayers; i++) {
        int in, out;
        layer_dims(cfg, i, &in, &out);
        if (cfg->nlayers == 1) snprintf(name, sizeof name, "mlp.weight");
        else snprintf(name, sizeof name, "mlp.%d.weight", stride * i);
        param_table_add(t, prefix, name, 2, (int64_t[]){out, in});
        if (cfg->nlayers == 1) snprintf(name, sizeof name, "mlp.bias");
        else snprintf(name, sizeof name, "mlp.%d.bias", stride * i);
        param_table_add(t, prefix, name, 1, (int64_t[]){out});
        for (int k = 0; has_bn(cfg, i) && k < 4; k++) {
            snprintf(name, sizeof name, "mlp.%d.%s", stride * i + 1, bn_leaf[k]);
            int ib = param_table_add(t, prefix, name, 1, (int64_t[]){out});
            if (k >= 2) t->p[ib].buffer = 1, t->p[ib].trainable = 0;
        }
    }
    int ig = param_table_add(t, prefix, "last_layer.weight_g", 2, (int64_t[]){cfg->out_dim, 1});
    t->p[ig].trainable = !cfg->norm_last_layer;
    param_table_add(t, prefix, "last_layer.weight_v", 2,
                    (int64_t[]){cfg->out_dim, cfg->bottleneck});
}

void head_weights_bind(HeadWeights *w, const HeadConfig *cfg, float *base) {
    memset(w, 0, sizeof *w);
    for (int i = 0; i < cfg->nlayers; i++) {
        int in, out;
        layer_dims(cfg, i, &in, &out);
        w->mlp_w[i] = base;
        base += (size_t)out * in;
        w->mlp_b[i] = base;
        base += out;
        if (has_bn(cfg, i)) {
            float **bn[] = {&w->bn_w[i], &w->bn_b[i], &w->bn_mean[i], &w->bn_var[i]};
            for (int k = 0; k < 4; k++, base += out) *bn[k] = base;
        }
    }
    w->weight_g = base;
    base += cfg->out_dim;
    w->weight_v = base;
}

void head_init(const HeadConfig *cfg, HeadWeights *w, uint64_t seed) {
    // Streams keyed (seed, 2 = head, parameter index within the head).
    int idx = 0;
    for (int i = 0; i < cfg->nlayers; i++, idx += 2) {
        int in, out;
        layer_dims(cfg, i, &in, &out);
        Rng r;
        rng_stream(&r, RNG_INIT_HEAD, seed, (uint64_t)idx, 0, 0);
        for (size_t j = 0; j < (size_t)out * in; j++)
            w->mlp_w[i][j] = rng_trunc_normal(&r, 0.02f, -2.0f, 2.0f);
        memset(w->mlp_b[i], 0, (size_t)out * sizeof(float));
        for (int c = 0; has_bn(cfg, i) && c < out; c++) {
            w->bn_w[i][c] = 1.0f, w->bn_b[i][c] = 0.0f;
            w->bn_mean[i][c] = 0.0f, w->bn_var[i][c] = 1.0f;
        }
    }
    for (int o = 0; o < cfg->out_dim; o++) w->weight_g[o] = 1.0f;
    Rng r;
    rng_stream(&r, RNG_INIT_HEAD, seed, (uint64_t)idx + 1, 0, 0);
    // nn.Linear default: kaiming_uniform(a=√5) = U(±1/√in).
    float bound = 1.0f / sqrtf((float)cfg->bottleneck);
    for (size_t j = 0; j < (size_t)cfg->out_dim * cfg->bottleneck; j++)
        w->weight_v[j] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
}

struct HeadActs {
    int Nmax, N, train;
    const float *in;              // (N, in_dim) the caller's input, read by backward
    float *h[HEAD_MAX_LAYERS];    // (N, out_i) outputs of each MLP Linear (use_bn: of its BatchNorm;
                                  // inference without BatchNorm: the last only)
    // use_bn: each hidden Linear's output channel-major (hidden, N), and its
    // batch mean and 1/std; bt (hidden, N) scratch.
    float *xt[HEAD_MAX_LAYERS], *bn_mean[HEAD_MAX_LAYERS], *bn_rstd[HEAD_MAX_LAYERS];
    float *bt;
    float *gel[HEAD_MAX_LAYERS];  // (N, hidden) GELU of h[i], i < nlayers-1 (fused in inference)
    float *z, *znorm;             // (N, bottleneck) normalised, (N) norms
    float *wscale, *vnorm;        // (out_dim) g/||v|| and ||v|| of each last-layer row
    float *logits;                // (N, out_dim)
    float *dWb, *d0, *d1;         // backward scratch (dWb: a block of last-layer rows)
    float *dsc;                   // (N, out_dim) dL/dlogits·diag(g/||v||)
    // Rows whose weight gradients are still to be summed (head_backward_rows
    // keeps each layer's input and output gradient; head_flush makes one GEMM
    // per layer of up to Pmax rows instead of one per chunk).
    int Pmax, npend;
    float *px[HEAD_MAX_LAYERS], *pdh[HEAD_MAX_LAYERS];  // (Pmax, in_i), (Pmax, out_i)
    float *pz, *pdout;                                  // (Pmax, bottleneck), (Pmax, out_dim)
};

// Rows of the last layer whose dL/dW is formed at a time (4 MiB at 256 wide).
#define DW_BLOCK 4096

HeadActs *head_acts_create(const HeadConfig *cfg, int N, int train) {
    return head_acts_create_rows(cfg, N, train, N);
}

HeadActs *head_acts_create_rows(const HeadConfig *cfg, int N, int train, int sum_rows) {
    HeadActs *a = callocCheck(1, sizeof *a);
    a->Nmax = a->N = N;
    a->Pmax = sum_rows > N ? sum_rows : N;
    a->train = train;
    size_t wmax = (size_t)(cfg->hidden > cfg->bottleneck ? cfg->hidden : cfg->bottleneck);
    if ((size_t)cfg->in_dim > wmax) wmax = (size_t)cfg->in_dim;
    for (int i = 0; i < cfg->nlayers; i++) {
        int in, out;
        layer_dims(cfg, i, &in, &out);
        a->h[i] = alignedAllocCheck((size_t)N * out * sizeof(float));
        if (i < cfg->nlayers - 1) a->gel[i] = alignedAllocCheck((size_t)N * out * sizeof(float));
        if (has_bn(cfg, i)) {
            a->xt[i] = alignedAllocCheck((size_t)N * out * sizeof(float));
            a->bn_mean[i] = alignedAllocCheck((size_t)out * sizeof(float));
            a->bn_rstd[i] = alignedAllocCheck((size_t)out * sizeof(float));
        }
    }
    if (cfg->use_bn && cfg->nlayers > 1) a->bt = alignedAllocCheck((size_t)N * cfg->hidden * sizeof(float));
    a->z = alignedAllocCheck((size_t)N * cfg->bottleneck * sizeof(float));
    a->znorm = alignedAllocCheck((size_t)N * sizeof(float));
    a->wscale = alignedAllocCheck((size_t)cfg->out_dim * sizeof(float));
    a->vnorm = alignedAllocCheck((size_t)cfg->out_dim * sizeof(float));
    a->logits = alignedAllocCheck((size_t)N * cfg->out_dim * sizeof(float));
    if (train) {
        int ob = cfg->out_dim < DW_BLOCK ? cfg->out_dim : DW_BLOCK;
        a->dWb = alignedAllocCheck((size_t)ob * cfg->bottleneck * sizeof(float));
        a->dsc = alignedAllocCheck((size_t)N * cfg->out_dim * sizeof(float));
        a->d0 = alignedAllocCheck((size_t)N * wmax * sizeof(float));
        a->d1 = alignedAllocCheck((size_t)N * wmax * sizeof(float));
        for (int i = 0; i < cfg->nlayers; i++) {
            int in, out;
            layer_dims(cfg, i, &in, &out);
            a->px[i] = alignedAllocCheck((size_t)a->Pmax * in * sizeof(float));
            a->pdh[i] = alignedAllocCheck((size_t)a->Pmax * out * sizeof(float));
        }
        a->pz = alignedAllocCheck((size_t)a->Pmax * cfg->bottleneck * sizeof(float));
        a->pdout = alignedAllocCheck((size_t)a->Pmax * cfg->out_dim * sizeof(float));
    }
    return a;
}

void head_acts_free(HeadActs *a) {
    if (!a) return;
    for (int i = 0; i < HEAD_MAX_LAYERS; i++) {
        free(a->h[i]);
        free(a->gel[i]);
        free(a->px[i]);
        free(a->pdh[i]);
        free(a->xt[i]);
        free(a->bn_mean[i]);
        free(a->bn_rstd[i]);
    }
    free(a->bt);
    free(a->pz);
    free(a->pdout);
    free(a->z);
    free(a->znorm);
    free(a->wscale);
    free(a->vnorm);
    free(a->logits);
    free(a->dWb);
    free(a->dsc);
    free(a->d0);
    free(a->d1);
    free(a);
}

const float *head_output(const HeadActs *a) { return a->logits; }

// The weight-normalised matrix W = diag(g/||v||)·v is never formed (it is as
// large as v): logits = (z·vᵀ)·diag(g/||v||), and its backward scales dL/dlogits
// the same way. Only the per-row factors are prepared.
void head_prepare(const HeadConfig *cfg, const HeadWeights *w, HeadActs *a) {
    PROF(PROF_HEAD_LAST, weightnorm_scales(a->wscale, a->vnorm, w->weight_g, w->weight_v, cfg->out_dim, cfg->bottleneck));
}

// out (N, O) = in (N, O) · diag(scale), in may equal out.
static void scale_cols(float *out, const float *in, const float *scale, int N, int O) {
#pragma omp parallel for if ((size_t)N * O > 32768)
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * O;
        float *y = out + (size_t)i * O;
#pragma omp simd
        for (int o = 0; o < O; o++) y[o] = x[o] * scale[o];
    }
}

// h (N, C) <- BatchNorm(h) with batch statistics over the N rows (all ranks'),
// keeping h channel-major in a->xt[i] for the backward.
static void bn_rows_forward(const HeadWeights *w, HeadActs *a, int i, float *h, int N, int C) {
    nchw_to_cnhw(a->xt[i], h, N, C, 1);
    bn_forward_train(a->bt, a->bn_mean[i], a->bn_rstd[i], a->xt[i], w->bn_w[i], w->bn_b[i], w->bn_mean[i],
                     w->bn_var[i], C, (size_t)N, BN_EPS, BN_MOMENTUM, 1);
    nchw_to_cnhw(h, a->bt, C, N, 1);
}

// d (N, C): dL/d(BatchNorm output) in, dL/d(its input) out; the weight and
// bias gradients accumulate into g.
static void bn_rows_backward(const HeadWeights *w, HeadWeights *g, HeadActs *a, int i, float *d, int N,
                             int C) {
    nchw_to_cnhw(a->bt, d, N, C, 1);
    bn_backward_train(a->bt, g->bn_w[i], g->bn_b[i], a->bt, a->xt[i], w->bn_w[i], a->bn_mean[i], a->bn_rstd[i],
                      C, (size_t)N, 1);
    nchw_to_cnhw(d, a->bt, C, N, 1);
}

void head_forward_rows(const HeadConfig *cfg, const HeadWeights *w, HeadActs *a, const float *in,
                       int N) {
    DINO_ASSERT(N >= 1 && N <= a->Nmax);
    a->N = N;
    a->in = in;
    const float *x = in;
    for (int i = 0; i < cfg->nlayers; i++) {
        int ci, co;
        layer_dims(cfg, i, &ci, &co);
        // No backward needs h[i], and no BatchNorm sits between: GELU fused.
        if (i < cfg->nlayers - 1 && !a->train && !has_bn(cfg, i)) {
            PROF(PROF_HEAD_MLP, linear_gelu_forward(a->gel[i], x, w->mlp_w[i], w->mlp_b[i], N, ci, co));
            x = a->gel[i];
            continue;
        }
        PROF(PROF_HEAD_MLP, linear_forward(a->h[i], x, w->mlp_w[i], w->mlp_b[i], N, ci, co));
        if (i < cfg->nlayers - 1) {
            if (has_bn(cfg, i)) PROF(PROF_HEAD_MLP, bn_rows_forward(w, a, i, a->h[i], N, co));
            PROF(PROF_HEAD_MLP, gelu_forward(a->gel[i], a->h[i], (size_t)N * co));
            x = a->gel[i];
        } else {
            x = a->h[i];
        }
    }
    PROF(PROF_HEAD_LAST, l2norm_forward(a->z, a->znorm, x, N, cfg->bottleneck, L2_EPS));
    PROF(PROF_HEAD_LAST, linear_forward(a->logits, a->z, w->weight_v, NULL, N, cfg->bottleneck, cfg->out_dim));
    PROF(PROF_HEAD_LAST, scale_cols(a->logits, a->logits, a->wscale, N, cfg->out_dim));
}

void head_forward(const HeadConfig *cfg, const HeadWeights *w, HeadActs *a, const float *in,
                  int N) {
    head_prepare(cfg, w, a);
    head_forward_rows(cfg, w, a, in, N);
}

// The weight gradients of the kept rows: MLP weights and biases accumulate
// into g; the last layer's dL/dW is formed a block of rows at a time and
// turned into weight_v's (and weight_g's) gradient at once (the weight-norm
// backward is linear in dL/dW, so flushes may add up).
static void head_flush(const HeadConfig *cfg, const HeadWeights *w, HeadWeights *g, HeadActs *a) {
    int P = a->npend, O = cfg->out_dim, K = cfg->bottleneck;
    if (P == 0) return;
    float *dg = cfg->norm_last_layer ? NULL : g->weight_g;
    for (int o0 = 0; o0 < O; o0 += DW_BLOCK) {
        int ob = O - o0 < DW_BLOCK ? O - o0 : DW_BLOCK;
        PROF(PROF_B_HEAD_LAST, gemm_prec(gemm_autocast_bf16(), GEMM_T, GEMM_N, ob, K, P, 1.0f, a->pdout + o0, O,
                                           a->pz, K, 0.0f, a->dWb, K));
        PROF(PROF_B_HEAD_LAST, weightnorm_backward(dg ? dg + o0 : NULL, g->weight_v + (size_t)o0 * K, a->dWb,
                                                   w->weight_g + o0, w->weight_v + (size_t)o0 * K, a->vnorm + o0,
                                                   ob, K));
    }
    for (int i = 0; i < cfg->nlayers; i++) {
        int ci, co;
        layer_dims(cfg, i, &ci, &co);
        PROF(PROF_B_HEAD_MLP, linear_backward(NULL, g->mlp_w[i], g->mlp_b[i], a->pdh[i], a->px[i], NULL, P, ci, co));
    }
    a->npend = 0;
}

static void keep_rows(float *dst, const float *src, int N, int C) {
    memcpy(dst, src, (size_t)N * C * sizeof(float));
}

void head_backward_rows(const HeadConfig *cfg, const HeadWeights *w, HeadWeights *g, HeadActs *a,
                        const float *dout, float *din, int first) {
    DINO_ASSERT(a->train && (first || !cfg->use_bn));
    int N = a->N, O = cfg->out_dim, K = cfg->bottleneck;
    if (first) a->npend = 0;
    if (a->npend + N > a->Pmax) head_flush(cfg, w, g, a);
    const int p = a->npend;
    keep_rows(a->pdout + (size_t)p * O, dout, N, O);
    keep_rows(a->pz + (size_t)p * K, a->z, N, K);
    // d1 = dL/dz = (dout·diag(g/||v||))·v
    PROF(PROF_B_HEAD_LAST, scale_cols(a->dsc, dout, a->wscale, N, O));
    PROF(PROF_B_HEAD_LAST, linear_backward(a->d1, NULL, NULL, a->dsc, a->z, w->weight_v, N, K, O));
    float *dh = a->d0, *dnext = a->d1;
    PROF(PROF_B_HEAD_LAST, l2norm_backward(dh, a->d1, a->z, a->znorm, N, K, L2_EPS));  // dh = dL/dh[last]
    for (int i = cfg->nlayers - 1; i >= 0; i--) {
        int ci, co;
        layer_dims(cfg, i, &ci, &co);
        const float *x = i == 0 ? a->in : a->gel[i - 1];
        keep_rows(a->px[i] + (size_t)p * ci, x, N, ci);
        keep_rows(a->pdh[i] + (size_t)p * co, dh, N, co);
        if (i == 0) {
            if (din) PROF(PROF_B_HEAD_MLP, linear_backward(din, NULL, NULL, dh, x, w->mlp_w[0], N, ci, co));
            break;
        }
        PROF(PROF_B_HEAD_MLP, linear_backward(dnext, NULL, NULL, dh, x, w->mlp_w[i], N, ci, co));
        PROF(PROF_B_HEAD_MLP, gelu_backward(dnext, a->h[i - 1], dnext, (size_t)N * ci));
        if (has_bn(cfg, i - 1)) PROF(PROF_B_HEAD_MLP, bn_rows_backward(w, g, a, i - 1, dnext, N, ci));
        float *t = dh;
        dh = dnext;
        dnext = t;
    }
    a->npend += N;
}

void head_backward_finish(const HeadConfig *cfg, const HeadWeights *w, HeadWeights *g,
                          HeadActs *a) {
    DINO_ASSERT(a->train);
    head_flush(cfg, w, g, a);
}

void head_backward(const HeadConfig *cfg, const HeadWeights *w, HeadWeights *g, HeadActs *a,
                   const float *dout, float *din) {
    head_backward_rows(cfg, w, g, a, dout, din, 1);
    head_backward_finish(cfg, w, g, a);
}
