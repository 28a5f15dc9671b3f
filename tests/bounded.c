#include "bounded.h"
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// AddressSanitizer reserves terabytes of address space for its shadow, so
// under `make asan` no RLIMIT_AS cap can hold: there only time is bounded,
// three times as loosely (sanitized code runs 2-4 times slower).
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
#define MEM_CAP(mb) ((size_t)0 * (mb))
#define TIME_CAP(s) (3 * (s))
#else
#define MEM_CAP(mb) (mb)
#define TIME_CAP(s) (s)
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// The child's side: caps, output into the pipe, then the work.
static void child_setup(int wfd, size_t mem_mb) {
    dup2(wfd, 1);
    dup2(wfd, 2);
    close(wfd);
    mem_mb = MEM_CAP(mem_mb);
    if (mem_mb) {
        struct rlimit rl = {(rlim_t)mem_mb << 20, (rlim_t)mem_mb << 20};
        setrlimit(RLIMIT_AS, &rl);
    }
    setenv("OMP_NUM_THREADS", "1", 1);
}

// Appends what the pipe holds now to out->output (the first 4 KiB are kept).
static void drain(int rfd, Bounded *out, size_t *len) {
    char buf[4096];
    ssize_t k;
    while ((k = read(rfd, buf, sizeof buf)) > 0) {
        size_t room = sizeof out->output - 1 - *len;
        size_t take = (size_t)k < room ? (size_t)k : room;
        memcpy(out->output + *len, buf, take);
        *len += take;
    }
}

// Reads the child's output until it exits or the limit passes.
static int supervise(pid_t pid, int rfd, double limit_s, Bounded *out) {
    double t0 = now();
    limit_s = TIME_CAP(limit_s);
    size_t len = 0;
    int status = 0, done = 0;
    fcntl(rfd, F_SETFL, O_NONBLOCK);
    while (!done) {
        drain(rfd, out, &len);
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) done = 1;
        else if (now() - t0 > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            out->timed_out = 1;
            done = 1;
        } else usleep(2000);
    }
    drain(rfd, out, &len);
    close(rfd);
    out->output[len] = 0;
    out->seconds = now() - t0;
    out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return 0;
}

// Forks a child whose stdout and stderr go into a pipe and whose limits are
// set. Returns the child's pid in the parent (with the pipe's read end in
// *rfd), 0 in the child, -1 when it could not.
static pid_t fork_bounded(size_t mem_mb, int *rfd) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        child_setup(fds[1], mem_mb);
        return 0;
    }
    close(fds[1]);
    *rfd = fds[0];
    return pid;
}

int bounded_dino(const char *const *argv, double limit_s, size_t mem_mb, Bounded *out) {
    memset(out, 0, sizeof *out);
    const char *path = test_dino_path();
    if (!path) return -1;
    const char *full[128];
    int n = 0;
    full[n++] = path;
    for (; argv[n - 1] && n < 127; n++) full[n] = argv[n - 1];
    full[n] = NULL;
    int rfd;
    pid_t pid = fork_bounded(mem_mb, &rfd);
    if (pid < 0) return -1;
    if (pid == 0) {
        execv(path, (char *const *)full);
        _exit(127);
    }
    return supervise(pid, rfd, limit_s, out);
}

int bounded_call(int (*fn)(void *), void *arg, double limit_s, size_t mem_mb, Bounded *out) {
    memset(out, 0, sizeof *out);
    int rfd;
    pid_t pid = fork_bounded(mem_mb, &rfd);
    if (pid < 0) return -1;
    if (pid == 0) {
        int rc = fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(rc & 0xff);
    }
    return supervise(pid, rfd, limit_s, out);
}

const char *bounded_first_line(const Bounded *b) {
    static char line[512];
    size_t i = 0;
    while (b->output[i] && b->output[i] != '\n' && i < sizeof line - 1) {
        line[i] = b->output[i];
        i++;
    }
    line[i] = 0;
    return line;
}
