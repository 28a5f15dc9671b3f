// Shared helpers for every module: checked allocation and I/O that report the
// file and line on failure, user-facing errors, a monotonic clock, and the one
// place that sets how many threads OpenMP and OpenBLAS may use.
#ifndef DINO_COMMON_H
#define DINO_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Internal invariant that stays on in release builds (like GGML_ASSERT).
#define DINO_ASSERT(cond)                                                        \
    do {                                                                         \
        if (!(cond)) dino_fatal_at(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

void dino_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

// A user's mistake (bad flag, unreadable file): one sentence, exit status 1.
void dino_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void dino_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dino_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Formats a message into err (when err is not NULL) and returns -1, for
// functions that report failure through an error buffer.
int dino_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void *dino_malloc_at(size_t n, const char *file, int line);
void *dino_calloc_at(size_t count, size_t size, const char *file, int line);
void *dino_realloc_at(void *p, size_t n, const char *file, int line);
// 64-byte aligned, for SIMD kernels and GEMM operands. Free with free().
void *dino_aligned_alloc_at(size_t n, const char *file, int line);
#define mallocCheck(n) dino_malloc_at((n), __FILE__, __LINE__)
#define callocCheck(c, s) dino_calloc_at((c), (s), __FILE__, __LINE__)
#define reallocCheck(p, n) dino_realloc_at((p), (n), __FILE__, __LINE__)
#define alignedAllocCheck(n) dino_aligned_alloc_at((n), __FILE__, __LINE__)

FILE *dino_fopen_at(const char *path, const char *mode, const char *file, int line);
void dino_fread_at(void *p, size_t size, size_t n, FILE *f, const char *file, int line);
void dino_fwrite_at(const void *p, size_t size, size_t n, FILE *f, const char *file, int line);
#define fopenCheck(path, mode) dino_fopen_at((path), (mode), __FILE__, __LINE__)
#define freadCheck(p, s, n, f) dino_fread_at((p), (s), (n), (f), __FILE__, __LINE__)
#define fwriteCheck(p, s, n, f) dino_fwrite_at((p), (s), (n), (f), __FILE__, __LINE__)

// Creates the folder `path` and any missing parents (mkdir -p). 0, or -1 with
// err naming the folder and the reason.
int dino_make_dirs(const char *path, char *err, size_t errlen);

// Seconds on a monotonic clock.
double dino_now(void);

// The shortest decimal that reads back as the same double (0.0005, not
// 0.00050000000000000001), for messages and --help.
void dino_format_double(char *buf, size_t n, double v);

// Sets the thread count of OpenMP and OpenBLAS together (n <= 0: all cores).
// Our kernels never call BLAS from inside a parallel region, so the two pools
// never run at once and the cores are not oversubscribed.
void dino_set_threads(int n);
int dino_get_threads(void);
// Runnable tasks (threads) on the machine other than the caller, from
// /proc/loadavg; -1 where that file cannot be read.
int dino_other_running_tasks(void);

#endif
