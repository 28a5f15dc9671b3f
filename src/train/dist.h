// The communication layer of data-parallel training: rank, world size,
// all-reduce of float/double buffers, broadcast, all-gather, barrier, abort.
// Built with MPI when the Makefile finds it (-DDINO_MPI, docs/DISTRIBUTED.md);
// otherwise, or when the process was not started by a launcher (mpirun), it is
// a world of one where every collective returns at once. The trainer calls
// these functions unconditionally, so it has no #ifdefs. A future GPU backend
// replaces the float all-reduce with NCCL's on device buffers at the same call
// sites. The process-wide communicator is the one piece of global state here:
// it is the process's, not the model's.
#ifndef DINO_TRAIN_DIST_H
#define DINO_TRAIN_DIST_H

#include <stddef.h>

typedef enum { DIST_SUM = 0, DIST_AVG = 1 } DistOp;

// 1 when this build can run distributed (compiled with MPI).
int dist_compiled(void);
// Starts MPI when the process was launched by mpirun (its environment says
// so); idempotent. timeout_seconds: see dist_timeout_seconds (<= 0: the
// default). Returns the world size, or -1 with err filled when MPI cannot
// start.
int dist_init(double timeout_seconds, char *err, size_t errlen);
// Finalizes MPI if dist_init started it (call once, at the end of the run).
void dist_finalize(void);
int dist_rank(void);   // 0 .. world-1 (0 before dist_init)
int dist_world(void);  // 1 before dist_init or without a launcher

// buf ← Σ over ranks (DIST_AVG: then divided by the world size), in place.
// The sum of each element is computed once, on one rank, and copied to the
// others (reduce-scatter + all-gather), so every rank holds the same bits and
// the order of the additions is fixed for a given world size.
void dist_allreduce_f32(float *buf, size_t n, DistOp op);
void dist_allreduce_f64(double *buf, size_t n, DistOp op);
// The largest value of x over the ranks (flags: "did any rank ...").
int dist_max_i32(int x);
double dist_max_f64(double x);
// Copies root's nbytes at buf to every rank.
void dist_broadcast(void *buf, size_t nbytes, int root);
// out (world·nbytes) ← every rank's nbytes at in, in rank order.
void dist_allgather(const void *in, void *out, size_t nbytes);
void dist_barrier(void);
// Ends every rank of the job with status `code` after printing the message
// (prefixed with this rank) on stderr. Works without MPI (plain exit).
void dist_abort(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

// Seconds a rank waits inside one collective before it concludes that
// another rank died or hangs and aborts the job (dist_init's; the command
// line reads DINO_DIST_TIMEOUT; default 1800: rank 0 alone writes
// checkpoints and runs the k-NN hook meanwhile).
double dist_timeout_seconds(void);

#endif
