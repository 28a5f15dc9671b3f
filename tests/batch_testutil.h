// Synthetic multi-crop batches for the tests of the CUDA engine's plans
// (tests/test_cuda_train_plan.c) and of its training step
// (tests/cuda/test_cuda_train.c), header-only and static: the shape of a
// DINO batch (2 global crops, nl local crops), and its pixels, labels and
// indices filled from fixture_fill when a test needs the data.
#ifndef DINO_BATCH_TESTUTIL_H
#define DINO_BATCH_TESTUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "common.h"
#include "rng.h"

// A batch of B images: 2 global crops of G px and nl local crops of L px
// (no local group when nl is 0). Shape only: no pixels, labels or indices.
static inline Batch batch_test_shape(int B, int G, int nl, int L) {
    Batch b;
    memset(&b, 0, sizeof b);
    b.B = B;
    b.n_groups = nl > 0 ? 2 : 1;
    b.groups[0].size = G;
    b.groups[0].n_crops = 2;
    b.groups[1].size = L;
    b.groups[1].n_crops = nl;
    return b;
}

// The same with 3-channel pixels in [-2, 2] (group g from seed + g), zero
// labels and indices; free with batch_test_free.
static inline Batch batch_test_make(int B, int G, int nl, int L, uint64_t seed) {
    Batch b = batch_test_shape(B, G, nl, L);
    for (int g = 0; g < b.n_groups; g++) {
        int s = b.groups[g].size;
        size_t n = (size_t)b.groups[g].n_crops * B * 3 * s * s;
        b.groups[g].pixels = mallocCheck(n * sizeof(float));
        fixture_fill(b.groups[g].pixels, n, seed + (uint64_t)g, -2.0f, 2.0f);
    }
    b.labels = callocCheck((size_t)B, sizeof(int32_t));
    b.indices = callocCheck((size_t)B, sizeof(int64_t));
    return b;
}

static inline void batch_test_free(Batch *b) {
    for (int g = 0; g < b->n_groups; g++) free(b->groups[g].pixels);
    free(b->labels);
    free(b->indices);
    memset(b, 0, sizeof *b);
}

#endif
