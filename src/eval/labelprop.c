#include "eval/labelprop.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

// Rows of x (n, d) divided by max(‖row‖, 1e-12), as F.normalize does.
static void normalise_rows(const float *x, int n, int d, float *y) {
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * d;
        float ss = 0;
        for (int k = 0; k < d; k++) ss += r[k] * r[k];
        float norm = fmaxf(sqrtf(ss), 1e-12f);
        for (int k = 0; k < d; k++) y[(size_t)i * d + k] = r[k] / norm;
    }
}

// The k-th largest of v[0..n) (k ≤ n), by keeping the k largest seen so far.
static float kth_largest(const float *v, int n, int k, float *top) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        float x = v[i];
        if (m == k && x <= top[m - 1]) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && top[j - 1] < x) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = x;
    }
    return top[k - 1];
}

// Keeps the top k of a query's n affinities a (and any tied with the k-th),
// zeroes the rest and divides the kept ones by their sum. Where n < k the
// missing affinities are the zeros outside the window: all n are kept.
static void keep_topk(float *a, int n, int k, float *top) {
    float kth = n >= k ? kth_largest(a, n, k, top) : 0.0f;
    float sum = 0;
    for (int s = 0; s < n; s++) {
        if (a[s] < kth) a[s] = 0;
        sum += a[s];
    }
    for (int s = 0; s < n; s++) a[s] /= sum;
}

// Every query against every source: one GEMM per context frame.
static int propagate_dense(const LabelProp *lp, const float *tn, float *const *sn, const float *const *segs,
                           int ncontext, float *out) {
    const int hw = lp->h * lp->w, d = lp->dim, C = lp->n_classes, nsrc = ncontext * hw, r = lp->neighborhood;
    // aff[q][s]: query q of the target against source s = frame·hw + patch
    float *aff = malloc(sizeof(float) * (size_t)hw * nsrc);
    if (!aff) return -1;
    for (int f = 0; f < ncontext; f++)
        gemm_f32(GEMM_N, GEMM_T, hw, hw, d, 1.0f, tn, d, sn[f], d, 0.0f, aff + (size_t)f * hw,
                 nsrc);
    int failed = 0;
#pragma omp parallel
    {
        float *top = malloc(sizeof(float) * lp->topk);
        if (!top) failed = 1;
#pragma omp for schedule(static)
        for (int q = 0; q < hw; q++) {
            if (!top) continue;
            float *a = aff + (size_t)q * nsrc;
            int qi = q / lp->w, qj = q % lp->w;
            for (int s = 0; s < nsrc; s++) {
                int p = s % hw, si = p / lp->w, sj = p % lp->w;
                int inside = r == 0 || (abs(si - qi) <= r && abs(sj - qj) <= r);
                a[s] = inside ? expf(a[s] / lp->temperature) : 0.0f;
            }
            keep_topk(a, nsrc, lp->topk, top);
            for (int c = 0; c < C; c++) {
                float acc = 0;
                for (int f = 0; f < ncontext; f++) {
                    const float *m = segs[f] + (size_t)c * hw;
                    for (int p = 0; p < hw; p++) acc += m[p] * a[f * hw + p];
                }
                out[(size_t)c * hw + q] = acc;
            }
        }
        free(top);
    }
    free(aff);
    return failed ? -1 : 0;
}

// Only the sources inside each query's window: (2r+1)² per context frame
// instead of the whole grid, so a large video needs neither the full
// affinity matrix nor the work of filling it with zeros.
static int propagate_window(const LabelProp *lp, const float *tn, float *const *sn, const float *const *segs,
                            int ncontext, float *out) {
    const int hw = lp->h * lp->w, d = lp->dim, C = lp->n_classes, r = lp->neighborhood;
    const int side = 2 * r + 1, cap = ncontext * side * side;
    int failed = 0;
#pragma omp parallel
    {
        float *a = malloc(sizeof(float) * cap), *top = malloc(sizeof(float) * lp->topk);
        int *src = malloc(sizeof(int) * cap);
        if (!a || !top || !src) failed = 1;
#pragma omp for schedule(static)
        for (int q = 0; q < hw; q++) {
            if (!a || !top || !src) continue;
            int qi = q / lp->w, qj = q % lp->w, n = 0;
            const float *t = tn + (size_t)q * d;
            int j0 = qj - r < 0 ? 0 : qj - r, j1 = qj + r >= lp->w ? lp->w - 1 : qj + r;
            for (int f = 0; f < ncontext; f++)
                for (int si = qi - r; si <= qi + r; si++) {
                    if (si < 0 || si >= lp->h) continue;
                    // the window's part of this grid row is contiguous: one matrix-vector product
                    int first = si * lp->w + j0, len = j1 - j0 + 1;
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, len, d, 1.0f, sn[f] + (size_t)first * d, d, t, 1,
                                0.0f, a + n, 1);
                    for (int i = 0; i < len; i++) {
                        a[n] = expf(a[n] / lp->temperature);
                        src[n++] = f * hw + first + i;
                    }
                }
            keep_topk(a, n, lp->topk, top);
            for (int c = 0; c < C; c++) {
                float acc = 0;
                for (int i = 0; i < n; i++) acc += segs[src[i] / hw][(size_t)c * hw + src[i] % hw] * a[i];
                out[(size_t)c * hw + q] = acc;
            }
        }
        free(a), free(top), free(src);
    }
    return failed ? -1 : 0;
}

int labelprop_propagate(const LabelProp *lp, const float *target, const float *const *feats,
                        const float *const *segs, int ncontext, float *out, char *err, size_t errlen) {
    const int hw = lp->h * lp->w, d = lp->dim, C = lp->n_classes;
    const int nsrc = ncontext * hw;
    if (lp->h <= 0 || lp->w <= 0 || d <= 0 || C <= 0 || ncontext <= 0 || lp->topk <= 0 ||
        lp->neighborhood < 0 || !(lp->temperature > 0)) {
        snprintf(err, errlen, "label propagation: invalid configuration (grid %dx%d, dim %d, %d classes, %d context frames, topk %d)",
                 lp->h, lp->w, d, C, ncontext, lp->topk);
        return -1;
    }
    if (lp->topk > nsrc) {
        snprintf(err, errlen, "label propagation: topk %d exceeds the %d source patches", lp->topk, nsrc);
        return -1;
    }
    float *tn = malloc(sizeof(float) * hw * d), **sn = calloc((size_t)ncontext, sizeof(float *));
    int rc = tn && sn ? 0 : -1;
    for (int f = 0; rc == 0 && f < ncontext; f++) {
        sn[f] = malloc(sizeof(float) * hw * d);
        if (!sn[f]) rc = -1;
        else normalise_rows(feats[f], hw, d, sn[f]);
    }
    if (rc == 0) {
        normalise_rows(target, hw, d, tn);
        // the window pays off once it covers well under the grid
        long side = 2L * lp->neighborhood + 1;
        int windowed = lp->neighborhood > 0 && side * side * 2 < hw;
        rc = windowed ? propagate_window(lp, tn, sn, segs, ncontext, out)
                      : propagate_dense(lp, tn, sn, segs, ncontext, out);
    }
    if (rc) snprintf(err, errlen, "label propagation: out of memory for %d target and %d source patches", hw, nsrc);
    for (int f = 0; sn && f < ncontext; f++) free(sn[f]);
    free(sn), free(tn);
    return rc;
}

// Source index and weight of output position o for bilinear upsampling by an
// integer factor with align_corners false (PyTorch's upsample_bilinear2d).
static void bilinear_tap(int o, int factor, int n, int *i0, int *i1, float *l1) {
    float src = (1.0f / (float)factor) * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int)src;
    *i1 = *i0 + (*i0 < n - 1);
    *l1 = src - (float)*i0;
}

void labelprop_upsample(const float *seg, int n_classes, int h, int w, int patch, float *up) {
    const int H = h * patch, W = w * patch;
    for (int c = 0; c < n_classes; c++) {
        const float *m = seg + (size_t)c * h * w;
        float *u = up + (size_t)c * H * W;
        for (int y = 0; y < H; y++) {
            int y0, y1;
            float ly;
            bilinear_tap(y, patch, h, &y0, &y1, &ly);
            for (int x = 0; x < W; x++) {
                int x0, x1;
                float lx;
                bilinear_tap(x, patch, w, &x0, &x1, &lx);
                u[(size_t)y * W + x] = (1 - ly) * ((1 - lx) * m[y0 * w + x0] + lx * m[y0 * w + x1]) +
                                       ly * ((1 - lx) * m[y1 * w + x0] + lx * m[y1 * w + x1]);
            }
        }
        float lo = u[0], hi = u[0];
        for (size_t i = 1; i < (size_t)H * W; i++) lo = fminf(lo, u[i]), hi = fmaxf(hi, u[i]);
        if (hi > 0) {
            float range = hi - lo;  // the maximum after subtracting the minimum
            for (size_t i = 0; i < (size_t)H * W; i++) u[i] = (u[i] - lo) / range;
        }
    }
}

void labelprop_argmax(const float *up, int n_classes, size_t n, uint8_t *labels) {
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < n_classes; c++)
            if (up[(size_t)c * n + i] > up[(size_t)best * n + i]) best = c;
        labels[i] = (uint8_t)best;
    }
}
