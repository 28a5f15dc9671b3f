// Reader for the reference fixtures written by tools/fixture_io.py.
// Layout (little-endian): "DFX1", u32 count, then per tensor: u32 name length,
// name bytes, u32 ndim, i64 shape[ndim], f32 data[prod(shape)].
#ifndef DINO_FIXTURE_H
#define DINO_FIXTURE_H

#include <stdint.h>
#include <stddef.h>

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[8];
    size_t numel;
    float *data;
} FixtureTensor;

typedef struct {
    int n;
    FixtureTensor *t;
} Fixture;

// Loads tests/fixtures/<name>; exits with a message if it is missing or malformed.
Fixture fixture_load(const char *name);
// The tensor called `name`; exits with a message if there is none.
const FixtureTensor *fixture_get(const Fixture *fx, const char *name);
// Like fixture_get, but returns NULL when absent.
const FixtureTensor *fixture_find(const Fixture *fx, const char *name);
// A scalar stored as a 1-element tensor.
float fixture_scalar(const Fixture *fx, const char *name);
void fixture_free(Fixture *fx);

#endif
