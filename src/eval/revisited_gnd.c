#include "eval/revisited_gnd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/pickle.h"

static uint8_t *read_all(const char *path, size_t *n, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open the ground-truth file", path);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = mallocCheck(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len > REVISITED_GND_MAX_BYTES) {
            snprintf(err, errlen, "%s: larger than %zu MB, not a ground-truth file", path,
                     REVISITED_GND_MAX_BYTES >> 20);
            fclose(f);
            free(buf);
            return NULL;
        }
        if (len == cap) buf = reallocCheck(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        free(buf);
        return NULL;
    }
    *n = len;
    return buf;
}

// A list of names (str) into a fresh array; -1 on a non-string.
static int names_from(const PickleValue *v, char ***out, int *n) {
    if (!v || (v->type != PV_LIST && v->type != PV_TUPLE) || v->n > (size_t)1 << 30) return -1;
    char **s = callocCheck(v->n ? v->n : 1, sizeof(char *));
    for (size_t i = 0; i < v->n; i++) {
        const PickleValue *x = v->items[i];
        if (x->type != PV_STR && x->type != PV_BYTES) {
            for (size_t k = 0; k < i; k++) free(s[k]);
            free(s);
            return -1;
        }
        s[i] = mallocCheck(x->len + 1);
        memcpy(s[i], x->s, x->len + 1);
    }
    *out = s;
    *n = (int)v->n;
    return 0;
}

// Indices into a database of n images; a missing key is an empty list
// (revisitop's Hard setting leaves queries with no hard positives).
static int indices_from(const PickleValue *v, int n, int **out, int *count, const char **why) {
    *out = NULL;
    *count = 0;
    if (!v) return 0;
    if (v->type != PV_LIST && v->type != PV_TUPLE) {
        *why = "is not a list or array";
        return -1;
    }
    int *ix = mallocCheck(sizeof(int) * (v->n ? v->n : 1));
    for (size_t i = 0; i < v->n; i++) {
        const PickleValue *x = v->items[i];
        // Arrays built from an empty MATLAB list come out as float64.
        double val = x->type == PV_INT ? (double)x->i : x->type == PV_FLOAT ? x->f : -1;
        if ((x->type != PV_INT && x->type != PV_FLOAT) || val != (double)(int64_t)val ||
            val < 0 || val >= n) {
            free(ix);
            *why = "holds something that is not an index of the database";
            return -1;
        }
        ix[i] = (int)val;
    }
    *out = ix;
    *count = (int)v->n;
    return 0;
}

int revisited_gnd_load(const char *path, RevisitedGnd *g, char *err, size_t errlen) {
    memset(g, 0, sizeof *g);
    size_t n;
    uint8_t *buf = read_all(path, &n, err, errlen);
    if (!buf) return -1;
    PickleDoc *doc = pickle_parse(buf, n, path, err, errlen);
    free(buf);
    if (!doc) return -1;
    const PickleValue *root = pickle_root(doc);
    const PickleValue *gnd = pickle_dict_get(root, "gnd");
    if (root->type != PV_DICT || !gnd) {
        snprintf(err, errlen, "%s: not a revisited-benchmark ground truth (a dict with 'gnd', "
                 "'imlist' and 'qimlist')", path);
        goto fail;
    }
    if (names_from(pickle_dict_get(root, "imlist"), &g->imlist, &g->n) != 0 ||
        names_from(pickle_dict_get(root, "qimlist"), &g->qimlist, &g->nq) != 0) {
        snprintf(err, errlen, "%s: 'imlist' and 'qimlist' must be lists of image names", path);
        goto fail;
    }
    if (gnd->type != PV_LIST || (int64_t)gnd->n != g->nq) {
        snprintf(err, errlen, "%s: 'gnd' must be a list with one entry per query (%d queries)",
                 path, g->nq);
        goto fail;
    }
    g->q = callocCheck(g->nq ? (size_t)g->nq : 1, sizeof(RevisitedQuery));
    for (int i = 0; i < g->nq; i++) {
        const PickleValue *e = gnd->items[i];
        RevisitedQuery *q = &g->q[i];
        const char *why = NULL, *key = "";
        if (e->type != PV_DICT) {
            snprintf(err, errlen, "%s: gnd[%d] is not a dict", path, i);
            goto fail;
        }
        if ((key = "easy", indices_from(pickle_dict_get(e, key), g->n, &q->easy, &q->n_easy, &why)) ||
            (key = "hard", indices_from(pickle_dict_get(e, key), g->n, &q->hard, &q->n_hard, &why)) ||
            (key = "junk", indices_from(pickle_dict_get(e, key), g->n, &q->junk, &q->n_junk, &why))) {
            snprintf(err, errlen, "%s: gnd[%d]['%s'] %s (%d images)", path, i, key, why, g->n);
            goto fail;
        }
        const PickleValue *b = pickle_dict_get(e, "bbx");
        if (b && b->type != PV_NONE) {
            if ((b->type != PV_LIST && b->type != PV_TUPLE) || b->n != 4) {
                snprintf(err, errlen, "%s: gnd[%d]['bbx'] is not 4 numbers", path, i);
                goto fail;
            }
            for (int k = 0; k < 4; k++) {
                const PickleValue *x = b->items[k];
                if (x->type != PV_INT && x->type != PV_FLOAT) {
                    snprintf(err, errlen, "%s: gnd[%d]['bbx'] is not 4 numbers", path, i);
                    goto fail;
                }
                q->bbx[k] = x->type == PV_INT ? (double)x->i : x->f;
            }
            q->has_bbx = 1;
        }
    }
    pickle_free(doc);
    return 0;
fail:
    pickle_free(doc);
    revisited_gnd_free(g);
    return -1;
}

void revisited_gnd_free(RevisitedGnd *g) {
    for (int i = 0; i < g->n && g->imlist; i++) free(g->imlist[i]);
    for (int i = 0; i < g->nq && g->qimlist; i++) free(g->qimlist[i]);
    for (int i = 0; i < g->nq && g->q; i++) {
        free(g->q[i].easy);
        free(g->q[i].hard);
        free(g->q[i].junk);
    }
    free(g->imlist);
    free(g->qimlist);
    free(g->q);
    memset(g, 0, sizeof *g);
}
