// Random numbers. Every random draw in dino.c comes from a stream keyed by
// integers (seed, epoch, sample index, crop, ...), never from a shared state
// advanced by whichever thread runs first, so results do not depend on the
// thread count. Also the seeded value generator that test fixtures share with
// tools/fixture_io.py.
#ifndef DINO_RNG_H
#define DINO_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];  // xoshiro256** state
} Rng;

uint64_t splitmix64(uint64_t x);

// What a stream is for: the first key of every stream, so that no two uses
// can draw the same numbers whatever their other keys (tests/test_rng.c).
typedef enum {
    RNG_INIT_BACKBONE = 1,  // (parameter slot)
    RNG_INIT_HEAD,          // (layer)
    RNG_AUGMENT,            // (epoch, sample, crop)
    RNG_DATA_ORDER,         // (epoch): the training loader's shuffle
    RNG_DROP_PATH,          // (iteration, crop group, block branch)
    RNG_LINEAR_INIT,        // the linear probe's weights
    RNG_LINEAR_ORDER,       // (epoch, mode): the linear probe's shuffle
    RNG_LINEAR_AUGMENT,     // (epoch, sample): the full linear probe's crops
    RNG_TEST,               // test code's own streams
    RNG_DOMAIN_COUNT
} RngDomain;

// A stream keyed by (domain, seed, a, b, c): distinct keys give independent
// streams.
void rng_stream(Rng *r, RngDomain domain, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint64_t rng_u64(Rng *r);
uint32_t rng_u32(Rng *r);
float rng_uniform(Rng *r);          // [0,1), 24 random bits
double rng_uniform_double(Rng *r);  // [0,1), 53 random bits
uint32_t rng_below(Rng *r, uint32_t n);  // uniform integer in [0, n), unbiased
double rng_normal(Rng *r);          // standard normal (Box-Muller)
// Normal(0, std) truncated to the absolute bounds [lo, hi], by rejection.
float rng_trunc_normal(Rng *r, float std, float lo, float hi);
// Sets order to 0..n-1 in a uniformly random order (Fisher-Yates, last
// element first).
void rng_shuffle_order(Rng *r, int64_t *order, int64_t n);

// Deterministic test values: x[i] = float(lo + (hi-lo)·u_i), computed in double, with
// u_i = (splitmix64(seed·2^32 + i) >> 40) / 2^24. tools/fixture_io.py computes
// the same numbers, so fixtures need not store their inputs or weights.
void fixture_fill(float *x, size_t n, uint64_t seed, float lo, float hi);

#endif
