// Attention maps as the reference's visualize_attention.py (docs/DINO.md §10): the
// last block's CLS-query attention over the patch keys, one map per head;
// the threshold mask (sort ascending, normalise to sum 1, cumulative sum,
// keep where it exceeds 1 − threshold, unsort), and the pictures: heat maps
// through the viridis colour map (min-max normalised per map, as plt.imsave),
// mask overlays on the image (alpha 0.5 plus a contour), a grid of tiles, and
// PNG files through libpng. Nothing here runs a model.
#ifndef DINO_EVAL_ATTNMAP_H
#define DINO_EVAL_ATTNMAP_H

#include <stddef.h>
#include <stdint.h>

// attn is one image's (nh, T, T) probabilities; maps gets (nh, T − 1): row 0
// (the CLS query) without column 0.
void attnmap_cls(const float *attn, int nh, int T, float *maps);

// Per head (nh rows of n values): 1 where the patch belongs to the smallest
// set of largest values holding `threshold` of the mass, else 0. Equal values
// sort by position (stable), as PyTorch's CPU sort.
void attnmap_threshold(const float *maps, int nh, int n, double threshold, float *mask);

// matplotlib's viridis for t in [0, 1] (clipped; NaN gives the lowest colour),
// with its 256-entry lookup (index = floor(256·t), 255 at t = 1) and its
// truncation to bytes.
void attnmap_viridis(float t, uint8_t rgb[3]);

// A heat map image (gh·scale, gw·scale, 3) of one (gh, gw) map: min-max
// normalised, viridis, nearest-neighbour upsampled by `scale`.
void attnmap_heat_rgb(const float *map, int gh, int gw, int scale, uint8_t *rgb);

// Blends `color` at alpha 0.5 into img (h, w, 3) where the mask (gh, gw),
// upsampled by `scale`, is set, and draws the mask's outline in full colour.
// Pixels beyond gh·scale or gw·scale are copied unchanged.
void attnmap_overlay(const uint8_t *img, int h, int w, const float *mask, int gh, int gw,
                     int scale, const uint8_t color[3], uint8_t *out);

// A distinct colour for head j (a fixed palette; the reference draws random ones).
void attnmap_head_color(int j, uint8_t rgb[3]);

// Lays n tiles (th, tw, 3) out in rows of `cols` with `gap` pixels of grey
// between them. Returns a malloc'd (out_h, out_w, 3) image.
uint8_t *attnmap_grid(const uint8_t *const *tiles, int n, int th, int tw, int cols, int gap,
                      int *out_h, int *out_w);

// 8-bit RGB PNG writing and reading (libpng). 0, or -1 with err filled.
int png_write_rgb(const char *path, int w, int h, const uint8_t *rgb, char *err, size_t errlen);
// Reads any PNG as 8-bit RGB (malloc'd). NULL with err filled.
uint8_t *png_read_rgb(const char *path, int *w, int *h, char *err, size_t errlen);

#endif
