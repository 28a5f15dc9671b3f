// Per-layer-kind wall-time totals for DINO_PROFILE=1 (see profile.h).
#include "profile.h"

#include <string.h>

int dino_prof_on = 0;
static double prof_total[PROF_NKINDS];

static const char *const prof_names[PROF_NKINDS] = {
    "fwd patch embed", "fwd layernorm", "fwd qkv linear", "fwd attention", "fwd proj linear",
    "fwd fc1 linear", "fwd gelu", "fwd fc2 linear", "fwd head mlp", "fwd head last layer",
    "bwd patch embed", "bwd layernorm", "bwd qkv linear", "bwd attention", "bwd proj linear",
    "bwd fc1 linear", "bwd gelu", "bwd fc2 linear", "bwd head mlp", "bwd head last layer",
    "loss (in the step)",
};

void profile_set(int on) { dino_prof_on = on != 0; }

void profile_reset(void) { memset(prof_total, 0, sizeof prof_total); }

void profile_add(ProfKind k, double seconds) { prof_total[k] += seconds; }

double profile_seconds(ProfKind k) { return prof_total[k]; }

const char *profile_name(ProfKind k) { return prof_names[k]; }
