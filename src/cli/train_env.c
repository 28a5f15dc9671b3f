// The environment's knobs of a training run (see train_env.h).
#include "train_env.h"

#include <stdlib.h>
#include <string.h>

// An integer from the environment, or `otherwise` when unset or empty.
static long long env_int(const char *name, long long otherwise) {
    const char *s = getenv(name);
    return s && *s ? strtoll(s, NULL, 10) : otherwise;
}

void train_hooks_from_env(TrainHooks *h) {
    train_hooks_default(h);
    // DINO_TRAIN_CHUNK_KIB: the CPU student's activation budget per chunk
    // (measurements, tests; docs/PERFORMANCE.md).
    long long kib = env_int("DINO_TRAIN_CHUNK_KIB", 0);
    if (getenv("DINO_TRAIN_CHUNK_KIB") && *getenv("DINO_TRAIN_CHUNK_KIB"))
        h->engine.chunk_bytes = (size_t)(kib < 1 ? 1 : kib) << 10;
    // DINO_CUDA_DEBUG_SYNC=1: wait for and check every phase of a CUDA step (docs/GPU.md).
    const char *dbg = getenv("DINO_CUDA_DEBUG_SYNC");
    h->engine.debug_sync = dbg && *dbg && strcmp(dbg, "0") != 0;
    // DINO_CUDA_GEMM: fp32, tf32 (default) or bf16 GEMMs on the GPU (docs/GPU.md).
    h->engine.cuda_gemm = getenv("DINO_CUDA_GEMM");
    // Fault injection (docs/RELIABILITY.md, docs/DISTRIBUTED.md).
    h->inject_nan_at = env_int("DINO_INJECT_NAN_AT_STEP", -1);
    h->faults.die_at = env_int("DINO_DIST_DIE_AT_STEP", -1);
    h->faults.hang_at = env_int("DINO_DIST_HANG_AT_STEP", -1);
    h->faults.rank = (int)env_int("DINO_DIST_FAULT_RANK", 1);
    // DINO_DIST_TIMEOUT: seconds a rank waits in one collective (docs/DISTRIBUTED.md).
    const char *to = getenv("DINO_DIST_TIMEOUT");
    h->dist_timeout = to ? atof(to) : 0;
    h->wait_policy_set = getenv("OMP_WAIT_POLICY") != NULL;
}
