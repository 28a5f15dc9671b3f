// Synthetic batches (see batch.h).
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rng.h"

Batch batch_shape(int B, int G, int nl, int L) {
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

Batch batch_synthetic(int B, int G, int nl, int L, uint64_t seed) {
    Batch b = batch_shape(B, G, nl, L);
    for (int g = 0; g < b.n_groups; g++) {
        int s = b.groups[g].size;
        size_t n = (size_t)b.groups[g].n_crops * B * 3 * s * s;
        b.groups[g].pixels = alignedAllocCheck(n * sizeof(float));
        fixture_fill(b.groups[g].pixels, n, seed + (uint64_t)g, -2.0f, 2.0f);
    }
    b.labels = callocCheck((size_t)B, sizeof(int32_t));
    b.indices = callocCheck((size_t)B, sizeof(int64_t));
    return b;
}

void batch_free(Batch *b) {
    for (int g = 0; g < b->n_groups; g++) free(b->groups[g].pixels);
    free(b->labels);
    free(b->indices);
    memset(b, 0, sizeof *b);
}
