// Named parameter tables (see params.h).
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void param_table_init(ParamTable *t) { memset(t, 0, sizeof *t); }

void param_table_free(ParamTable *t) {
    free(t->p);
    memset(t, 0, sizeof *t);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int param_table_add(ParamTable *t, const char *prefix, const char *name, int ndim,
                    const int64_t *shape) {
    DINO_ASSERT(ndim >= 1 && ndim <= PARAM_MAX_DIMS);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->p = reallocCheck(t->p, (size_t)t->cap * sizeof *t->p);
    }
    ParamInfo *p = &t->p[t->n];
    memset(p, 0, sizeof *p);
    int len = snprintf(p->name, sizeof p->name, "%s%s", prefix ? prefix : "", name);
    DINO_ASSERT(len > 0 && len < PARAM_NAME_MAX);
    p->ndim = ndim;
    p->numel = 1;
    for (int d = 0; d < ndim; d++) {
        DINO_ASSERT(shape[d] > 0);
        p->shape[d] = shape[d];
        p->numel *= (size_t)shape[d];
    }
    p->offset = t->total;
    p->no_decay = ends_with(p->name, ".bias") || ndim == 1;
    p->trainable = 1;
    t->total += p->numel;
    return t->n++;
}

int param_table_find(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->p[i].name, name) == 0) return i;
    return -1;
}
