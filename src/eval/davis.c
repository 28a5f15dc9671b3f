#include "eval/davis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

double davis_iou(const uint8_t *gt, const uint8_t *res, int h, int w) {
    size_t inter = 0, uni = 0, n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) {
        int a = gt[i] != 0, b = res[i] != 0;
        inter += a & b;
        uni += a | b;
    }
    return uni == 0 ? 1.0 : (double)inter / (double)uni;
}

void davis_boundary(const uint8_t *mask, int h, int w, uint8_t *b) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int s = mask[(size_t)y * w + x] != 0;
            // Neighbours beyond the image count as 0 (the evaluation's zero-filled shifts).
            int e = x + 1 < w ? mask[(size_t)y * w + x + 1] != 0 : 0;
            int so = y + 1 < h ? mask[(size_t)(y + 1) * w + x] != 0 : 0;
            int se = x + 1 < w && y + 1 < h ? mask[(size_t)(y + 1) * w + x + 1] != 0 : 0;
            int v;
            if (y == h - 1 && x == w - 1) v = 0;
            else if (x == w - 1) v = s ^ so;  // the last column: south only
            else if (y == h - 1) v = s ^ e;   // the last row: east only
            else v = (s ^ e) | (s ^ so) | (s ^ se);
            b[(size_t)y * w + x] = (uint8_t)v;
        }
}

// out = in dilated by the disk x² + y² ≤ r² (skimage's disk, cv2.dilate with
// pixels outside the image ignored). One pass per disk row: a horizontal
// running maximum of each half-width, then the rows combined.
static void dilate_disk(const uint8_t *in, int h, int w, int r, uint8_t *out) {
    memset(out, 0, (size_t)h * w);
    int *half = mallocCheck(sizeof(int) * (2 * r + 1));
    for (int dy = -r; dy <= r; dy++) half[dy + r] = (int)floor(sqrt((double)r * r - (double)dy * dy));
    // Horizontal extents: for each row and half-width, where any pixel lies within it.
    // Cheap enough for DAVIS sizes (r = 8 at 480p): sweep the set pixels directly.
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (!in[(size_t)y * w + x]) continue;
            for (int dy = -r; dy <= r; dy++) {
                int yy = y + dy;
                if (yy < 0 || yy >= h) continue;
                int k = half[dy + r];
                int x0 = x - k < 0 ? 0 : x - k, x1 = x + k >= w ? w - 1 : x + k;
                memset(out + (size_t)yy * w + x0, 1, (size_t)(x1 - x0 + 1));
            }
        }
    free(half);
}

double davis_fmeasure(const uint8_t *gt, const uint8_t *res, int h, int w, double bound_th) {
    int r = bound_th >= 1 ? (int)bound_th : (int)ceil(bound_th * sqrt((double)h * h + (double)w * w));
    size_t n = (size_t)h * w;
    uint8_t *fg_b = mallocCheck(n), *gt_b = mallocCheck(n), *fg_d = mallocCheck(n), *gt_d = mallocCheck(n);
    davis_boundary(res, h, w, fg_b);
    davis_boundary(gt, h, w, gt_b);
    dilate_disk(fg_b, h, w, r, fg_d);
    dilate_disk(gt_b, h, w, r, gt_d);
    size_t n_fg = 0, n_gt = 0, fg_match = 0, gt_match = 0;
    for (size_t i = 0; i < n; i++) {
        n_fg += fg_b[i];
        n_gt += gt_b[i];
        fg_match += fg_b[i] & gt_d[i];
        gt_match += gt_b[i] & fg_d[i];
    }
    free(fg_b), free(gt_b), free(fg_d), free(gt_d);
    double precision, recall;
    if (n_fg == 0 && n_gt > 0) precision = 1, recall = 0;
    else if (n_fg > 0 && n_gt == 0) precision = 0, recall = 1;
    else if (n_fg == 0 && n_gt == 0) precision = 1, recall = 1;
    else precision = (double)fg_match / (double)n_fg, recall = (double)gt_match / (double)n_gt;
    return precision + recall == 0 ? 0.0 : 2 * precision * recall / (precision + recall);
}

void davis_statistics(const double *v, int n, double *mean, double *recall, double *decay) {
    if (n <= 0) {
        *mean = *recall = *decay = NAN;
        return;
    }
    double s = 0, above = 0;
    for (int i = 0; i < n; i++) s += v[i], above += v[i] > 0.5;
    *mean = s / n;
    *recall = above / n;
    // np.round(np.linspace(1, n, 5) + 1e-10) - 1: the 1e-10 sends halves up.
    int ids[5];
    for (int i = 0; i < 5; i++) {
        double x = i == 4 ? (double)n : 1.0 + i * ((double)(n - 1) / 4.0);
        ids[i] = (int)floor(x + 1e-10 + 0.5) - 1;
    }
    double m[2];
    for (int b = 0; b < 2; b++) {
        int bin = b == 0 ? 0 : 3;
        int lo = ids[bin], hi = ids[bin + 1] + 1;  // inclusive of the next edge, as the slice
        if (hi > n) hi = n;
        double t = 0;
        for (int i = lo; i < hi; i++) t += v[i];
        m[b] = hi > lo ? t / (hi - lo) : NAN;
    }
    *decay = m[0] - m[1];
}

int davis_score_sequence(const uint8_t *const *gt, const uint8_t *const *res, int nframes, int h,
                         int w, int nobj, double *J, double *F, char *err, size_t errlen) {
    size_t n = (size_t)h * w;
    for (int f = 0; f < nframes; f++)
        for (size_t i = 0; i < n; i++)
            if (res[f][i] > nobj)
                return dino_errf(err, errlen,
                                 "a result holds label %d but the ground truth has %d object%s",
                                 res[f][i], nobj, nobj == 1 ? "" : "s");
    uint8_t *a = mallocCheck(n), *b = mallocCheck(n);
    for (int k = 1; k <= nobj; k++)
        for (int f = 0; f < nframes; f++) {
            for (size_t i = 0; i < n; i++) {
                a[i] = gt[f][i] == k;  // 255 (void) is background in the semi-supervised task
                b[i] = res[f][i] == k;
            }
            J[(size_t)(k - 1) * nframes + f] = davis_iou(a, b, h, w);
            F[(size_t)(k - 1) * nframes + f] = davis_fmeasure(a, b, h, w, 0.008);
        }
    free(a);
    free(b);
    return 0;
}
