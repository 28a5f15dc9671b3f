// BatchNorm2d of conv.h over channel-major rows, as torch trains it: batch
// statistics with the biased variance in the normalisation, running
// statistics with the unbiased one, and SyncBatchNorm's all-reduces (of the
// per-channel sums in forward, and of the two gradient sums in backward)
// when sync is set, so that 2 ranks compute what 1 process does over their
// concatenated batch. Per-channel sums are accumulated in double.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "conv.h"
#include "train/dist.h"

#define PAR_MIN_WORK 32768

void bn_forward_train(float *out, float *mean, float *rstd, const float *x, const float *w,
                      const float *b, float *running_mean, float *running_var, int C, size_t N,
                      float eps, float momentum, int sync) {
    // buf: [sum (C), count] then [Σ(x-mean)² (C)]: two passes, as an exact
    // two-pass variance over every rank's values.
    double *buf = mallocCheck(((size_t)2 * C + 1) * sizeof(double));
#pragma omp parallel for if ((size_t)C * N > PAR_MIN_WORK)
    for (int c = 0; c < C; c++) {
        const float *r = x + (size_t)c * N;
        double s = 0;
        for (size_t i = 0; i < N; i++) s += r[i];
        buf[c] = s;
    }
    buf[C] = (double)N;
    if (sync) dist_allreduce_f64(buf, (size_t)C + 1, DIST_SUM);
    double n = buf[C];
    double *sq = buf + C + 1;
#pragma omp parallel for if ((size_t)C * N > PAR_MIN_WORK)
    for (int c = 0; c < C; c++) {
        const float *r = x + (size_t)c * N;
        double m = buf[c] / n, s = 0;
        for (size_t i = 0; i < N; i++) {
            double d = r[i] - m;
            s += d * d;
        }
        sq[c] = s;
    }
    if (sync) dist_allreduce_f64(sq, (size_t)C, DIST_SUM);
    for (int c = 0; c < C; c++) {
        double m = buf[c] / n, var = sq[c] / n;
        mean[c] = (float)m;
        rstd[c] = (float)(1.0 / sqrt(var + (double)eps));
        if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)m;
        if (running_var) {
            double unbiased = n > 1 ? sq[c] / (n - 1) : var;
            running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
        }
    }
    free(buf);
#pragma omp parallel for if ((size_t)C * N > PAR_MIN_WORK)
    for (int c = 0; c < C; c++) {
        float a = rstd[c] * w[c], sh = b[c] - mean[c] * a;
        const float *r = x + (size_t)c * N;
        float *o = out + (size_t)c * N;
        for (size_t i = 0; i < N; i++) o[i] = r[i] * a + sh;
    }
}

void bn_forward_eval(float *out, const float *x, const float *w, const float *b,
                     const float *running_mean, const float *running_var, int C, size_t N,
                     float eps) {
#pragma omp parallel for if ((size_t)C * N > PAR_MIN_WORK)
    for (int c = 0; c < C; c++) {
        float a = w[c] / sqrtf(running_var[c] + eps), sh = b[c] - running_mean[c] * a;
        const float *r = x + (size_t)c * N;
        float *o = out + (size_t)c * N;
        for (size_t i = 0; i < N; i++) o[i] = r[i] * a + sh;
    }
}

void bn_backward_train(float *dx, float *dw, float *db, const float *dout, const float *x,
                       const float *w, const float *mean, const float *rstd, int C, size_t N,
                       int sync) {
    // buf: Σ dy (C), Σ dy·x̂ (C), count.
    double *buf = mallocCheck(((size_t)2 * C + 1) * sizeof(double));
#pragma omp parallel for if ((size_t)C * N > PAR_MIN_WORK)
    for (int c = 0; c < C; c++) {
        const float *g = dout + (size_t)c * N, *r = x + (size_t)c * N;
        double sd = 0, sdx = 0, m = mean[c];
        for (size_t i = 0; i < N; i++) {
            sd += g[i];
            sdx += g[i] * (r[i] - m);
        }
        buf[c] = sd;
        buf[C + c] = sdx * rstd[c];
    }
    // The weight and bias gradients are this rank's own (the data-parallel
    // gradient average adds the ranks), as in SyncBatchNorm.
    for (int c = 0; c < C; c++) {
        if (dw) dw[c] += (float)buf[C + c];
        if (db) db[c] += (float)buf[c];
    }
    buf[2 * C] = (double)N;
    if (sync) dist_allreduce_f64(buf, (size_t)2 * C + 1, DIST_SUM);
    double n = buf[2 * C];
#pragma omp parallel for if ((size_t)C * N > PAR_MIN_WORK)
    for (int c = 0; c < C; c++) {
        float k = w[c] * rstd[c], mdy = (float)(buf[c] / n), mdx = (float)(buf[C + c] / n);
        float m = mean[c], rs = rstd[c];
        const float *g = dout + (size_t)c * N, *r = x + (size_t)c * N;
        float *d = dx + (size_t)c * N;
        for (size_t i = 0; i < N; i++) d[i] = k * (g[i] - mdy - (r[i] - m) * rs * mdx);
    }
    free(buf);
}
