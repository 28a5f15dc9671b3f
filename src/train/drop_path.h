// Stochastic depth's random factors for one crop group of one iteration, as
// the reference's DropPath draws them (docs/DINO.md §1): per sample and per
// block branch, 0 or 1/keep, with block l's rate = rate·l/(depth − 1).
#ifndef DINO_TRAIN_DROP_PATH_H
#define DINO_TRAIN_DROP_PATH_H

#include <stdint.h>

// depth·2·Bg values laid out [block·2 + branch][sample], from the streams
// (RNG_DROP_PATH, seed, it, group, block·2 + branch).
void drop_path_scales(float drop_path_rate, uint64_t seed, int depth, int64_t it, int group, int Bg,
                      float *out);

#endif
