// XXH64, the 64-bit non-cryptographic hash of the xxHash family, used as the
// native format's checksum: fast enough (several GB/s) that verifying a
// checkpoint on every load costs little next to reading it. One-shot and
// streaming forms; both give the same digest as the reference xxHash library.
#ifndef DINO_XXH64_H
#define DINO_XXH64_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t total;
    uint64_t v[4];
    uint8_t mem[32];
    uint32_t memsize;
    uint64_t seed;
} Xxh64State;

uint64_t xxh64(const void *data, size_t len, uint64_t seed);
void xxh64_init(Xxh64State *s, uint64_t seed);
void xxh64_update(Xxh64State *s, const void *data, size_t len);
uint64_t xxh64_digest(const Xxh64State *s);

#endif
