// cosine_scheduler and numpy.linspace, evaluated element by element with the
// same operations in the same order as numpy (see schedule.h).
#include "train/schedule.h"

#include <math.h>

#include "common.h"

double np_linspace_at(double start, double stop, int64_t num, int64_t i) {
    DINO_ASSERT(num > 0 && i >= 0 && i < num);
    if (num == 1) return start;  // div = 0: numpy returns [start]
    if (i == num - 1) return stop;  // endpoint written explicitly
    double div = (double)(num - 1);
    double delta = stop - start;
    double step = delta / div;
    if (step == 0.0) return ((double)i / div) * delta + start;
    return (double)i * step + start;
}

void cosine_schedule_init(CosineSchedule *s, double base, double final, int epochs,
                          int64_t niter_per_ep, int warmup_epochs, double start_warmup) {
    s->base = base;
    s->final = final;
    s->start_warmup = start_warmup;
    s->warmup_iters = warmup_epochs > 0 ? (int64_t)warmup_epochs * niter_per_ep : 0;
    s->total_iters = (int64_t)epochs * niter_per_ep;
}

double cosine_schedule_at(const CosineSchedule *s, int64_t it) {
    DINO_ASSERT(it >= 0 && it < s->total_iters);
    if (it < s->warmup_iters) return np_linspace_at(s->start_warmup, s->base, s->warmup_iters, it);
    int64_t L = s->total_iters - s->warmup_iters;
    double i = (double)(it - s->warmup_iters);
    // final + 0.5·(base − final)·(1 + cos(π·i/L)), in numpy's evaluation order.
    double c = 1.0 + cos(M_PI * i / (double)L);
    return s->final + 0.5 * (s->base - s->final) * c;
}
