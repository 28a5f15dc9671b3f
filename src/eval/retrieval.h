// Image retrieval and copy detection as the reference evaluates DINO
// (docs/DOWNSTREAM.md): average precision of a ranking under the revisited
// Oxford/Paris protocol (junk images removed from the ranking) and the
// Holidays/Copydays one, GeM pooling of patch tokens, and the PCA whitening
// learned on a set of features.
#ifndef DINO_EVAL_RETRIEVAL_H
#define DINO_EVAL_RETRIEVAL_H

#include <stddef.h>

// Average precision from the 0-based ranks (ascending) at which the n_found
// positives were retrieved, out of n_pos positives in all: the area under
// the precision-recall curve by trapezoids.
double retrieval_ap_from_ranks(const int *ranks, int n_found, int n_pos);

// One query of the revisited protocol. ranking: database indices, best first
// (n_db); ok, junk: the query's positive and ignored database indices. Junk
// images are taken out of the ranking before the positives' ranks are read.
// prec (n_kappas, may be NULL) receives precision at each kappa, cut at the
// rank of the last positive when that comes first. Returns the AP, or -1 when
// the query has no positive (the protocol leaves it out of the mean) or
// memory runs out. An index both positive and junk counts as both, as there.
double retrieval_revisited_ap(const int *ranking, int n_db, const int *ok, int n_ok, const int *junk,
                              int n_junk, const int *kappas, int n_kappas, double *prec);

// GeM pooling of n tokens (n, d): (mean over tokens of max(x, eps)^p)^(1/p).
void retrieval_gem(const float *tokens, int n, int d, float p, float eps, float *out);

// PCA whitening, as the reference's copy detection learns it from n features
// X (n, d): mean (d) is their mean; the eigen-decomposition is of X^T X / n
// (not centred, as there); eigenvalues below 1e-5 of the largest are raised
// to that; the out_dim largest are kept; dvt (out_dim, d) = diag(λ^-power)·V^T.
// Returns 0, or -1 with err filled.
int retrieval_whitening_learn(const float *X, int n, int d, int out_dim, double power, float *mean,
                              float *dvt, char *err, size_t errlen);

// y (n, out_dim) = (x − mean) · dvt^T for n rows x (n, d). Returns 0, or -1
// when memory runs out.
int retrieval_whitening_apply(const float *x, int n, int d, const float *mean, const float *dvt,
                              int out_dim, float *y);

#endif
