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

// A fresh scratch folder /tmp/dino_test_<tag>_<pid> for files a test writes,
// paths inside it (four rotating buffers), and its removal at the end.
const char *test_tmpdir(const char *tag);
const char *test_tmp_path(const char *name);
void test_tmpdir_remove(void);
// Whole-file helpers: read returns the bytes with a NUL after them, or NULL
// when the file cannot be opened; write exits when it cannot write (a broken
// test environment, not a result).
uint8_t *test_read_file(const char *path, size_t *n);
void test_write_file(const char *path, const void *p, size_t n);
// DIR/log.txt without its "images_per_s" fields, the only part that differs
// between identical runs; NULL when there is no log. Free it.
char *test_log_without_timing(const char *dir);

// Many small OpenMP regions on a busy machine: libgomp's default spin-wait
// burns most of the CPU (measured: 88% of test_resume's cycles, 20x the wall
// time on a loaded 2-core box). The policy is read when libgomp loads, so this
// re-runs the test binary once with OMP_WAIT_POLICY=passive unless the caller
// chose a policy. Call it first in main.
void test_passive_openmp(char **argv);

// A path under tests/fixtures/, found from the repository root or tests/.
const char *test_fixture_path(const char *name);

// The dino binary of this test's build (<build>/dino beside <build>/tests/),
// or NULL when it is not there.
const char *test_dino_path(void);
// Runs a shell command with its stderr merged into stdout; out receives up to
// n−1 bytes of the output, without the trailing line ends. Returns the exit
// status, or -1 when the command could not run or did not exit.
int test_run_command(const char *cmd, char *out, size_t n);
// test_run_command of "<dino> ARGS"; -1 when there is no binary.
int test_run_dino(const char *args, char *out, size_t n);

#endif
