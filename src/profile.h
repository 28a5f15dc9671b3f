// Optional wall-time profile of the engine by layer kind: profile_set(1)
// (`dino bench` calls it for DINO_PROFILE=1 in the environment) makes the PROF() wrappers in vit.c / head.c accumulate seconds per kind;
// when off, a wrapper costs one predictable branch on a global flag and no
// clock reads. The totals are process-wide and meant for benchmarks only
// (calls are timed from the thread that makes them, outside OpenMP regions).
#ifndef DINO_PROFILE_H
#define DINO_PROFILE_H

#include "common.h"

typedef enum {
    PROF_PATCH, PROF_LN, PROF_QKV, PROF_ATTN, PROF_PROJ, PROF_FC1, PROF_GELU, PROF_FC2,
    PROF_HEAD_MLP, PROF_HEAD_LAST,
    PROF_B_PATCH, PROF_B_LN, PROF_B_QKV, PROF_B_ATTN, PROF_B_PROJ, PROF_B_FC1, PROF_B_GELU,
    PROF_B_FC2, PROF_B_HEAD_MLP, PROF_B_HEAD_LAST, PROF_LOSS,
    PROF_NKINDS
} ProfKind;

extern int dino_prof_on;

// Turns profiling on or off.
void profile_set(int on);
void profile_reset(void);
void profile_add(ProfKind k, double seconds);
double profile_seconds(ProfKind k);
const char *profile_name(ProfKind k);

#define PROF(kind, stmt)                                        \
    do {                                                        \
        if (__builtin_expect(dino_prof_on, 0)) {                \
            double prof_t0_ = dino_now();                       \
            stmt;                                               \
            profile_add((kind), dino_now() - prof_t0_);         \
        } else {                                                \
            stmt;                                               \
        }                                                       \
    } while (0)

#endif
