// arena.h: aligned regions of one block.
#include "arena.h"

#include "common.h"

void arena_init(Arena *a, float *base, size_t align_floats) {
    DINO_ASSERT(align_floats >= 1);
    a->base = base;
    a->align = align_floats;
    a->total = 0;
    a->regions = 0;
}

size_t arena_take(Arena *a, size_t n) {
    size_t off = a->total;
    if (n == 0) n = 1;
    size_t rounded = (n + a->align - 1) / a->align * a->align;
    DINO_ASSERT(rounded >= n);  // no wrap-around
    a->total += rounded;
    a->regions++;
    return off;
}

float *arena_take_ptr(Arena *a, size_t n) {
    size_t off = arena_take(a, n);
    return a->base ? a->base + off : NULL;
}
