// The pixels the reference's retrieval and copy-detection evaluations feed
// the model (docs/DOWNSTREAM.md):
// - retrieval (eval_image_retrieval.py): Pillow's img.thumbnail((s, s),
//   ANTIALIAS) — the aspect ratio kept, the longer side brought down to s,
//   never enlarged — then ToTensor and Normalize; multiscale feeds the
//   tensor also at 1/√2 and 1/2 through torch's bilinear interpolate;
// - copy detection (eval_copy_detection.py): Resize((s, s)) bicubic (the
//   aspect ratio not kept), ToTensor, Normalize.
#ifndef DINO_EVAL_RETRIEVAL_INPUT_H
#define DINO_EVAL_RETRIEVAL_INPUT_H

#include "data/dataset.h"

// Pillow's thumbnail size for a w x h image and a box of s x s: both sides
// within s, the aspect ratio rounded as Pillow rounds it; the image's own
// size when it already fits.
void retrieval_thumbnail_size(int w, int h, int s, int *tw, int *th);

// The normalised (3, th, tw) tensor of the thumbnail of `im` (malloc'd),
// with Pillow's LANCZOS and its reducing_gap of 2 (Image.reduce first).
float *retrieval_thumbnail_tensor(const Image *im, int s, int *tw, int *th);

// The normalised (3, s, s) tensor of `im` resized bicubically to s x s,
// into out.
void retrieval_square_tensor(const Image *im, int s, float *out);

// torch's interpolate(x, scale_factor=f, mode='bilinear',
// align_corners=False) of x (C, H, W): out is (C, floor(H·f), floor(W·f)),
// malloc'd; its size in *oh, *ow. NULL when a side would be 0.
float *retrieval_rescale(const float *x, int C, int H, int W, double f, int *oh, int *ow);

// PIL's img.crop(box) of a region (x0, y0, x1, y1), each rounded half to
// even as Python's round(), kept inside the image; a region that leaves
// nothing gives -1.
int retrieval_crop(const Image *im, const double box[4], Image *out);

#endif
