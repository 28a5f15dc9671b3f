// The fixture reader declared in fixture.h.
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static void bad(const char *path, const char *what) {
    fprintf(stderr, "fixture %s: %s (regenerate with the tools/ scripts)\n", path, what);
    exit(1);
}

Fixture fixture_load(const char *name) {
    const char *path = test_fixture_path(name);
    FILE *f = fopen(path, "rb");
    if (!f) bad(path, "cannot open");
    char magic[4];
    uint32_t count;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "DFX1", 4) != 0) bad(path, "bad magic");
    if (fread(&count, 4, 1, f) != 1 || count > 100000) bad(path, "bad count");
    Fixture fx = {.n = (int)count, .t = calloc(count, sizeof(FixtureTensor))};
    for (uint32_t i = 0; i < count; i++) {
        FixtureTensor *t = &fx.t[i];
        uint32_t len, ndim;
        if (fread(&len, 4, 1, f) != 1 || len >= sizeof t->name) bad(path, "bad name length");
        if (fread(t->name, 1, len, f) != len) bad(path, "truncated name");
        t->name[len] = 0;
        if (fread(&ndim, 4, 1, f) != 1 || ndim > 8) bad(path, "bad ndim");
        t->ndim = (int)ndim;
        t->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            if (fread(&t->shape[d], 8, 1, f) != 1 || t->shape[d] < 0) bad(path, "bad shape");
            t->numel *= (size_t)t->shape[d];
        }
        t->data = malloc(t->numel * sizeof(float) + 1);
        if (fread(t->data, sizeof(float), t->numel, f) != t->numel) bad(path, "truncated data");
    }
    fclose(f);
    return fx;
}

const FixtureTensor *fixture_find(const Fixture *fx, const char *name) {
    for (int i = 0; i < fx->n; i++)
        if (strcmp(fx->t[i].name, name) == 0) return &fx->t[i];
    return NULL;
}

const FixtureTensor *fixture_get(const Fixture *fx, const char *name) {
    const FixtureTensor *t = fixture_find(fx, name);
    if (!t) {
        fprintf(stderr, "fixture has no tensor '%s'\n", name);
        exit(1);
    }
    return t;
}

float fixture_scalar(const Fixture *fx, const char *name) { return fixture_get(fx, name)->data[0]; }

void fixture_free(Fixture *fx) {
    for (int i = 0; i < fx->n; i++) free(fx->t[i].data);
    free(fx->t);
    fx->t = NULL;
    fx->n = 0;
}
