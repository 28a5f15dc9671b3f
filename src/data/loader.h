// The data loader: worker threads (pthreads) decode and augment samples into
// a bounded ring of prefetched Batches (src/batch.h layout). Sample order is
// a permutation keyed by (seed, epoch) with DistributedSampler semantics
// (pad to a multiple of world_size, rank takes rank::world_size), batches
// drop the last partial one when asked, and every crop's randomness is keyed
// by (seed, epoch, dataset index, crop), so a batch's bytes do not depend on
// the thread count and a run can resume at any (epoch, step).
#ifndef DINO_LOADER_H
#define DINO_LOADER_H

#include <stdint.h>

#include "batch.h"
#include "data/augment.h"
#include "data/dataset.h"

typedef enum {
    LOADER_MULTICROP = 0,  // DINO training: 2 global + n_local crops per image
    LOADER_EVAL = 1,       // one centre crop per image (eval transform), no shuffle needed
} LoaderMode;

typedef struct {
    LoaderMode mode;
    AugmentConfig aug;     // LOADER_MULTICROP
    int eval_crop;         // LOADER_EVAL: crop size (224)
    int batch_size;        // images per batch (per rank)
    uint64_t seed;
    int shuffle;           // 1: keyed permutation per epoch; 0: dataset order
    int drop_last;         // 1: drop the last partial batch
    int rank, world_size;  // sharding (world_size 1: everything)
    int threads;           // worker threads; 0 = produce on the caller's thread
    int prefetch;          // batches buffered ahead (>= 1)
    int jpeg_min_side;     // > 0: allow DCT-domain JPEG downscaling (not bit-exact with PIL)
    int max_warnings;      // bad files named individually before only counting (default 5)
} LoaderConfig;

// Defaults: multi-crop with augment_config_default, batch 64, seed 0, shuffle,
// drop_last, rank 0 of 1, 2 threads, prefetch 2, exact JPEG decoding.
void loader_config_default(LoaderConfig *cfg);

typedef struct Loader Loader;

// NULL with err filled when the dataset is empty.
Loader *loader_create(const Dataset *ds, const LoaderConfig *cfg, char *err, size_t errlen);
void loader_free(Loader *l);

// Number of samples this rank sees per epoch (after padding) and batches per epoch.
int64_t loader_samples_per_epoch(const Loader *l);
int64_t loader_steps_per_epoch(const Loader *l);
// The dataset index of position k of this rank's epoch order.
int64_t loader_index(const Loader *l, int epoch, int64_t k);

// Starts (or restarts) producing batches of `epoch` from batch `step`.
void loader_start(Loader *l, int epoch, int64_t step);
// The next batch of the current epoch, or NULL at its end or after a fatal
// error (loader_error). The batch stays valid until the next loader_next /
// loader_start / loader_free call.
const Batch *loader_next(Loader *l);
// The first fatal error met by any thread (no usable image in the whole
// dataset), reported once; NULL while there is none. It stays set.
const char *loader_error(const Loader *l);

// Unusable files met so far: unreadable, or beyond the transform's limits
// (EVAL_MAX_RESIZED_PIXELS); each is substituted by the next usable image.
int64_t loader_bad_count(const Loader *l);

// Throughput benchmark (`dino augment --bench N`): N batches from `ds`,
// returns images per second (0 for an empty dataset).
double loader_bench(const Dataset *ds, const LoaderConfig *cfg, int n_batches);

#endif
