// The Dataset structure shared by the dataset readers (dataset_core.c for the
// shared accessors, dataset.c for the dispatch and file-based sources,
// dataset_arrays.c for IDX and CIFAR).
// Not part of the public contract: code outside src/data uses dataset.h.
#ifndef DINO_DATASET_INTERNAL_H
#define DINO_DATASET_INTERNAL_H

#include "data/dataset.h"

typedef enum { DS_FILES = 0, DS_ARRAY = 1 } DatasetKind;

struct Dataset {
    DatasetKind kind;
    int64_t n;
    int n_classes;
    int32_t *labels;  // (n) or NULL when unlabeled
    char desc[512];
    int split_specific;  // this split's own images (IDX/CIFAR folders, path/train, path/val)
    // DS_FILES: one path per image.
    char **paths;
    // DS_ARRAY: n images of h×w×c bytes stored at pixels + i·h·w·c, either
    // interleaved (HWC) or planar (CHW, CIFAR); c is 1 or 3.
    uint8_t *pixels;
    int h, w, c, planar;
};

Dataset *dataset_new(DatasetKind kind);
// IDX (MNIST-style) files: `path` is a folder holding train-images-idx3-ubyte[.gz]
// etc., or an images file itself. Returns NULL with err filled when not IDX
// (*recognised = 0) or when it is IDX but broken (*recognised = 1).
Dataset *dataset_open_idx(const char *path, Split split, int *recognised, char *err, size_t errlen);
Dataset *dataset_open_cifar(const char *path, Split split, int *recognised, char *err, size_t errlen);

#endif
