// Per-iteration schedules of DINO training (docs/DINO.md §6): the reference's
// cosine_scheduler — a numpy linspace warm-up (both ends included), then a
// cosine from base to final over the remaining iterations — evaluated in
// double exactly as numpy does, at any global iteration without building the
// table. Learning rate, weight decay and teacher momentum all use it.
#ifndef DINO_TRAIN_SCHEDULE_H
#define DINO_TRAIN_SCHEDULE_H

#include <stdint.h>

typedef struct {
    double base, final, start_warmup;
    int64_t warmup_iters;  // warmup_epochs · niter_per_ep
    int64_t total_iters;   // epochs · niter_per_ep
} CosineSchedule;

void cosine_schedule_init(CosineSchedule *s, double base, double final, int epochs,
                          int64_t niter_per_ep, int warmup_epochs, double start_warmup);
// Value at global iteration it (0 <= it < total_iters).
double cosine_schedule_at(const CosineSchedule *s, int64_t it);

// numpy.linspace(start, stop, num)[i].
double np_linspace_at(double start, double stop, int64_t num, int64_t i);

#endif
