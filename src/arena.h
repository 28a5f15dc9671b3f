// One block of floats handed out as regions at aligned offsets: the one
// allocator of activation buffers (the CPU ViT's and ResNet's, the CUDA
// engine's device buffers). A layout is run twice: first with base NULL to
// count (total), then over a block of that size to place the pointers.
#ifndef DINO_ARENA_H
#define DINO_ARENA_H

#include <stddef.h>

typedef struct {
    float *base;    // NULL: count only
    size_t align;   // every region starts at a multiple of this many floats
    size_t total;   // floats taken so far (aligned)
    int regions;    // regions taken
} Arena;

void arena_init(Arena *a, float *base, size_t align_floats);
// Reserves n floats and returns the region's offset in floats. n may be 0:
// the region still takes one aligned slot, so offsets stay distinct.
size_t arena_take(Arena *a, size_t n);
// arena_take, as a pointer into base (NULL while counting).
float *arena_take_ptr(Arena *a, size_t n);

#endif
