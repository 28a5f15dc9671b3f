// The data-parallel fault injection (see dist_faults.h).
#include "train/dist_faults.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "train/dist.h"

void dist_faults_none(DistFaults *f) {
    f->die_at = f->hang_at = -1;
    f->rank = 1;
}

void dist_fault_hook(const DistFaults *f, int64_t it) {
    if (!f || (f->die_at < 0 && f->hang_at < 0)) return;
    const int who = f->rank;
    if (dist_rank() != who) return;
    if (it == f->die_at) {
        fprintf(stderr, "dino: test hook: rank %d kills itself before iteration %lld (DINO_DIST_DIE_AT_STEP)\n", who,
                (long long)it);
        fflush(stderr);
        raise(SIGKILL);
    }
    if (it == f->hang_at) {
        fprintf(stderr, "dino: test hook: rank %d hangs before iteration %lld (DINO_DIST_HANG_AT_STEP)\n", who,
                (long long)it);
        fflush(stderr);
        for (;;) pause();
    }
}
