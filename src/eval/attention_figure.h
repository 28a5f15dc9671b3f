// The attention figure of `dino attention` (docs/DINO.md §10), around the
// model's forward pass: preparing the input as visualize_attention.py does
// (optional bilinear resize, top-left crop to multiples of the patch,
// normalisation), and writing the pictures and the maps (img.png,
// attn-head{j}.png, with a threshold mask_th{t}_head{j}.png and
// mask_th{t}_all.png, attn-grid.png with everything, attn_maps.npy).
#ifndef DINO_EVAL_ATTENTION_FIGURE_H
#define DINO_EVAL_ATTENTION_FIGURE_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

typedef struct {
    int64_t rw, rh;  // after the resize
    int W, H;        // after the crop: multiples of the patch
    int gw, gh;      // patch grid
    uint8_t *crop;   // (H, W, 3): the picture the maps are drawn on
    float *x;        // (3, H, W): the normalised model input
} AttentionInput;

// Resizes `im` (size_n 0: as is; 1: the shorter side to size[0]; 2: to
// size[0] x size[1] as H W, Pillow bilinear), crops to patch multiples and
// normalises. Refuses sizes whose pixels or attention (nh heads, two copies
// of the T x T probabilities) would exceed the limits. 0, or -1 with err
// filled naming `name`.
int attention_input_prepare(const Image *im, const char *name, int size_n, const int *size,
                            int patch, int nh, AttentionInput *out, char *err, size_t errlen);
void attention_input_free(AttentionInput *in);

// Writes the figure of maps (nh, gh·gw) for `in` into the folder out_dir
// (created if missing). threshold 0: no masks. 0, or -1 with err filled.
int attention_figure_write(const char *out_dir, const AttentionInput *in, const float *maps, int nh,
                           int patch, double threshold, char *err, size_t errlen);

#endif
