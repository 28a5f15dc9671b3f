// The tiny ViT that the end-to-end command tests save and run: 32-px images,
// patch 8 (16 patches), width 48, 2 blocks, 3 heads.
#ifndef DINO_TESTS_TINY_VIT_H
#define DINO_TESTS_TINY_VIT_H

#include "vit.h"

static inline ViTConfig tiny_vit_config(void) {
    ViTConfig vc = {.img_size = 32, .patch = 8, .in_chans = 3, .dim = 48, .depth = 2, .heads = 3,
                    .mlp_hidden = 192, .ln_eps = 1e-6f};
    return vc;
}

#endif
