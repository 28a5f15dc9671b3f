// Datasets: where images come from (docs/DINO.md §5). One --data_path
// argument is recognised as an ImageFolder tree (classes = sorted sub-folder
// names), a plain folder of images (recursive, unlabeled), a text file listing
// paths with optional integer labels, IDX files (MNIST / Fashion-MNIST, raw or
// gzip) or CIFAR-10/100 binary batches. Every dataset yields 8-bit RGB images;
// grey data is expanded to three channels.
#ifndef DINO_DATASET_H
#define DINO_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

typedef enum { SPLIT_TRAIN = 0, SPLIT_TEST = 1 } Split;

typedef struct Dataset Dataset;

// Opens `path` for the given split (IDX and CIFAR hold both splits; folder
// datasets use path/train and path/val when those exist, else path itself for
// either split). NULL with err filled when nothing readable is there.
Dataset *dataset_open(const char *path, Split split, char *err, size_t errlen);
void dataset_close(Dataset *d);
int64_t dataset_size(const Dataset *d);
int dataset_num_classes(const Dataset *d);  // 0 when unlabeled
int32_t dataset_label(const Dataset *d, int64_t i);  // -1 when unlabeled
const char *dataset_describe(const Dataset *d);  // e.g. "IDX fashion-mnist train: 60000 images, 10 classes"
// Decodes image i. `min_side`, when > 0, lets JPEG decoding scale down in the
// DCT domain as long as both sides stay >= min_side. Returns 0, or -1 with
// err filled for an unreadable image (the caller skips and counts it).
// Thread-safe.
int dataset_load(const Dataset *d, int64_t i, int min_side, Image *out, char *err, size_t errlen);
// 1 when the dataset holds separate train and val images (IDX or CIFAR
// folders, a folder with train/ or val/), 0 when both splits open the same
// images (a plain folder, a list, one image, one IDX file).
int dataset_has_splits(const Dataset *d);
// The file of image i (a folder or list dataset), or NULL where images are
// not files (IDX, CIFAR).
const char *dataset_path(const Dataset *d, int64_t i);
// The name of image i in messages: its path, or "<description>, image i".
void dataset_image_name(const Dataset *d, int64_t i, char *buf, size_t n);

#endif
