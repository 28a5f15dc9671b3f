// The two resizes of the reference's video segmentation
// (eval_video_segmentation.py, docs/DOWNSTREAM.md): frames go through
// OpenCV's cv2.resize(INTER_LINEAR) on 8-bit pixels, masks through Pillow's
// resize(NEAREST). Both are reproduced bit for bit, not approximated, so the
// patch grid sees the pixels the reference's model sees.
#ifndef DINO_IMAGE_RESIZE_VIDEO_H
#define DINO_IMAGE_RESIZE_VIDEO_H

#include <stdint.h>

// cv2.resize(src, (dw, dh)) with INTER_LINEAR on 8-bit pixels with `cn`
// channels: half-pixel centres, weights rounded to 1/2048, the horizontal
// pass in integers and the vertical pass rounded as OpenCV's SIMD path does
// (the scalar path rounds differently by one in places; the SIMD one is what
// the x86 and ARM builds run). Checked against cv2 by tests/test_segment_video.c.
void resize_cv_linear(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int cn);

// Pillow's img.resize((dw, dh), Image.NEAREST) of a one-byte-per-pixel image:
// source pixel floor((x + 0.5)·sw/dw), with Pillow's running sum in double.
void resize_pil_nearest(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh);

// The reference's frame size for a frame of w x h and a `size` (480): the
// shorter side becomes `size` and the longer one size·long/short, floored to a
// multiple of 64 (for a square frame the height stays `size` and the width is
// floored, as read_frame does).
void video_frame_size(int w, int h, int size, int *out_w, int *out_h);

#endif
