// The Dataset accessors every kind of source shares (dataset.h): creation,
// size, labels, names and decoding one image. The openers (dataset.c for
// files and the dispatch, dataset_arrays.c for IDX and CIFAR) build on these.
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "data/dataset_internal.h"
#include "image/decode.h"

Dataset *dataset_new(DatasetKind kind) {
    Dataset *d = callocCheck(1, sizeof(Dataset));
    d->kind = kind;
    return d;
}

void dataset_close(Dataset *d) {
    if (!d) return;
    if (d->paths)
        for (int64_t i = 0; i < d->n; i++) free(d->paths[i]);
    free(d->paths);
    free(d->labels);
    free(d->pixels);
    free(d);
}

int64_t dataset_size(const Dataset *d) { return d->n; }
int dataset_num_classes(const Dataset *d) { return d->n_classes; }
int32_t dataset_label(const Dataset *d, int64_t i) {
    return d->labels && i >= 0 && i < d->n ? d->labels[i] : -1;
}
const char *dataset_describe(const Dataset *d) { return d->desc; }

int dataset_load(const Dataset *d, int64_t i, int min_side, Image *out, char *err, size_t errlen) {
    out->w = out->h = 0;
    out->rgb = NULL;
    if (i < 0 || i >= d->n) {
        snprintf(err, errlen, "image index %lld is outside the dataset (%lld images)",
                 (long long)i, (long long)d->n);
        return -1;
    }
    if (d->kind == DS_FILES) return image_decode_file(d->paths[i], min_side, out, err, errlen);
    size_t np = (size_t)d->h * d->w;
    const uint8_t *src = d->pixels + (size_t)i * np * d->c;
    out->w = d->w;
    out->h = d->h;
    out->rgb = mallocCheck(np * 3);
    for (size_t p = 0; p < np; p++)
        for (int c = 0; c < 3; c++)
            out->rgb[3 * p + c] = d->c == 1 ? src[p] : d->planar ? src[c * np + p] : src[3 * p + c];
    return 0;
}

int dataset_has_splits(const Dataset *d) { return d->split_specific; }

const char *dataset_path(const Dataset *d, int64_t i) {
    return d->kind == DS_FILES && i >= 0 && i < d->n ? d->paths[i] : NULL;
}

void dataset_image_name(const Dataset *d, int64_t i, char *buf, size_t n) {
    if (d->kind == DS_FILES && i >= 0 && i < d->n) snprintf(buf, n, "%s", d->paths[i]);
    else snprintf(buf, n, "%s, image %lld", d->desc, (long long)i);
}
