// drop_path.h: the per-sample factors of stochastic depth.
#include "train/drop_path.h"

#include <math.h>

#include "rng.h"

void drop_path_scales(float drop_path_rate, uint64_t seed, int depth, int64_t it, int group, int Bg,
                      float *out) {
    for (int l = 0; l < depth; l++) {
        // linspace(0, drop_path_rate, depth)[l]
        float rate = depth > 1 ? (float)((double)drop_path_rate * l / (depth - 1)) : 0.0f;
        float keep = 1.0f - rate;
        for (int br = 0; br < 2; br++) {
            float *o = out + (size_t)(l * 2 + br) * Bg;
            if (rate <= 0.0f) {
                for (int b = 0; b < Bg; b++) o[b] = 1.0f;
                continue;
            }
            Rng r;
            rng_stream(&r, RNG_DROP_PATH, seed, (uint64_t)it, (uint64_t)group, (uint64_t)(l * 2 + br));
            // mask = floor(keep + U[0,1)), output = x / keep · mask
            for (int b = 0; b < Bg; b++) o[b] = floorf(keep + rng_uniform(&r)) >= 1.0f ? 1.0f / keep : 0.0f;
        }
    }
}
