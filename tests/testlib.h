// A tiny test harness: every check prints "ok" or "FAIL" with details, and
// test_finish() prints the "checks: P passed, F failed" line that
// scripts/run_tests.sh adds up, returning a non-zero status on any failure.
#ifndef DINO_TESTLIB_H
#define DINO_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

void test_check(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define CHECK(cond, ...) test_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

// Compares n floats: passes when every |got-want| <= atol + rtol·|want|.
// Prints the largest absolute and relative error either way. Returns 1 if ok.
int test_close(const char *what, const float *got, const float *want, size_t n, double atol,
               double rtol);

int test_finish(void);  // returns the process exit status

// A path under tests/fixtures/, found from the repository root or tests/.
const char *test_fixture_path(const char *name);

#endif
