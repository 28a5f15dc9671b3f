// Optimizer arithmetic, written to round exactly as PyTorch's CPU kernels do
// (see docs/DINO.md §6): Python-double scalars are cast to float32 once,
// `add(x, alpha=a)` and `lerp` are fused multiply-adds as in ATen's
// vectorised kernels, bias corrections are computed in double.
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int optim_kind_parse(const char *name, OptimKind *kind) {
    if (!strcmp(name, "adamw")) *kind = OPTIM_ADAMW;
    else if (!strcmp(name, "sgd")) *kind = OPTIM_SGD;
    else if (!strcmp(name, "lars")) *kind = OPTIM_LARS;
    else return -1;
    return 0;
}

const char *optim_kind_name(OptimKind kind) {
    return kind == OPTIM_ADAMW ? "adamw" : kind == OPTIM_SGD ? "sgd" : "lars";
}

void optim_init(Optimizer *o, OptimKind kind, const ParamTable *t) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->table = t;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->momentum = 0.9;
    o->lars_eta = 0.001;
    o->m = alignedAllocCheck(t->total * sizeof(float));
    memset(o->m, 0, t->total * sizeof(float));
    if (kind == OPTIM_ADAMW) {
        o->v = alignedAllocCheck(t->total * sizeof(float));
        memset(o->v, 0, t->total * sizeof(float));
    }
    o->step = callocCheck((size_t)(t->n > 0 ? t->n : 1), sizeof(int64_t));
}

void optim_free(Optimizer *o) {
    free(o->m);
    free(o->v);
    free(o->step);
    memset(o, 0, sizeof *o);
}

// Sum of squares of one block in double, over 8 interleaved accumulators so
// the loop vectorises without reassociating any one sum.
static double block_sumsq(const float *x, size_t n) {
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    for (; i < n; i++) acc[i % 8] += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#define NORM_BLOCK 16384

// ||x||₂ as a float32 value (accumulated in double). Blocks of NORM_BLOCK
// are summed in parallel and their sums added in order, so the result does
// not depend on the number of threads.
static float norm2(const float *x, size_t n) {
    size_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    if (nb <= 1) return (float)sqrt(block_sumsq(x, n));
    double *part = mallocCheck(nb * sizeof(double));
#pragma omp parallel for schedule(static) if (nb >= 4)
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * NORM_BLOCK, len = n - lo < NORM_BLOCK ? n - lo : NORM_BLOCK;
        part[b] = block_sumsq(x + lo, len);
    }
    double s = 0.0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    free(part);
    return (float)sqrt(s);
}

static void adamw_tensor(const Optimizer *o, float *p, const float *g, float *m, float *v,
                         size_t n, int64_t step, double lr, double wd) {
    const double b1 = o->beta1, b2 = o->beta2;
    const float decay = (float)(1.0 - lr * wd);
    const float w1 = (float)(1.0 - b1);   // lerp weight (< 0.5: m + w·(g − m))
    const float b2f = (float)b2, w2 = (float)(1.0 - b2);
    const double bc1 = 1.0 - pow(b1, (double)step);
    const double bc2 = 1.0 - pow(b2, (double)step);
    const float neg_ss = (float)(-(lr / bc1));
    const float bc2s = (float)pow(bc2, 0.5);  // Python: bias_correction2 ** 0.5
    const float eps = (float)o->eps;
    const int do_decay = wd != 0.0;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float pi = p[i], gi = g[i];
        if (do_decay) pi = pi * decay;
        float mi = fmaf(w1, gi - m[i], m[i]);
        float vi = v[i] * b2f;
        vi = fmaf(w2 * gi, gi, vi);
        float denom = sqrtf(vi) / bc2s + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + (neg_ss * mi) / denom;
    }
}

static void sgd_tensor(const Optimizer *o, float *p, const float *g, float *buf, size_t n,
                       int first, double lr, double wd) {
    const float wdf = (float)wd, mom = (float)o->momentum, nlr = (float)(-lr);
    const int do_decay = wd != 0.0;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = do_decay ? fmaf(p[i], wdf, g[i]) : g[i];
        float bi = first ? gi : buf[i] * mom + gi;
        buf[i] = bi;
        p[i] = fmaf(bi, nlr, p[i]);
    }
}

static void lars_tensor(const Optimizer *o, const ParamInfo *pi, float *p, const float *g,
                        float *mu, size_t n, double lr, double wd) {
    const float mom = (float)o->momentum, nlr = (float)(-lr);
    if (pi->ndim != 1) {
        // d = g + wd·p, scaled by the trust ratio eta·||p||/||d||.
        const float wdf = (float)wd;
        float *d = mallocCheck(n * sizeof(float));
        for (size_t i = 0; i < n; i++) d[i] = fmaf(p[i], wdf, g[i]);
        float pn = norm2(p, n), un = norm2(d, n);
        float q = 1.0f;
        if (pn > 0.0f && un > 0.0f) q = ((float)o->lars_eta * pn) / un;
        for (size_t i = 0; i < n; i++) {
            mu[i] = mu[i] * mom + d[i] * q;
            p[i] = fmaf(mu[i], nlr, p[i]);
        }
        free(d);
    } else {
        for (size_t i = 0; i < n; i++) {
            mu[i] = mu[i] * mom + g[i];
            p[i] = fmaf(mu[i], nlr, p[i]);
        }
    }
}

void optim_step(Optimizer *o, float *params, const float *grads, double lr, double wd,
                const uint8_t *skip) {
    const ParamTable *t = o->table;
    for (int i = 0; i < t->n; i++) {
        const ParamInfo *pi = &t->p[i];
        if (!pi->trainable || (skip && skip[i])) continue;
        double wdi = pi->no_decay ? 0.0 : wd;
        float *p = params + pi->offset;
        const float *g = grads + pi->offset;
        float *m = o->m + pi->offset;
        switch (o->kind) {
        case OPTIM_ADAMW:
            o->step[i]++;
            adamw_tensor(o, p, g, m, o->v + pi->offset, pi->numel, o->step[i], lr, wdi);
            break;
        case OPTIM_SGD:
            sgd_tensor(o, p, g, m, pi->numel, o->step[i] == 0, lr, wdi);
            o->step[i] = 1;
            break;
        case OPTIM_LARS:
            lars_tensor(o, pi, p, g, m, pi->numel, lr, wdi);
            o->step[i] = 1;
            break;
        }
    }
}

void clip_gradients(const ParamTable *t, float *grads, float clip, const uint8_t *skip,
                    float *norms) {
    for (int i = 0; i < t->n; i++) {
        const ParamInfo *pi = &t->p[i];
        if (norms) norms[i] = 0.0f;
        if (!pi->trainable || (skip && skip[i])) continue;
        float *g = grads + pi->offset;
        float nrm = norm2(g, pi->numel);
        if (norms) norms[i] = nrm;
        float coef = clip / (nrm + 1e-6f);
        if (coef < 1.0f) {
            size_t n = pi->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
            for (size_t k = 0; k < n; k++) g[k] *= coef;
        }
    }
}

void ema_update(float *teacher, const float *student, size_t n, double m) {
    const float mf = (float)m, om = (float)(1.0 - m);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) teacher[i] = teacher[i] * mf + om * student[i];
}

void ema_update_params(const ParamTable *t, float *teacher, const float *student, double m) {
    // Runs of consecutive non-buffer tensors, each one ema_update.
    int i = 0;
    while (i < t->n) {
        if (t->p[i].buffer) {
            i++;
            continue;
        }
        size_t lo = t->p[i].offset, hi = lo;
        while (i < t->n && !t->p[i].buffer) hi = t->p[i].offset + t->p[i].numel, i++;
        ema_update(teacher + lo, student + lo, hi - lo, m);
    }
}
