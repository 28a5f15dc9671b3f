// Counter-keyed random streams (splitmix64 seeding xoshiro256**) and the
// fixture value generator. See rng.h.
#include "rng.h"

#include <math.h>

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void rng_stream(Rng *r, RngDomain domain, uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t k = splitmix64((uint64_t)domain * 0x9FB21C651E98DF25ull);
    k = splitmix64(k ^ seed);
    k = splitmix64(k ^ a);
    k = splitmix64(k ^ (b * 0xD1B54A32D192ED03ull));
    k = splitmix64(k ^ (c * 0x8CB92BA72F3D8DD7ull));
    for (int i = 0; i < 4; i++) r->s[i] = k = splitmix64(k + (uint64_t)i);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t rng_u32(Rng *r) { return (uint32_t)(rng_u64(r) >> 32); }

float rng_uniform(Rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double rng_uniform_double(Rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

uint32_t rng_below(Rng *r, uint32_t n) {
    // Lemire's multiply-shift with rejection of the biased low range.
    uint64_t m = (uint64_t)rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double rng_normal(Rng *r) {
    double u1 = rng_uniform_double(r), u2 = rng_uniform_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

float rng_trunc_normal(Rng *r, float std, float lo, float hi) {
    for (;;) {
        double x = rng_normal(r) * std;
        if (x >= lo && x <= hi) return (float)x;
    }
}

void fixture_fill(float *x, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        float u = (float)(splitmix64((seed << 32) + i) >> 40) * (1.0f / 16777216.0f);
        // In double, so FMA contraction cannot change the float result.
        x[i] = (float)((double)lo + ((double)hi - (double)lo) * (double)u);
    }
}

void rng_shuffle_order(Rng *r, int64_t *order, int64_t n) {
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_uniform_double(r) * (double)(i + 1));
        if (j > i) j = i;  // u < 1, but guard the product's rounding
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}
