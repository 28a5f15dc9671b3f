// The DAVIS-2017 semi-supervised scores (davis2017-evaluation, docs/DOWNSTREAM.md):
// per object and frame, the region similarity J (IoU) and the contour accuracy
// F (boundary F-measure, boundaries matched within ceil(0.008 × diagonal)
// pixels); per object, the mean, the recall (fraction of frames above 0.5) and
// the decay (mean of the first quarter of frames minus that of the last).
#ifndef DINO_EVAL_DAVIS_H
#define DINO_EVAL_DAVIS_H

#include <stddef.h>
#include <stdint.h>

// Binary masks are (h, w) bytes, nonzero = inside.

// Intersection over union; 1 when both masks are empty.
double davis_iou(const uint8_t *gt, const uint8_t *res, int h, int w);

// The one-pixel boundary of a mask, as the evaluation's seg2bmap: a pixel is
// on it when it differs from its east, south or south-east neighbour (the last
// row compares with east only, the last column with south only, the corner is 0).
void davis_boundary(const uint8_t *mask, int h, int w, uint8_t *bmap);

// Boundary F-measure of res against gt with bound_th (0.008: a fraction of the
// diagonal, rounded up to whole pixels; ≥ 1: pixels): boundary pixels match
// when the other boundary, dilated by a disk of that radius, covers them.
// Empty boundaries follow the evaluation's conventions (both empty: 1).
double davis_fmeasure(const uint8_t *gt, const uint8_t *res, int h, int w, double bound_th);

// Mean, recall (> 0.5) and decay of n per-frame values, as db_statistics:
// four overlapping bins whose edges are round(linspace(1, n, 5)) − 1.
void davis_statistics(const double *v, int n, double *mean, double *recall, double *decay);

// Scores of one sequence: gt[f], res[f] are label maps (h, w) of frame f
// (object k has label k; 255 in the ground truth counts as background), for the
// frames to score (the caller leaves out the first and the last). J, F
// (nobj, nframes) receive the per-frame scores of objects 1..nobj. Returns 0,
// or -1 with err filled when a result holds a label above nobj (the
// evaluation refuses those).
int davis_score_sequence(const uint8_t *const *gt, const uint8_t *const *res, int nframes, int h,
                         int w, int nobj, double *J, double *F, char *err, size_t errlen);

#endif
