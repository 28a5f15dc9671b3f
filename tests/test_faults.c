// Fault injection against `dino train` (the real binary, next to this test
// in the build folder), on a tiny model and a 32-image IDX set made here:
//   1. SIGKILL at random moments, a third of them while a checkpoint is being
//      written (right after checkpoint.dino.tmp appears, or a few ms later):
//      the checkpoint on disk must always open, the rerun must resume, and the
//      final weights must be bit-identical to an uninterrupted run;
//   2. a checkpoint write that fails (RLIMIT_FSIZE in the child, so write()
//      fails with EFBIG as on a full disk) must report the error and leave
//      the previous checkpoint byte for byte as it was (and resumable);
//   3. an output folder that cannot be written is refused before training;
//   4. a NaN injected into a batch (DINO_INJECT_NAN_AT_STEP, a test hook in
//      train_run) must stop the run with an error and keep the last good
//      checkpoint, from which a resumed run ends bit-identical again.
// DINO_FAULT_SEED picks other kill moments (the default is fixed so that a
// failure can be replayed). docs/RELIABILITY.md reports the trials.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "io/checkpoint.h"
#include "testlib.h"

static char g_dino[1024];
static char g_root[256];
static char g_data[512];
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void) {  // xorshift64*
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Dull;
}
static double rnd01(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char p[1024];
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

// A 32-image 28x28 IDX training set with labels (MNIST layout).
static void make_data(void) {
    snprintf(g_data, sizeof g_data, "%s/data", g_root);
    mkdir(g_data, 0755);
    char p[600];
    const int n = 32;
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", g_data);
    FILE *f = fopen(p, "wb");
    const uint8_t hi[16] = {0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28};
    fwrite(hi, 1, 16, f);
    uint64_t s = 12345;
    for (int i = 0; i < n * 784; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        fputc((int)(s >> 56), f);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", g_data);
    f = fopen(p, "wb");
    const uint8_t hl[8] = {0, 0, 8, 1, 0, 0, 0, n};
    fwrite(hl, 1, 8, f);
    for (int i = 0; i < n; i++) fputc(i % 10, f);
    fclose(f);
}

typedef struct {
    long fsize_limit;       // > 0: RLIMIT_FSIZE of the child
    const char *nan_at;     // DINO_INJECT_NAN_AT_STEP
    const char *stop_after; // --stop_after_steps
} RunOpts;

// Starts `dino train` on the tiny configuration writing into outdir; stderr
// goes to errpath. Returns the child's pid.
static pid_t start_train(const char *outdir, const char *errpath, const RunOpts *o) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid != 0) return pid;
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 2);
        dup2(fd, 1);
        close(fd);
    }
    if (o && o->fsize_limit > 0) {
        struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
        setrlimit(RLIMIT_FSIZE, &rl);
        signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of killing
    }
    if (o && o->nan_at) setenv("DINO_INJECT_NAN_AT_STEP", o->nan_at, 1);
    else unsetenv("DINO_INJECT_NAN_AT_STEP");
    setenv("OMP_NUM_THREADS", "1", 1);
    char *argv[64];
    int a = 0;
    const char *fixed[] = {"dino", "train", "--threads", "1", "--data_path", g_data, "--output_dir", outdir,
                           "--patch_size", "4", "--img_size", "16", "--embed_dim", "16", "--depth", "2",
                           "--num_heads", "2", "--out_dim", "32", "--head_hidden_dim", "16",
                           "--head_bottleneck_dim", "8", "--global_crop_size", "16", "--local_crop_size", "8",
                           "--local_crops_number", "2", "--batch_size_per_gpu", "8", "--epochs", "3",
                           "--warmup_epochs", "1", "--checkpoint_every_steps", "1", "--num_workers", "1",
                           "--quiet"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) argv[a++] = (char *)fixed[i];
    if (o && o->stop_after) {
        argv[a++] = "--stop_after_steps";
        argv[a++] = (char *)o->stop_after;
    }
    argv[a] = NULL;
    execv(g_dino, argv);
    _exit(127);
}

// Exit code, or 128 + signal.
static int wait_status(pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static int run_train(const char *outdir, const char *errpath, const RunOpts *o) {
    return wait_status(start_train(outdir, errpath, o));
}

static int file_contains(const char *path, const char *needle) {
    size_t n;
    char *b = (char *)test_read_file(path, &n);
    int hit = b && strstr(b, needle) != NULL;
    free(b);
    return hit;
}

// Every tensor of a against b, byte for byte, and the training position.
// Returns the number of differences (-1 when a file does not open).
static int compare_ckpt(const char *a_path, const char *b_path, char *why, size_t whylen) {
    char err[512];
    Ckpt *a = ckpt_open(a_path, err, sizeof err);
    if (!a) {
        snprintf(why, whylen, "%.200s", err);
        return -1;
    }
    Ckpt *b = ckpt_open(b_path, err, sizeof err);
    if (!b) {
        snprintf(why, whylen, "%.200s", err);
        ckpt_close(a);
        return -1;
    }
    int diff = 0;
    why[0] = 0;
    if (ckpt_n_tensors(a) != ckpt_n_tensors(b)) diff++;
    for (int i = 0; i < ckpt_n_tensors(a); i++) {
        const CkptTensor *ta = ckpt_tensor_at(a, i);
        const CkptTensor *tb = ckpt_tensor(b, ta->name);
        size_t es = ta->dtype == DT_I64 ? 8 : ta->dtype == DT_U8 ? 1 : (ta->dtype == DT_F16 || ta->dtype == DT_BF16) ? 2 : 4;
        if (!tb || tb->dtype != ta->dtype || tb->numel != ta->numel ||
            memcmp(ta->data, tb->data, ta->numel * es) != 0) {
            if (!diff) snprintf(why, whylen, "tensor %s differs", ta->name);
            diff++;
        }
    }
    const char *keys[] = {"epoch", "step"};
    for (int k = 0; k < 2; k++) {
        const char *va = ckpt_meta(a, keys[k]), *vb = ckpt_meta(b, keys[k]);
        if (!va || !vb || strcmp(va, vb) != 0) {
            if (!diff) snprintf(why, whylen, "%s: %s vs %s", keys[k], va ? va : "-", vb ? vb : "-");
            diff++;
        }
    }
    ckpt_close(a);
    ckpt_close(b);
    return diff;
}

// Every float tensor of a checkpoint is finite.
static int ckpt_all_finite(const char *path) {
    char err[512];
    Ckpt *c = ckpt_open(path, err, sizeof err);
    if (!c) return 0;
    int ok = 1;
    for (int i = 0; i < ckpt_n_tensors(c); i++) {
        const CkptTensor *t = ckpt_tensor_at(c, i);
        if (t->dtype != DT_F32) continue;
        const float *f = t->data;
        for (size_t k = 0; k < t->numel; k++)
            if (!isfinite(f[k])) ok = 0;
    }
    ckpt_close(c);
    return ok;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

int main(int argc, char **argv) {
    (void)argc;
    // dino sits next to the tests folder: BUILD/tests/test_faults -> BUILD/dino.
    snprintf(g_dino, sizeof g_dino, "%s", argv[0]);
    char *slash = strrchr(g_dino, '/');
    if (slash) *slash = 0; else snprintf(g_dino, sizeof g_dino, ".");
    strncat(g_dino, "/../dino", sizeof g_dino - strlen(g_dino) - 1);
    CHECK(access(g_dino, X_OK) == 0, "the dino binary is at %s", g_dino);
    if (access(g_dino, X_OK) != 0) return test_finish();
    const char *seed = getenv("DINO_FAULT_SEED");
    if (seed) g_rng = strtoull(seed, NULL, 10) * 2654435761ull + 1;
    snprintf(g_root, sizeof g_root, "/tmp/dino_faults_XXXXXX");
    if (!mkdtemp(g_root)) {
        CHECK(0, "mkdtemp: %s", strerror(errno));
        return test_finish();
    }
    make_data();
    char ref[600], err_path[600], p[1024], q[1024];
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", g_root);

    // The uninterrupted reference run.
    snprintf(ref, sizeof ref, "%s/ref", g_root);
    double t0 = dino_now();
    int rc = run_train(ref, err_path, NULL);
    double t_ref = dino_now() - t0;
    snprintf(p, sizeof p, "%s/checkpoint.dino", ref);
    CHECK(rc == 0 && exists(p), "uninterrupted run: exit %d in %.2f s, checkpoint written", rc, t_ref);
    if (rc != 0) {
        size_t n;
        char *e = (char *)test_read_file(err_path, &n);
        printf("     %s\n", e ? e : "");
        free(e);
        rm_rf(g_root);
        return test_finish();
    }
    char ref_ckpt[1024];
    snprintf(ref_ckpt, sizeof ref_ckpt, "%s/checkpoint.dino", ref);
    char *ref_log = test_log_without_timing(ref);

    // 1. SIGKILL trials.
    const int trials = 15;
    int killed = 0, during_write = 0, bad_ckpt = 0, resumed_ok = 0, identical = 0, same_log = 0;
    for (int k = 0; k < trials; k++) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/kill%02d", g_root, k);
        snprintf(p, sizeof p, "%s/checkpoint.dino", dir);
        snprintf(q, sizeof q, "%s/checkpoint.dino.tmp", dir);
        int mode = k % 3;
        // Several kills in some trials: the run is killed again while resuming.
        int kills_this_trial = 1 + (int)(rnd() % 2);
        for (int kk = 0; kk < kills_this_trial; kk++) {
            pid_t pid = start_train(dir, err_path, NULL);
            int did_kill = 0, in_write = 0;
            if (mode == 0) {
                sleep_s(rnd01() * t_ref);
                did_kill = kill(pid, SIGKILL) == 0;
            } else {
                // Wait for the j-th appearance of checkpoint.dino.tmp.
                int want = 1 + (int)(rnd() % 8), seen = 0, present = 0;
                double delay = mode == 2 ? rnd01() * 0.003 : 0;
                double start = dino_now();
                while (dino_now() - start < 20) {
                    int now = exists(q);
                    if (now && !present && ++seen == want) {
                        if (delay > 0) sleep_s(delay);
                        in_write = exists(q);
                        did_kill = kill(pid, SIGKILL) == 0;
                        break;
                    }
                    present = now;
                    if (waitpid(pid, NULL, WNOHANG) == pid) {
                        pid = -1;
                        break;
                    }
                    usleep(50);
                }
            }
            int st = pid > 0 ? wait_status(pid) : 0;
            if (did_kill && st == 128 + SIGKILL) {
                killed++;
                during_write += in_write;
            }
            // Whatever the moment, the checkpoint on disk is absent or whole.
            if (exists(p)) {
                char err[512];
                Ckpt *c = ckpt_open(p, err, sizeof err);
                if (!c) {
                    bad_ckpt++;
                    printf("     trial %d: after the kill: %s\n", k, err);
                }
                ckpt_close(c);
            }
        }
        // Resume (the same command) to the end.
        rc = run_train(dir, err_path, NULL);
        if (rc == 0) resumed_ok++;
        else printf("     trial %d: the resumed run exited %d\n", k, rc);
        char why[256];
        int d = compare_ckpt(ref_ckpt, p, why, sizeof why);
        if (d == 0) identical++;
        else printf("     trial %d (mode %d): final checkpoint differs from the uninterrupted run: %s\n", k, mode, why);
        char *lg = test_log_without_timing(dir);
        if (lg && ref_log && !strcmp(lg, ref_log)) same_log++;
        else {
            // Show the first line that differs.
            const char *a = lg ? lg : "", *b = ref_log ? ref_log : "";
            while (*a && *a == *b) a++, b++;
            while (a > lg && a[-1] != '\n') a--, b--;
            printf("     trial %d (mode %d): log.txt differs from the uninterrupted run's:\n       got  %.160s\n       want %.160s\n",
                   k, mode, a, b);
        }
        free(lg);
        rm_rf(dir);
    }
    CHECK(killed >= 10, "SIGKILL: %d kills in %d trials (%d while checkpoint.dino.tmp existed)", killed, trials,
          during_write);
    CHECK(during_write >= 3, "SIGKILL: %d kills landed during a checkpoint write", during_write);
    CHECK(bad_ckpt == 0, "SIGKILL: the checkpoint on disk opened after every kill (%d did not)", bad_ckpt);
    CHECK(resumed_ok == trials, "SIGKILL: %d/%d resumed runs finished", resumed_ok, trials);
    CHECK(identical == trials, "SIGKILL: %d/%d final checkpoints bit-identical to the uninterrupted run",
          identical, trials);
    CHECK(same_log == trials, "SIGKILL: %d/%d log.txt identical to the uninterrupted run's (timings aside)",
          same_log, trials);

    // 2. A checkpoint write that fails (EFBIG, as a full disk's ENOSPC).
    {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/full", g_root);
        snprintf(p, sizeof p, "%s/checkpoint.dino", dir);
        snprintf(q, sizeof q, "%s/checkpoint.dino.tmp", dir);
        RunOpts o = {.stop_after = "2"};
        rc = run_train(dir, err_path, &o);
        size_t n0 = 0, n1 = 0;
        uint8_t *before = test_read_file(p, &n0);
        CHECK(rc == 0 && before, "disk full: a first run stopped at step 2 with a checkpoint (exit %d)", rc);
        RunOpts lim = {.stop_after = "5", .fsize_limit = (long)(n0 / 2)};
        rc = run_train(dir, err_path, &lim);
        uint8_t *after = test_read_file(p, &n1);
        CHECK(rc != 0, "disk full: the run whose checkpoint writes fail exits non-zero (%d)", rc);
        CHECK(file_contains(err_path, "checkpoint") &&
                  (file_contains(err_path, "File too large") || file_contains(err_path, "write")),
              "disk full: the error is reported on stderr");
        CHECK(before && after && n0 == n1 && !memcmp(before, after, n0),
              "disk full: the previous checkpoint is byte for byte intact (%zu bytes)", n1);
        CHECK(!exists(q), "disk full: no checkpoint.dino.tmp is left behind");
        free(before);
        free(after);
        rc = run_train(dir, err_path, NULL);
        char why[256] = "";
        int d = compare_ckpt(ref_ckpt, p, why, sizeof why);
        CHECK(rc == 0 && d == 0, "disk full: resuming from the kept checkpoint ends bit-identical (exit %d) %s", rc,
              why);
        rm_rf(dir);
    }

    // 3. An output folder that cannot be written is refused before training.
    {
        char file[600], dir[700];
        snprintf(file, sizeof file, "%s/a_file", g_root);
        FILE *f = fopen(file, "w");
        if (f) fclose(f);
        rc = run_train(file, err_path, NULL);
        CHECK(rc == 1 && file_contains(err_path, "output_dir"),
              "unwritable output: a path that is a file is refused (exit %d)", rc);
        snprintf(dir, sizeof dir, "%s/sub", file);
        rc = run_train(dir, err_path, NULL);
        CHECK(rc == 1 && file_contains(err_path, "output_dir"),
              "unwritable output: a folder under a file is refused (exit %d)", rc);
        if (geteuid() != 0) {
            snprintf(dir, sizeof dir, "%s/readonly", g_root);
            mkdir(dir, 0555);
            rc = run_train(dir, err_path, NULL);
            snprintf(p, sizeof p, "%s/checkpoint.dino", dir);
            CHECK(rc == 1 && !exists(p), "unwritable output: a read-only folder is refused (exit %d)", rc);
            chmod(dir, 0755);
        } else {
            // root writes through permissions: use a read-only file system instead.
            rc = run_train("/proc/dino_faults_out", err_path, NULL);
            CHECK(rc == 1 && file_contains(err_path, "output_dir"),
                  "unwritable output: a folder on a read-only file system (/proc) is refused (exit %d)", rc);
        }
    }

    // 4. A NaN injected into a batch.
    {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/nan", g_root);
        snprintf(p, sizeof p, "%s/checkpoint.dino", dir);
        RunOpts o = {.nan_at = "6"};
        rc = run_train(dir, err_path, &o);
        CHECK(rc == 1, "NaN at step 6: the run stops with exit status 1 (got %d)", rc);
        CHECK(file_contains(err_path, "nan") && file_contains(err_path, "last good checkpoint"),
              "NaN at step 6: the error names the loss and the last good checkpoint");
        char err[512];
        Ckpt *c = ckpt_open(p, err, sizeof err);
        const char *ep = c ? ckpt_meta(c, "epoch") : NULL, *stp = c ? ckpt_meta(c, "step") : NULL;
        // 4 iterations per epoch: global iteration 6 is epoch 1, step 2.
        CHECK(c && ep && stp && !strcmp(ep, "1") && !strcmp(stp, "2"),
              "NaN at step 6: the kept checkpoint is the one before it (epoch %s step %s)", ep ? ep : "-",
              stp ? stp : "-");
        ckpt_close(c);
        CHECK(ckpt_all_finite(p), "NaN at step 6: every weight in the kept checkpoint is finite");
        rc = run_train(dir, err_path, NULL);
        char why[256] = "";
        int d = compare_ckpt(ref_ckpt, p, why, sizeof why);
        CHECK(rc == 0 && d == 0, "NaN at step 6: resuming without the fault ends bit-identical (exit %d) %s", rc, why);
        rm_rf(dir);
    }

    free(ref_log);
    rm_rf(g_root);
    return test_finish();
}
