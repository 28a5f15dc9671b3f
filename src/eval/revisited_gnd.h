// The ground truth of the revisited Oxford and Paris benchmarks
// (gnd_roxford5k.pkl, gnd_rparis6k.pkl; docs/DOWNSTREAM.md): a pickled dict
// with 'imlist' (database image names, without .jpg), 'qimlist' (query
// names) and 'gnd', one dict per query with 'easy', 'hard' and 'junk'
// database indices and 'bbx' (x0, y0, x1, y1, the query's region). Read
// with the safe pickle reader; the index lists may be Python lists or 1-D
// numpy arrays.
#ifndef DINO_EVAL_REVISITED_GND_H
#define DINO_EVAL_REVISITED_GND_H

#include <stddef.h>

// Ground-truth files larger than this are not ground truth (the real ones
// are well under 1 MB).
#define REVISITED_GND_MAX_BYTES ((size_t)256 << 20)

typedef struct {
    int *easy, *hard, *junk;
    int n_easy, n_hard, n_junk;
    double bbx[4];  // x0, y0, x1, y1
    int has_bbx;
} RevisitedQuery;

typedef struct {
    char **imlist;   // n database names
    char **qimlist;  // nq query names
    int n, nq;
    RevisitedQuery *q;  // nq
} RevisitedGnd;

// Reads and checks `path` (every index within the database). 0, or -1 with
// err naming the file and the problem.
int revisited_gnd_load(const char *path, RevisitedGnd *g, char *err, size_t errlen);
void revisited_gnd_free(RevisitedGnd *g);

#endif
