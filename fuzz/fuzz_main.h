// The libFuzzer glue shared by every fuzz/fuzz_<reader>.c: FUZZ_TARGET(entry)
// defines LLVMFuzzerTestOneInput around one entry of fuzz_entries.h. The fuzz
// build links with -Wl,--wrap=dino_die,--wrap=dino_fatal_at (Makefile rule
// build-fuzz/fuzz/%), so that
//   - dino_die (a user-facing refusal: one sentence, exit 1 in the tool) jumps
//     back here and counts as a clean refusal instead of ending the fuzzer;
//   - dino_fatal_at (DINO_ASSERT and out-of-memory, exit 2 in the tool)
//     aborts, so the fuzzer keeps the input: untrusted bytes must never reach
//     an internal assertion or an unchecked allocation size.
#ifndef DINO_FUZZ_MAIN_H
#define DINO_FUZZ_MAIN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jmp_buf fuzz_die_jump;
static int fuzz_die_armed;

void __wrap_dino_die(const char *fmt, ...) __attribute__((noreturn));
void __wrap_dino_die(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!msg[0]) {
        fprintf(stderr, "fuzz: dino_die with an empty message\n");
        abort();
    }
    if (fuzz_die_armed) longjmp(fuzz_die_jump, 1);
    fprintf(stderr, "dino: error: %s\n", msg);
    exit(1);
}

void __wrap_dino_fatal_at(const char *file, int line, const char *fmt, ...) __attribute__((noreturn));
void __wrap_dino_fatal_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: internal error at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

#define FUZZ_TARGET(entry)                                               \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);        \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {       \
        if (setjmp(fuzz_die_jump) == 0) {                                \
            fuzz_die_armed = 1;                                          \
            entry(data, size);                                           \
        }                                                                \
        fuzz_die_armed = 0;                                              \
        return 0;                                                        \
    }

#endif
