// The DINO loss from its per-row cross-entropies (docs/DINO.md): every pair
// of a teacher global crop iq and a student crop v != iq is one term, the
// mean over the batch of rowloss[(v·B + b)·2 + iq]; the loss is the mean of
// the 2·NC − 2 terms. The CPU loss (loss.c) and the CUDA loss (cuda/loss.cu)
// both call this, so they add in the same order and give the same double.
#ifndef DINO_TRAIN_LOSS_TERMS_H
#define DINO_TRAIN_LOSS_TERMS_H

#include <stddef.h>

#if defined(__CUDACC__)
#define LOSS_TERMS_FN static __host__ __device__ __forceinline__
#else
#define LOSS_TERMS_FN static inline
#endif

LOSS_TERMS_FN double dino_loss_mean_of_terms(const double *rowloss, int B, int NC) {
    double total = 0.0;
    for (int iq = 0; iq < 2; iq++)
        for (int v = 0; v < NC; v++) {
            if (v == iq) continue;
            double term = 0.0;
            for (int b = 0; b < B; b++) term += rowloss[((size_t)v * B + b) * 2 + iq];
            total += term / B;
        }
    return total / (2 * NC - 2);
}

#endif
