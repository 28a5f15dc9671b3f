// A training batch as the loader hands it to the model: crops grouped by
// resolution, each group one contiguous crop-major buffer, exactly the
// concatenation the reference's MultiCropWrapper builds (docs/DINO.md §3).
#ifndef DINO_BATCH_H
#define DINO_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define BATCH_MAX_GROUPS 4

typedef struct {
    int size;       // crop height = width in pixels
    int n_crops;    // crops of this size per image (2 global, 8 local, ...)
    float *pixels;  // (n_crops·B, 3, size, size): [crop0 of every image; crop1 ...]
} CropGroup;

typedef struct {
    int B;           // images in the batch
    int n_groups;    // group 0 holds the global crops the teacher sees
    CropGroup groups[BATCH_MAX_GROUPS];
    int32_t *labels;   // (B), -1 when unlabeled
    int64_t *indices;  // (B) dataset indices
    int epoch;
    int64_t step;      // iteration within the epoch
} Batch;

// A batch of B images with 2 global crops of G px and nl local crops of L px
// (no local group when nl is 0). Shape only: no pixels, labels or indices
// (what plans and size checks need).
Batch batch_shape(int B, int G, int nl, int L);
// The same with 3-channel pixels drawn from fixture_fill in [-2, 2] (group g
// from seed + g), zero labels and indices: the input of `dino bench train`
// and of the training-step tests. Free with batch_free.
Batch batch_synthetic(int B, int G, int nl, int L, uint64_t seed);
void batch_free(Batch *b);

#endif
