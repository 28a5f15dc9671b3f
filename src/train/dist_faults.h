// Fault injection for the data-parallel tests (docs/DISTRIBUTED.md): one
// rank kills itself with SIGKILL, or sleeps for ever, before a given global
// iteration, so that the tests can check that the other ranks do not hang.
// The command line fills a DistFaults from DINO_DIST_DIE_AT_STEP,
// DINO_DIST_HANG_AT_STEP and DINO_DIST_FAULT_RANK.
#ifndef DINO_TRAIN_DIST_FAULTS_H
#define DINO_TRAIN_DIST_FAULTS_H

#include <stdint.h>

typedef struct {
    int64_t die_at;   // >= 0: rank `rank` raises SIGKILL before this iteration
    int64_t hang_at;  // >= 0: rank `rank` sleeps for ever before this iteration
    int rank;         // the rank that fails (1 by default)
} DistFaults;

// No fault.
void dist_faults_none(DistFaults *f);
// Called before every iteration `it`; does nothing unless f names this rank and it.
void dist_fault_hook(const DistFaults *f, int64_t it);

#endif
