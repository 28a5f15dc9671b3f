// Runs a piece of work in a forked child under a memory cap (RLIMIT_AS) and a
// wall-clock limit (SIGKILL on overrun), for the hostile-input tests: a
// quadratic loop or an unjustified allocation then fails the test instead of
// freezing or exhausting the machine. Under AddressSanitizer the memory cap
// is dropped (its shadow reserves terabytes) and the time limit tripled.
#ifndef DINO_BOUNDED_H
#define DINO_BOUNDED_H

#include <stddef.h>

typedef struct {
    int exit_code;    // the child's exit status; -1 when it was killed by a signal
    int signal;       // the signal that ended it, 0 if it exited
    int timed_out;    // killed by the wall-clock limit
    double seconds;   // wall time
    char output[4096];  // the start of what it wrote to stdout and stderr
} Bounded;

// Runs `<build>/dino ARGV...` (the binary next to this test's folder; argv[0]
// is the subcommand, NULL-terminated) with one OpenMP thread. Returns 0 when
// it ran (whatever its outcome, in *out), -1 when it could not start.
int bounded_dino(const char *const *argv, double limit_s, size_t mem_mb, Bounded *out);

// Calls fn(arg) in a forked child; the child's exit status is fn's return.
int bounded_call(int (*fn)(void *), void *arg, double limit_s, size_t mem_mb, Bounded *out);

// The output's first line, for messages (static buffer).
const char *bounded_first_line(const Bounded *b);

#endif
