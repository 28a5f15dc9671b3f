// Implementation of the shared helpers declared in common.h.
#include "common.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void dino_fatal_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dino: internal error at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void dino_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("dino: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void dino_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("dino: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void dino_info(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int dino_errf(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void *dino_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) dino_fatal_at(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *dino_calloc_at(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) dino_fatal_at(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *dino_realloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) dino_fatal_at(file, line, "out of memory reallocating %zu bytes", n);
    return q;
}

void *dino_aligned_alloc_at(size_t n, const char *file, int line) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0)
        dino_fatal_at(file, line, "out of memory allocating %zu aligned bytes", n);
    return p;
}

FILE *dino_fopen_at(const char *path, const char *mode, const char *file, int line) {
    FILE *f = fopen(path, mode);
    if (!f) {
        fprintf(stderr, "dino: error: cannot open %s (%s) [%s:%d]\n", path, strerror(errno),
                file, line);
        exit(1);
    }
    return f;
}

void dino_fread_at(void *p, size_t size, size_t n, FILE *f, const char *file, int line) {
    if (fread(p, size, n, f) != n)
        dino_fatal_at(file, line, "short read (%s)", feof(f) ? "unexpected end of file" : strerror(errno));
}

void dino_fwrite_at(const void *p, size_t size, size_t n, FILE *f, const char *file, int line) {
    if (fwrite(p, size, n, f) != n) dino_fatal_at(file, line, "write failed (%s)", strerror(errno));
}

double dino_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dino_format_double(char *buf, size_t n, double v) {
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static int g_threads = 0;

void dino_set_threads(int n) {
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int dino_get_threads(void) { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

int dino_other_running_tasks(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1;
    // "0.52 0.58 0.59 R/T last_pid": R counts runnable threads, the reader included.
    int running = 0, total = 0;
    int ok = fscanf(f, "%*f %*f %*f %d/%d", &running, &total) == 2;
    fclose(f);
    return ok && running >= 1 ? running - 1 : -1;
}

int dino_make_dirs(const char *path, char *err, size_t errlen) {
    char buf[4096];
    if (!*path || strlen(path) >= sizeof buf)
        return dino_errf(err, errlen, "cannot create the folder '%s': bad path", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) break;
        *p = '/';
    }
    if (mkdir(path, 0777) && errno != EEXIST) {
        dino_errf(err, errlen, "cannot create the folder %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        dino_errf(err, errlen, "cannot create the folder %s: a file of that name is in the way", path);
        return -1;
    }
    return 0;
}
