// Helpers shared by the data tests (header-only, static): the 64-bit
// weighted hash that tools/make_data_fixtures.py stores for large uint8
// outputs, per-row sums, and the noise images rebuilt from fixture_fill.
#ifndef DINO_DATA_TESTUTIL_H
#define DINO_DATA_TESTUTIL_H

#include <stdint.h>
#include <stdlib.h>

#include "fixture.h"
#include "rng.h"

static inline uint64_t data_hash64(const uint8_t *v, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h += (uint64_t)v[i] * ((uint64_t)i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull);
    return h;
}

static inline uint64_t data_fixture_hash(const FixtureTensor *t) {
    uint64_t h = 0;
    for (int k = 0; k < 4; k++) h |= (uint64_t)t->data[k] << (16 * k);
    return h;
}

// Largest |row sum difference| between a (h, w, 3) image and stored row sums.
static inline double data_rowsum_maxdiff(const uint8_t *img, int w, int h, const FixtureTensor *rs) {
    double worst = 0;
    for (int y = 0; y < h && y < (int)rs->numel; y++) {
        double s = 0;
        for (int x = 0; x < w * 3; x++) s += img[(size_t)y * w * 3 + x];
        double d = s - rs->data[y];
        if (d < 0) d = -d;
        if (d > worst) worst = d;
    }
    return worst;
}

static inline uint8_t *data_noise(int h, int w, uint64_t seed) {
    size_t n = (size_t)h * w * 3;
    float *f = malloc(sizeof(float) * n);
    uint8_t *u = malloc(n);
    fixture_fill(f, n, seed, 0.0f, 256.0f);
    for (size_t i = 0; i < n; i++) u[i] = (uint8_t)f[i];
    free(f);
    return u;
}

// max |a - b| over n bytes against a float fixture holding uint8 values.
static inline int data_maxdiff(const uint8_t *a, const FixtureTensor *t) {
    int worst = 0;
    for (size_t i = 0; i < t->numel; i++) {
        int d = (int)a[i] - (int)t->data[i];
        if (d < 0) d = -d;
        if (d > worst) worst = d;
    }
    return worst;
}

#endif
