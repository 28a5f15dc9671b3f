// The communication layer (see dist.h): MPI when built with -DDINO_MPI and
// launched by mpirun, a world of one otherwise. With MPI every collective is
// timed by a watchdog thread, so a rank whose peer died without taking the
// job down exits with a clear error instead of waiting for ever; MPI errors
// are returned (MPI_ERRORS_RETURN) and turned into one sentence each.
#include "train/dist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static double g_timeout = 1800.0;

double dist_timeout_seconds(void) { return g_timeout; }

static void set_timeout(double seconds) { g_timeout = seconds > 0 ? seconds : 1800.0; }

#ifndef DINO_MPI

// ---------------------------------------------------------------- world of one

int dist_compiled(void) { return 0; }
int dist_init(double timeout_seconds, char *err, size_t errlen) {
    (void)err, (void)errlen;
    set_timeout(timeout_seconds);
    return 1;
}
void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_world(void) { return 1; }
void dist_allreduce_f32(float *buf, size_t n, DistOp op) { (void)buf, (void)n, (void)op; }
void dist_allreduce_f64(double *buf, size_t n, DistOp op) { (void)buf, (void)n, (void)op; }
int dist_max_i32(int x) { return x; }
double dist_max_f64(double x) { return x; }
void dist_broadcast(void *buf, size_t nbytes, int root) { (void)buf, (void)nbytes, (void)root; }
void dist_allgather(const void *in, void *out, size_t nbytes) { memcpy(out, in, nbytes); }
void dist_barrier(void) {}

void dist_abort(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("dino: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

#else

// ---------------------------------------------------------------- MPI

#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static int g_started;  // MPI_Init was called by us
static int g_rank = 0, g_world = 1;
static _Atomic long long g_coll_since_ms;  // 0: not inside a collective
static const char *_Atomic g_coll_name;
static pthread_t g_watchdog;
static _Atomic int g_watchdog_stop;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watchdog_main(void *arg) {
    (void)arg;
    const long long limit = (long long)(dist_timeout_seconds() * 1000.0);
    while (!atomic_load(&g_watchdog_stop)) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        long long since = atomic_load(&g_coll_since_ms);
        if (since && now_ms() - since > limit) {
            fprintf(stderr,
                    "dino: error: rank %d waited %.0f s in %s for the other ranks: one of them died or hangs; "
                    "ending this rank (DINO_DIST_TIMEOUT sets the limit)\n",
                    g_rank, (double)(now_ms() - since) / 1000.0, atomic_load(&g_coll_name));
            fflush(stderr);
            _exit(1);  // mpirun then ends the rest of the job
        }
    }
    return NULL;
}

static void coll_begin(const char *name) {
    atomic_store(&g_coll_name, name);
    atomic_store(&g_coll_since_ms, now_ms());
}
static void coll_end(void) { atomic_store(&g_coll_since_ms, 0); }

static void check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fprintf(stderr, "dino: error: rank %d: %s failed: %s (another rank probably died)\n", g_rank, what, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

int dist_compiled(void) { return 1; }

int dist_init(double timeout_seconds, char *err, size_t errlen) {
    if (g_started) return g_world;
    set_timeout(timeout_seconds);
    // Only a launcher sets these; a plain `dino train` stays a world of one
    // and never touches MPI (no singleton start-up, no network probing).
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return 1;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        // Only the main thread calls MPI (the loader's and OpenMP's threads never do).
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return dino_errf(err, errlen, "MPI could not start (mpirun environment found, MPI_Init failed)");
    }
    g_started = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    if (g_world > 1 && pthread_create(&g_watchdog, NULL, watchdog_main, NULL) != 0)
        return dino_errf(err, errlen, "cannot start the MPI watchdog thread");
    return g_world;
}

void dist_finalize(void) {
    if (!g_started) return;
    if (g_world > 1) {
        atomic_store(&g_watchdog_stop, 1);
        pthread_join(g_watchdog, NULL);
    }
    MPI_Finalize();
    g_started = 0;
    g_rank = 0;
    g_world = 1;
}

int dist_rank(void) { return g_rank; }
int dist_world(void) { return g_world; }

// Σ over ranks in place with one owner per element: reduce-scatter gives
// rank r the sum of block r, all-gather copies the blocks to every rank; the
// few elements past W·blk go through rank 0 (reduce + broadcast).
static void allreduce_fixed(void *buf, size_t n, MPI_Datatype type, size_t es) {
    const size_t max_chunk = (size_t)1 << 28;  // counts are ints
    char *p = buf;
    while (n > 0) {
        size_t m = n < max_chunk * (size_t)g_world ? n : max_chunk * (size_t)g_world;
        size_t blk = m / (size_t)g_world, rem = m - blk * (size_t)g_world;
        if (blk) {
            check(MPI_Reduce_scatter_block(MPI_IN_PLACE, p, (int)blk, type, MPI_SUM, MPI_COMM_WORLD),
                  "MPI_Reduce_scatter_block");
            if (g_rank) memmove(p + (size_t)g_rank * blk * es, p, blk * es);
            check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p, (int)blk, type, MPI_COMM_WORLD),
                  "MPI_Allgather");
        }
        if (rem) {
            char *tail = p + blk * (size_t)g_world * es;
            check(MPI_Reduce(g_rank == 0 ? MPI_IN_PLACE : tail, tail, (int)rem, type, MPI_SUM, 0, MPI_COMM_WORLD),
                  "MPI_Reduce");
            check(MPI_Bcast(tail, (int)rem, type, 0, MPI_COMM_WORLD), "MPI_Bcast");
        }
        p += m * es;
        n -= m;
    }
}

void dist_allreduce_f32(float *buf, size_t n, DistOp op) {
    if (g_world <= 1 || n == 0) return;
    coll_begin("an all-reduce");
    allreduce_fixed(buf, n, MPI_FLOAT, sizeof(float));
    coll_end();
    if (op == DIST_AVG) {
        const float w = (float)g_world;
        for (size_t i = 0; i < n; i++) buf[i] /= w;
    }
}

void dist_allreduce_f64(double *buf, size_t n, DistOp op) {
    if (g_world <= 1 || n == 0) return;
    coll_begin("an all-reduce");
    allreduce_fixed(buf, n, MPI_DOUBLE, sizeof(double));
    coll_end();
    if (op == DIST_AVG)
        for (size_t i = 0; i < n; i++) buf[i] /= (double)g_world;
}

// out ← the largest in over the ranks (one element of type t).
static void allreduce_max(const void *in, void *out, MPI_Datatype t) {
    coll_begin("an all-reduce (max)");
    check(MPI_Allreduce(in, out, 1, t, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    coll_end();
}

int dist_max_i32(int x) {
    int y = x;
    if (g_world > 1) allreduce_max(&x, &y, MPI_INT);
    return y;
}

double dist_max_f64(double x) {
    double y = x;
    if (g_world > 1) allreduce_max(&x, &y, MPI_DOUBLE);
    return y;
}

void dist_broadcast(void *buf, size_t nbytes, int root) {
    if (g_world <= 1) return;
    coll_begin("a broadcast");
    const size_t max_chunk = (size_t)1 << 30;
    for (size_t o = 0; o < nbytes; o += max_chunk) {
        size_t m = nbytes - o < max_chunk ? nbytes - o : max_chunk;
        check(MPI_Bcast((char *)buf + o, (int)m, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
    coll_end();
}

void dist_allgather(const void *in, void *out, size_t nbytes) {
    if (g_world <= 1) {
        memcpy(out, in, nbytes);
        return;
    }
    DINO_ASSERT(nbytes < (size_t)1 << 30);
    coll_begin("an all-gather");
    check(MPI_Allgather(in, (int)nbytes, MPI_BYTE, out, (int)nbytes, MPI_BYTE, MPI_COMM_WORLD), "MPI_Allgather");
    coll_end();
}

void dist_barrier(void) {
    if (g_world <= 1) return;
    coll_begin("a barrier");
    check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
    coll_end();
}

void dist_abort(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (g_world > 1) fprintf(stderr, "dino: error: rank %d: ", g_rank);
    else fputs("dino: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    if (g_started && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

#endif
