// Video object segmentation by label propagation, frame by frame, as the
// reference's eval_video_segmentation.py (docs/DOWNSTREAM.md): each frame is
// resized (OpenCV bilinear, shorter side to image_size, the other side floored
// to a multiple of 64) and normalised, its last-layer patch tokens after the
// final norm are its features, and its mask comes from the first frame's and
// the n_last_frames previous frames' masks (src/eval/labelprop.h). Frames
// arrive one at a time, so a video never has to fit in memory.
#ifndef DINO_EVAL_SEGVIDEO_H
#define DINO_EVAL_SEGVIDEO_H

#include <stddef.h>
#include <stdint.h>

#include "vit.h"

// Previous frames a context may hold: each keeps its features and mask, and
// DAVIS videos have about 100 frames at most.
#define SEGVIDEO_MAX_CONTEXT 100

typedef struct {
    int image_size;     // 480: the resized frame's shorter side
    int n_last_frames;  // 7: previous frames in the context (0: the first frame only)
    int neighborhood;   // size_mask_neighborhood, 12 (0: no window)
    int topk;           // 5
} SegVideoConfig;

void segvideo_config_default(SegVideoConfig *c);

typedef struct SegVideo SegVideo;

// Starts a video from its first frame (rgb, w x h) and that frame's labels
// (h, w; 0 background, 1..K objects). The mask is resized to the patch grid
// with nearest sampling (Pillow's) and one-hot encoded, with max label + 1
// channels. NULL with err filled when the frame is too small for one patch.
SegVideo *segvideo_begin(const SegVideoConfig *c, const ViTConfig *vc, const ViTWeights *vw,
                         const uint8_t *rgb, int w, int h, const uint8_t *labels, char *err,
                         size_t errlen);

// The next frame (same size as the first): its labels at the frame's size
// (nearest-resized from the patch-aligned argmax). 0, or -1 with err filled.
int segvideo_next(SegVideo *s, const uint8_t *rgb, uint8_t *labels, char *err, size_t errlen);

// Facts of the run, for progress lines and checks.
void segvideo_grid(const SegVideo *s, int *resized_w, int *resized_h, int *grid_w, int *grid_h,
                   int *n_classes);

// The soft mask (n_classes, grid_h·grid_w) of the last frame given to
// segvideo_next, before upsampling (what the context queue keeps).
const float *segvideo_soft_mask(const SegVideo *s);

void segvideo_free(SegVideo *s);

// A picture of labels over a frame (both w x h): each object's pixels
// blended half and half with its palette colour, its outline in full colour;
// background (0) left as is.
void segvideo_overlay(const uint8_t *rgb, const uint8_t *labels, int w, int h,
                      const uint8_t *palette, int ncolors, uint8_t *out);

#endif
