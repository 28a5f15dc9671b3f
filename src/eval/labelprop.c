#include "eval/labelprop.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    float *tn = malloc(sizeof(float) * hw * d), *sn = malloc(sizeof(float) * hw * d);
    // aff[q][s]: query q of the target against source s = frame·hw + patch
    float *aff = malloc(sizeof(float) * (size_t)hw * nsrc);
    float *top = malloc(sizeof(float) * lp->topk);
    if (!tn || !sn || !aff || !top) {
        free(tn), free(sn), free(aff), free(top);
        snprintf(err, errlen, "label propagation: out of memory for %d x %d affinities", hw, nsrc);
        return -1;
    }
    normalise_rows(target, hw, d, tn);
    for (int f = 0; f < ncontext; f++) {
        normalise_rows(feats[f], hw, d, sn);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hw, hw, d, 1.0f, tn, d, sn, d, 0.0f,
                    aff + (size_t)f * hw, nsrc);
    }
    const int r = lp->neighborhood;
    for (int q = 0; q < hw; q++) {
        float *a = aff + (size_t)q * nsrc;
        int qi = q / lp->w, qj = q % lp->w;
        for (int s = 0; s < nsrc; s++) {
            int p = s % hw, si = p / lp->w, sj = p % lp->w;
            int inside = r == 0 || (abs(si - qi) <= r && abs(sj - qj) <= r);
            a[s] = inside ? expf(a[s] / lp->temperature) : 0.0f;
        }
        // keep the top k (and anything tied with the k-th), normalised to sum 1
        float kth = kth_largest(a, nsrc, lp->topk, top);
        float sum = 0;
        for (int s = 0; s < nsrc; s++) {
            if (a[s] < kth) a[s] = 0;
            sum += a[s];
        }
        for (int s = 0; s < nsrc; s++) a[s] /= sum;
    }
    for (int c = 0; c < C; c++)
        for (int q = 0; q < hw; q++) {
            const float *a = aff + (size_t)q * nsrc;
            float acc = 0;
            for (int f = 0; f < ncontext; f++) {
                const float *m = segs[f] + (size_t)c * hw;
                for (int p = 0; p < hw; p++) acc += m[p] * a[f * hw + p];
            }
            out[(size_t)c * hw + q] = acc;
        }
    free(tn), free(sn), free(aff), free(top);
    return 0;
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
