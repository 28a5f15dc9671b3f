// The test harness declared in testlib.h.
#include "testlib.h"

#include "gemm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_pass, g_fail;

void test_check(int ok, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (ok) {
        g_pass++;
        printf("ok   ");
    } else {
        g_fail++;
        printf("FAIL %s:%d: ", file, line);
    }
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

int test_close(const char *what, const float *got, const float *want, size_t n, double atol,
               double rtol) {
    double max_abs = 0, max_rel = 0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w);
        int nan_mismatch = isnan(g) != isnan(w);
        if (nan_mismatch) d = INFINITY;
        if (d > max_abs) { max_abs = d; worst = i; }
        double rel = d / (fabs(w) > 1e-30 ? fabs(w) : 1e-30);
        if (fabs(w) > atol && rel > max_rel) max_rel = rel;
        if (!(d <= atol + rtol * fabs(w))) bad++;
    }
    test_check(bad == 0, __FILE__, __LINE__,
               "%s: n=%zu max_abs=%.3g max_rel=%.3g (atol %.1g rtol %.1g)%s", what, n, max_abs,
               max_rel, atol, rtol, bad ? "" : "");
    if (bad)
        printf("     %zu elements out of tolerance; worst at %zu: got %.9g want %.9g\n", bad, worst,
               got[worst], want[worst]);
    return bad == 0;
}

int test_finish(void) {
    printf("checks: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}

const char *test_fixture_path(const char *name) {
    static char buf[4][1024];
    static int slot;
    char *out = buf[slot++ & 3];
    const char *roots[] = {"tests/fixtures/", "../tests/fixtures/", "fixtures/"};
    for (int i = 0; i < 3; i++) {
        snprintf(out, 1024, "%s%s", roots[i], name);
        if (access(out, R_OK) == 0) return out;
    }
    snprintf(out, 1024, "tests/fixtures/%s", name);
    return out;
}

static char g_tmpdir[256];

const char *test_tmpdir(const char *tag) {
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/dino_test_%s_%d", tag, (int)getpid());
    mkdir(g_tmpdir, 0700);
    return g_tmpdir;
}

const char *test_tmp_path(const char *name) {
    static char buf[4][512];
    static int slot;
    char *p = buf[slot++ & 3];
    snprintf(p, 512, "%s/%s", g_tmpdir, name);
    return p;
}

void test_tmpdir_remove(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmpdir);
}

uint8_t *test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz + 1 : 1);
    *n = fread(b, 1, sz > 0 ? (size_t)sz : 0, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

char *test_log_without_timing(const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/log.txt", dir);
    size_t n;
    char *b = (char *)test_read_file(p, &n);
    if (!b) return NULL;
    char *o = b;
    for (char *s = b; *s;) {
        if (!strncmp(s, ", \"images_per_s\": ", 18)) {
            s += 18;
            while (*s && *s != '}' && *s != ',') s++;
            continue;
        }
        *o++ = *s++;
    }
    *o = 0;
    return b;
}

void test_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

void test_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on as is
}

const char *test_dino_path(void) {
    static char path[1100];
    char exe[1024];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return NULL;
    exe[k] = 0;
    for (int up = 0; up < 2; up++) {  // .../build/tests/test_x -> .../build
        char *slash = strrchr(exe, '/');
        if (!slash) return NULL;
        *slash = 0;
    }
    snprintf(path, sizeof path, "%s/dino", exe);
    return access(path, X_OK) == 0 ? path : NULL;
}

int test_run_command(const char *cmd, char *out, size_t n) {
    size_t len = strlen(cmd) + 8;
    char *full = malloc(len);
    if (!full) return -1;
    snprintf(full, len, "%s 2>&1", cmd);
    fflush(stdout);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    size_t k = fread(out, 1, n - 1, p);
    while (k > 0 && out[k - 1] == '\n') k--;
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int test_run_dino(const char *args, char *out, size_t n) {
    const char *dino = test_dino_path();
    if (!dino) return -1;
    size_t len = strlen(dino) + strlen(args) + 2;
    char *cmd = malloc(len);
    if (!cmd) return -1;
    snprintf(cmd, len, "%s %s", dino, args);
    int rc = test_run_command(cmd, out, n);
    free(cmd);
    return rc;
}

// DINO_GEMM / DINO_BF16 reach the library through the command line; test
// binaries call the library directly, so they honour the same variables here
// (`DINO_GEMM=onednn scripts/run_tests.sh build` runs the suite on oneDNN).
__attribute__((constructor)) static void test_gemm_choice(void) {
    char err[256];
    if ((getenv("DINO_GEMM") || getenv("DINO_BF16")) && gemm_choose(getenv("DINO_GEMM"), getenv("DINO_BF16"), err, sizeof err))
        fprintf(stderr, "testlib: %s\n", err);
}
