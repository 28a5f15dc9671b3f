// Replays every fuzzing input we keep, in the normal build: the seed corpora
// (fuzz/corpus/<reader>/: valid files that must be accepted, and hostile ones
// named refuse_* that must be refused) and every input
// that once crashed a fuzzer (fuzz/regressions/<reader>/, which must now be
// handled: accepted or refused with a message, never a crash). Each input runs
// in a forked child through the same entry point the libFuzzer target uses
// (fuzz/fuzz_entries.h), so a crash, an abort from a broken contract or an
// exit other than 0/1 fails one check naming the file instead of the whole
// test. docs/RELIABILITY.md lists what each regression input found.
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/args.c"  // src/cli is not in libdino.a; the flag parser is one file
#include "../fuzz/fuzz_entries.h"
#include "testlib.h"

// Under `make asan` a sanitizer report must not pass for a refusal (exit 1,
// the status of dino_die): sanitizers exit with 86 here instead.
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "exitcode=86"; }
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "exitcode=86"; }
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "exitcode=86"; }

typedef int (*Entry)(const uint8_t *d, size_t n);

typedef struct {
    const char *reader;
    Entry entry;
} Reader;

static const Reader READERS[] = {
    {"image", fuzz_entry_image},
    {"idx", fuzz_entry_idx},
    {"cifar", fuzz_entry_cifar},
    {"list", fuzz_entry_list},
    {"args", fuzz_entry_args},
#ifdef FUZZ_HAVE_IO
    {"checkpoint", fuzz_entry_checkpoint},
    {"safetensors", fuzz_entry_safetensors},
    {"pickle", fuzz_entry_pickle},
    {"pth", fuzz_entry_pth},
    {"model", fuzz_entry_model},
#endif
#ifdef FUZZ_HAVE_NPY
    {"npy", fuzz_entry_npy},
#endif
#ifdef FUZZ_HAVE_PLOT
    {"plot", fuzz_entry_plot},
#endif
};

// Runs entry on the file in a child. Returns the child's status as
// "accepted" 1 / "refused" 0 / -1 for a crash or an unexpected exit.
static int replay(Entry entry, const char *path, char *why, size_t whylen) {
    size_t n = 0;
    uint8_t *d = test_read_file(path, &n);
    if (!d) {
        snprintf(why, whylen, "cannot read");
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        // Quiet child: the entries' refusals (dino_die) print one line each.
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        int acc = entry(d, n);
        exit(acc ? 10 : 11);  // exit (not _exit) runs the scratch-folder cleanup
    }
    free(d);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) {
        snprintf(why, whylen, "killed by signal %d", WTERMSIG(st));
        return -1;
    }
    int code = WEXITSTATUS(st);
    if (code == 10) return 1;
    if (code == 11 || code == 1) return 0;  // 1: a dino_die refusal (flags)
    snprintf(why, whylen, "exit status %d", code);
    return -1;
}

// Replays every file in dir. Seeds must be accepted, except those named
// refuse_* (hostile files kept as seeds: a pickle calling os.system, ...),
// which must be refused.
static void replay_dir(const Reader *r, const char *dir, int must_accept) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    int count = 0, ok = 0;
    char path[1024], why[128];
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        why[0] = 0;
        int refuse = !strncmp(e->d_name, "refuse_", 7);
        int res = replay(r->entry, path, why, sizeof why);
        count++;
        if (res < 0) {
            CHECK(0, "%s: %s", path, why);
        } else if (must_accept && res == refuse) {
            CHECK(0, "%s: a seed that must be %s was %s", path, refuse ? "refused" : "accepted",
                  res ? "accepted" : "refused");
        } else {
            ok++;
        }
    }
    closedir(dp);
    CHECK(count > 0 || !must_accept, "%s: %d inputs replayed, %d %s", dir, count, ok,
          must_accept ? "as expected" : "handled without a crash");
}

static const char *find_dir(const char *sub) {
    static char out[512];
    const char *roots[] = {"fuzz/", "../fuzz/"};
    for (int i = 0; i < 2; i++) {
        snprintf(out, sizeof out, "%s%s", roots[i], sub);
        DIR *dp = opendir(out);
        if (dp) {
            closedir(dp);
            return out;
        }
    }
    return NULL;
}

static const char *find_dir(const char *sub);

// Runs fn in a child that must finish within `secs` seconds and exit 0.
static int in_child(void (*fn)(const char *), const char *arg, int secs) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm((unsigned)secs);
        fn(arg);
        exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// A path that is not a regular file must be refused without reading it:
// /dev/zero would be read until memory ran out and a FIFO would block in
// open() (found by reviewing what the list-file fuzzer had to neutralise).
static void decode_special(const char *path) {
    Image im;
    char err[512] = "";
    int rc = image_decode_file(path, 0, &im, err, sizeof err);
    exit(rc == -1 && strstr(err, "not a regular file") ? 0 : 1);
}

static void list_special(const char *path) {
    // A list file naming the special file, loaded as the loader would.
    char list[600];
    snprintf(list, sizeof list, "%s/list.txt", fuzz_dir());
    FILE *f = fopen(list, "w");
    fprintf(f, "%s 0\n", path);
    fclose(f);
    char err[512] = "";
    Dataset *ds = dataset_open(list, SPLIT_TRAIN, err, sizeof err);
    if (!ds) exit(2);
    Image im;
    int rc = dataset_load(ds, 0, 0, &im, err, sizeof err);
    dataset_close(ds);
    exit(rc == -1 && strstr(err, "not a regular file") ? 0 : 1);
}

static void check_special_files(void) {
    char fifo[600];
    snprintf(fifo, sizeof fifo, "/tmp/dino_regress_fifo_%d", (int)getpid());
    unlink(fifo);
    int have_fifo = mkfifo(fifo, 0600) == 0;
    CHECK(in_child(decode_special, "/dev/zero", 5), "image_decode_file refuses /dev/zero at once");
    CHECK(in_child(list_special, "/dev/zero", 5), "a list file naming /dev/zero: the image is refused at once");
    CHECK(in_child(list_special, "/dev/null", 5), "a list file naming /dev/null: refused as not a regular file");
    if (have_fifo) {
        CHECK(in_child(decode_special, fifo, 5), "image_decode_file refuses a FIFO without blocking");
        CHECK(in_child(list_special, fifo, 5), "a list file naming a FIFO: refused without blocking");
        unlink(fifo);
    }
}

// Findings whose replay alone would pass in a build without sanitizers:
// check the answer too.
static void check_findings(void) {
    // fuzz_image: IHDR 4294967295 x 4294967046 made w*h overflow a signed
    // long long (UB; wrapped negative it slipped past the pixel limit).
    const char *dir = find_dir("regressions/image");
    char path[600];
    snprintf(path, sizeof path, "%s/png_ihdr_overflow_ubsan.png", dir ? dir : "fuzz/regressions/image");
    Image im;
    char err[512] = "";
    int rc = image_decode_file(path, 0, &im, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "above the limit"), "PNG declaring 4294967295x4294967046: refused by the pixel limit (%s)", err);
}

int main(void) {
    check_special_files();
    check_findings();
    char sub[256];
    for (size_t k = 0; k < sizeof READERS / sizeof *READERS; k++) {
        const Reader *r = &READERS[k];
        snprintf(sub, sizeof sub, "corpus/%s", r->reader);
        const char *dir = find_dir(sub);
        CHECK(dir != NULL, "seed corpus fuzz/%s exists", sub);
        if (dir) replay_dir(r, dir, 1);
        snprintf(sub, sizeof sub, "regressions/%s", r->reader);
        dir = find_dir(sub);
        if (dir) replay_dir(r, dir, 0);
    }
    return test_finish();
}
