// Loader implementation (see loader.h). Work is split per sample: workers
// take the next sample job in order from a shared counter, write its crops
// straight into the batch slot of its step, and the consumer waits for a
// slot whose samples are all done. A step may only be filled once the step
// Q earlier has been handed back, which bounds memory to Q batches. Each
// sample's pixels depend only on (seed, epoch, dataset index, crop) and the
// image, so the bytes are identical for any thread count.
#include "data/loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "image/ops.h"
#include "rng.h"

typedef struct {
    Batch b;
    int64_t step;  // the step this slot holds or will hold
    int done;      // samples finished
} Slot;

struct Loader {
    const Dataset *ds;
    LoaderConfig cfg;
    int n_groups;
    int group_size[BATCH_MAX_GROUPS], group_crops[BATCH_MAX_GROUPS];
    int64_t n;              // dataset size
    int64_t per_rank;       // samples per rank per epoch
    int64_t steps;
    int64_t *order;         // this epoch's dataset indices for this rank
    int epoch;
    int64_t start_step, next_step, released;  // released: steps < released are handed back
    int holding;            // the consumer holds step next_step-1
    Slot *slots;
    int Q;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_space, cv_ready;
    int64_t next_job, end_job;
    int stop;
    char error[1024];       // the first fatal error of any thread; "" while none
    _Atomic uint8_t *bad;   // per dataset index: 0 unknown, 1 unreadable, 2 readable
    _Atomic int64_t bad_count;
    pthread_mutex_t warn_mu;
};

void loader_config_default(LoaderConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->mode = LOADER_MULTICROP;
    augment_config_default(&cfg->aug);
    cfg->eval_crop = 224;
    cfg->batch_size = 64;
    cfg->seed = 0;
    cfg->shuffle = 1;
    cfg->drop_last = 1;
    cfg->rank = 0;
    cfg->world_size = 1;
    cfg->threads = 2;
    cfg->prefetch = 2;
    cfg->jpeg_min_side = 0;
    cfg->max_warnings = 5;
}

// ---------------------------------------------------------------- order

// Position k (0 <= k < per_rank) of this rank's order for `epoch`.
static void build_order(const Loader *l, int epoch, int64_t *out) {
    int64_t n = l->n;
    int64_t *perm = mallocCheck(sizeof(int64_t) * (size_t)n);
    if (l->cfg.shuffle) {
        Rng r;
        rng_stream(&r, RNG_DATA_ORDER, l->cfg.seed, (uint64_t)epoch, 0, 0);
        rng_shuffle_order(&r, perm, n);
    } else {
        for (int64_t k = 0; k < n; k++) perm[k] = k;
    }
    // DistributedSampler: pad to per_rank·world by wrapping, take rank::world.
    for (int64_t k = 0; k < l->per_rank; k++) {
        int64_t g = l->cfg.rank + k * l->cfg.world_size;
        out[k] = perm[g % n];
    }
    free(perm);
}

int64_t loader_index(const Loader *l, int epoch, int64_t k) {
    DINO_ASSERT(k >= 0 && k < l->per_rank);
    if (epoch == l->epoch && l->order) return l->order[k];
    int64_t *o = mallocCheck(sizeof(int64_t) * (size_t)l->per_rank);
    build_order(l, epoch, o);
    int64_t v = o[k];
    free(o);
    return v;
}

int64_t loader_samples_per_epoch(const Loader *l) { return l->per_rank; }
int64_t loader_steps_per_epoch(const Loader *l) { return l->steps; }
int64_t loader_bad_count(const Loader *l) { return atomic_load(&l->bad_count); }
const char *loader_error(const Loader *l) { return l->error[0] ? l->error : NULL; }

static int batch_size_of(const Loader *l, int64_t step) {
    int64_t left = l->per_rank - step * l->cfg.batch_size;
    return (int)(left < l->cfg.batch_size ? left : l->cfg.batch_size);
}

// ---------------------------------------------------------------- samples

// Records the first fatal error and stops the workers; the consumer returns
// it from loader_next. Later errors (another thread's same finding) are dropped.
static void fail(Loader *l, const char *msg) {
    pthread_mutex_lock(&l->mu);
    if (!l->error[0]) snprintf(l->error, sizeof l->error, "%s", msg);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv_space);
    pthread_cond_broadcast(&l->cv_ready);
    pthread_mutex_unlock(&l->mu);
}

// Decodes image k and checks that this loader's transform can handle it
// within its limits. 0, or -1 with err naming the file.
static int load_usable(Loader *l, int64_t k, Image *im, char *err, size_t errlen) {
    int min_side = l->cfg.jpeg_min_side > 0 ? l->cfg.jpeg_min_side : 0;
    if (dataset_load(l->ds, k, min_side, im, err, errlen) != 0) return -1;
    int nw, nh;
    char why[512];
    if (l->cfg.mode == LOADER_EVAL &&
        eval_resize_dims(im->w, im->h, l->cfg.eval_crop, &nw, &nh, why, sizeof why) != 0) {
        char name[512];
        dataset_image_name(l->ds, k, name, sizeof name);
        snprintf(err, errlen, "%.500s: %.500s", name, why);
        image_free(im);
        return -1;
    }
    return 0;
}

// Loads dataset index idx, or the next usable one (wrapping), remembering
// which files are unusable. Returns the index actually loaded, or -1 when no
// image of the dataset is usable.
static int64_t load_good(Loader *l, int64_t idx, Image *im) {
    char err[1024];
    for (int64_t t = 0; t < l->n; t++) {
        int64_t k = (idx + t) % l->n;
        if (atomic_load(&l->bad[k]) == 1) continue;
        if (load_usable(l, k, im, err, sizeof err) == 0) {
            atomic_store(&l->bad[k], 2);
            return k;
        }
        uint8_t expect = 0;
        if (atomic_compare_exchange_strong(&l->bad[k], &expect, 1)) {
            int64_t c = atomic_fetch_add(&l->bad_count, 1) + 1;
            pthread_mutex_lock(&l->warn_mu);
            if (c <= l->cfg.max_warnings) dino_warn("skipping unreadable image: %s", err);
            else if (c == l->cfg.max_warnings + 1)
                dino_warn("more unreadable images; only counting them from now on");
            pthread_mutex_unlock(&l->warn_mu);
        } else {
            atomic_store(&l->bad[k], 1);
        }
    }
    return -1;
}

// Fills sample slot_b of step's batch. Returns 0, or -1 after recording the
// loader's fatal error.
static int do_sample(Loader *l, Batch *b, int bsz, int64_t step, int slot_b, uint8_t *scratch) {
    int64_t pos = step * l->cfg.batch_size + slot_b;
    int64_t idx = l->order[pos];
    Image im;
    int64_t got = load_good(l, idx, &im);
    if (got < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: no readable image in the dataset (%lld files tried)",
                 dataset_describe(l->ds), (long long)l->n);
        fail(l, msg);
        return -1;
    }
    b->indices[slot_b] = got;
    b->labels[slot_b] = dataset_label(l->ds, got);
    if (l->cfg.mode == LOADER_EVAL) {
        int S = l->cfg.eval_crop;
        eval_transform_u8(&im, S, scratch);
        float *dst = b->groups[0].pixels + (size_t)slot_b * 3 * S * S;
        image_to_tensor(dst, scratch, S, S, IMAGENET_MEAN, IMAGENET_STD);
    } else {
        int crop = 0;
        for (int g = 0; g < l->n_groups; g++) {
            int S = l->group_size[g];
            for (int c = 0; c < l->group_crops[g]; c++, crop++) {
                CropParams p;
                // Keyed by the requested index, so a substitute sample is still deterministic.
                augment_params_for(&l->cfg.aug, l->cfg.seed, l->epoch, idx, crop, im.w, im.h, &p);
                float *dst = b->groups[g].pixels + ((size_t)c * bsz + slot_b) * 3 * S * S;
                augment_apply(&im, &p, S, dst, scratch);
            }
        }
    }
    image_free(&im);
    return 0;
}

static size_t scratch_bytes(const Loader *l) {
    int S = l->cfg.mode == LOADER_EVAL ? l->cfg.eval_crop : 0;
    for (int g = 0; g < l->n_groups; g++)
        if (l->group_size[g] > S) S = l->group_size[g];
    return (size_t)S * S * 3;
}

static void *worker_main(void *arg) {
    Loader *l = arg;
    uint8_t *scratch = mallocCheck(scratch_bytes(l));
    int B = l->cfg.batch_size;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_job < l->end_job &&
               l->start_step + l->next_job / B >= l->released + l->Q)
            pthread_cond_wait(&l->cv_space, &l->mu);
        if (l->stop || l->next_job >= l->end_job) break;
        int64_t job = l->next_job++;
        int64_t step = l->start_step + job / B;
        int sb = (int)(job % B);
        Slot *s = &l->slots[(step - l->start_step) % l->Q];
        int bsz = batch_size_of(l, step);
        pthread_mutex_unlock(&l->mu);
        int rc = do_sample(l, &s->b, bsz, step, sb, scratch);
        pthread_mutex_lock(&l->mu);
        if (rc != 0) break;
        if (++s->done == bsz) pthread_cond_broadcast(&l->cv_ready);
    }
    pthread_mutex_unlock(&l->mu);
    free(scratch);
    return NULL;
}

static void stop_workers(Loader *l) {
    if (!l->n_threads) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv_space);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->n_threads; t++) pthread_join(l->threads[t], NULL);
    free(l->threads);
    l->threads = NULL;
    l->n_threads = 0;
}

Loader *loader_create(const Dataset *ds, const LoaderConfig *cfg, char *err, size_t errlen) {
    DINO_ASSERT(cfg->batch_size > 0 && cfg->world_size > 0 && cfg->rank >= 0 &&
                cfg->rank < cfg->world_size);
    Loader *l = callocCheck(1, sizeof(Loader));
    l->ds = ds;
    l->cfg = *cfg;
    if (l->cfg.prefetch < 1) l->cfg.prefetch = 1;
    if (l->cfg.threads < 0) l->cfg.threads = 0;
    l->n = dataset_size(ds);
    if (l->n <= 0) {
        free(l);
        dino_errf(err, errlen, "%s: the dataset is empty", dataset_describe(ds));
        return NULL;
    }
    l->per_rank = (l->n + cfg->world_size - 1) / cfg->world_size;
    l->steps = cfg->drop_last ? l->per_rank / cfg->batch_size
                              : (l->per_rank + cfg->batch_size - 1) / cfg->batch_size;
    if (cfg->mode == LOADER_EVAL) {
        l->n_groups = 1;
        l->group_size[0] = cfg->eval_crop;
        l->group_crops[0] = 1;
    } else {
        l->n_groups = cfg->aug.n_local > 0 ? 2 : 1;
        l->group_size[0] = cfg->aug.global_size;
        l->group_crops[0] = 2;
        l->group_size[1] = cfg->aug.local_size;
        l->group_crops[1] = cfg->aug.n_local;
    }
    l->Q = l->cfg.prefetch;
    l->slots = callocCheck((size_t)l->Q, sizeof(Slot));
    for (int q = 0; q < l->Q; q++) {
        Batch *b = &l->slots[q].b;
        b->n_groups = l->n_groups;
        for (int g = 0; g < l->n_groups; g++) {
            size_t S = (size_t)l->group_size[g];
            b->groups[g].size = (int)S;
            b->groups[g].n_crops = l->group_crops[g];
            b->groups[g].pixels = alignedAllocCheck(sizeof(float) * (size_t)l->group_crops[g] *
                                                    cfg->batch_size * 3 * S * S);
        }
        b->labels = mallocCheck(sizeof(int32_t) * (size_t)cfg->batch_size);
        b->indices = mallocCheck(sizeof(int64_t) * (size_t)cfg->batch_size);
    }
    l->order = mallocCheck(sizeof(int64_t) * (size_t)l->per_rank);
    l->bad = callocCheck((size_t)l->n, 1);
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->warn_mu, NULL);
    pthread_cond_init(&l->cv_space, NULL);
    pthread_cond_init(&l->cv_ready, NULL);
    l->epoch = -1;
    return l;
}

void loader_start(Loader *l, int epoch, int64_t step) {
    stop_workers(l);
    if (step < 0) step = 0;
    if (step > l->steps) step = l->steps;
    if (epoch != l->epoch) build_order(l, epoch, l->order);
    l->epoch = epoch;
    l->start_step = l->next_step = l->released = step;
    l->holding = 0;
    l->stop = l->error[0] != 0;  // a fatal error stays: no worker restarts
    l->next_job = 0;
    l->end_job = 0;
    for (int64_t s = step; s < l->steps; s++) l->end_job += batch_size_of(l, s);
    // end_job counts samples; jobs map to (step, b) by division by B, which
    // holds because only the very last batch can be short.
    for (int q = 0; q < l->Q; q++) {
        l->slots[q].step = step + q;
        l->slots[q].done = 0;
    }
    l->n_threads = l->cfg.threads;
    if (l->n_threads > 0) {
        l->threads = mallocCheck(sizeof(pthread_t) * (size_t)l->n_threads);
        for (int t = 0; t < l->n_threads; t++)
            if (pthread_create(&l->threads[t], NULL, worker_main, l) != 0) {
                // Fewer workers, or none (loader_next then builds each batch
                // itself): the batches are the same, only slower.
                dino_warn("cannot start loader thread %d; going on with %d", t, t);
                l->n_threads = t;
                break;
            }
        if (!l->n_threads) {
            free(l->threads);
            l->threads = NULL;
        }
    }
}

const Batch *loader_next(Loader *l) {
    DINO_ASSERT(l->epoch >= 0);  // loader_start first
    int B = l->cfg.batch_size;
    pthread_mutex_lock(&l->mu);
    if (l->holding) {
        // Hand back the slot of the previous step: it now waits for step + Q.
        Slot *s = &l->slots[(l->released - l->start_step) % l->Q];
        s->step = l->released + l->Q;
        s->done = 0;
        l->released++;
        l->holding = 0;
        pthread_cond_broadcast(&l->cv_space);
    }
    if (l->next_step >= l->steps || l->error[0]) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    int64_t step = l->next_step;
    Slot *s = &l->slots[(step - l->start_step) % l->Q];
    int bsz = batch_size_of(l, step);
    if (l->n_threads == 0) {
        pthread_mutex_unlock(&l->mu);
        uint8_t *scratch = mallocCheck(scratch_bytes(l));
        int rc = 0;
        for (int b = 0; b < bsz && rc == 0; b++) rc = do_sample(l, &s->b, bsz, step, b, scratch);
        free(scratch);
        pthread_mutex_lock(&l->mu);
        l->next_job += bsz;
    } else {
        while (s->done < bsz && !l->error[0]) pthread_cond_wait(&l->cv_ready, &l->mu);
    }
    if (l->error[0]) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    (void)B;
    s->b.B = bsz;
    s->b.epoch = l->epoch;
    s->b.step = step;
    l->next_step++;
    l->holding = 1;
    pthread_mutex_unlock(&l->mu);
    return &s->b;
}

void loader_free(Loader *l) {
    if (!l) return;
    stop_workers(l);
    int64_t bad = atomic_load(&l->bad_count);
    if (bad > l->cfg.max_warnings)
        dino_warn("%lld unreadable images were skipped in total", (long long)bad);
    for (int q = 0; q < l->Q; q++) {
        for (int g = 0; g < l->n_groups; g++) free(l->slots[q].b.groups[g].pixels);
        free(l->slots[q].b.labels);
        free(l->slots[q].b.indices);
    }
    free(l->slots);
    free(l->order);
    free((void *)l->bad);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->warn_mu);
    pthread_cond_destroy(&l->cv_space);
    pthread_cond_destroy(&l->cv_ready);
    free(l);
}

double loader_bench(const Dataset *ds, const LoaderConfig *cfg, int n_batches) {
    Loader *l = loader_create(ds, cfg, NULL, 0);
    if (!l) return 0;  // an empty dataset
    int64_t images = 0;
    int epoch = 0;
    double t0 = dino_now();
    loader_start(l, epoch, 0);
    for (int k = 0; k < n_batches; k++) {
        const Batch *b = loader_next(l);
        if (!b) {
            loader_start(l, ++epoch, 0);
            b = loader_next(l);
            if (!b) break;
        }
        images += b->B;
    }
    double dt = dino_now() - t0;
    loader_free(l);
    return dt > 0 ? (double)images / dt : 0.0;
}
