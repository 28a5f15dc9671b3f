// Helpers shared by the CUDA tests that compare a GPU engine with the CPU
// one (tests/cuda/test_cuda_train.c, test_cuda_features.c), header-only and
// static: the normalised error ||got − want||₂ / ||want||₂ both report.
#ifndef DINO_CUDA_TESTUTIL_H
#define DINO_CUDA_TESTUTIL_H

#include <math.h>
#include <stddef.h>

// ||got − want||₂ / ||want||₂ in double (||got − want||₂ when want is all
// zero); infinity when a difference is NaN.
static inline double rel_l2(const float *got, const float *want, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)got[i] - (double)want[i];
        d += e * e;
        r += (double)want[i] * want[i];
    }
    if (!(d == d)) return INFINITY;
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

#endif
