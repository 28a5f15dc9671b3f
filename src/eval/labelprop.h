// Label propagation for video object segmentation, as the reference evaluates
// DINO on DAVIS (docs/DOWNSTREAM.md): a target frame's soft mask at patch
// resolution is built from the masks of context frames (the first frame and
// the previous few), weighted by the top-k affinities between the target's
// patch features and theirs; then upsampled to pixels and turned into labels.
#ifndef DINO_EVAL_LABELPROP_H
#define DINO_EVAL_LABELPROP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int h, w;           // patch grid of every frame
    int dim;            // feature width
    int n_classes;      // mask channels: background and each object
    int neighborhood;   // size_mask_neighborhood (12): only sources within this many patches
                        // of the query, in both directions, count; 0: all of them
    int topk;           // 5: affinities kept per query
    float temperature;  // 0.1: affinity = exp(cosine / temperature)
} LabelProp;

// target: the target frame's patch features (h·w, dim) as the backbone gives
// them; feats[i], segs[i]: context frame i's features (h·w, dim) and soft mask
// (n_classes, h·w). Features are L2-normalised here. out: (n_classes, h·w).
// Returns 0, or -1 with err filled for an impossible configuration or when
// memory runs out.
int labelprop_propagate(const LabelProp *lp, const float *target, const float *const *feats,
                        const float *const *segs, int ncontext, float *out, char *err, size_t errlen);

// The soft mask (n_classes, h·w) upsampled to pixels, up (n_classes,
// h·patch, w·patch): bilinear by `patch` (align_corners false), then each
// channel whose maximum is positive rescaled to [0, 1] by its minimum and
// maximum.
void labelprop_upsample(const float *seg, int n_classes, int h, int w, int patch, float *up);

// labels[i] = the channel of up (n_classes ≤ 256, n) largest at pixel i, the
// lowest on an exact tie.
void labelprop_argmax(const float *up, int n_classes, size_t n, uint8_t *labels);

#endif
