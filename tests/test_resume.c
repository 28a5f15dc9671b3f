// Resumability and robustness of `dino train` (train_run) on a small
// synthetic IDX dataset written to a temporary folder: an uninterrupted run
// versus runs stopped mid-epoch, at an epoch boundary, twice, and by SIGTERM
// in a child process, then resumed: the final checkpoints (student, teacher,
// AdamW moments and step counts, centre, position) and the per-epoch
// checkpoints must be identical bytes, and log.txt must read the same. Also:
// a checkpoint refuses a configuration that changes the model, a non-finite
// loss leaves the state untouched.
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rng.h"
#include "testlib.h"
#include "io/checkpoint.h"
#include "io/model_io.h"
#include "train/trainer.h"

static char g_root[200];

static void write_be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

// n 28x28 grey images: a blob whose position and size depend on the label.
static void write_idx(const char *dir, int n) {
    char p[700];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    FILE *f = fopen(p, "wb");
    write_be32(f, 0x00000803);
    write_be32(f, (uint32_t)n);
    write_be32(f, 28);
    write_be32(f, 28);
    float noise[28 * 28];
    for (int i = 0; i < n; i++) {
        int lab = i % 10;
        fixture_fill(noise, 28 * 28, 40 + (uint64_t)i, 0.0f, 60.0f);
        double cx = 6 + 1.7 * lab, cy = 20 - 1.3 * lab, r = 3 + lab % 4;
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                double d = sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
                double v = noise[y * 28 + x] + (d < r ? 190.0 : 0.0);
                fputc((int)fmin(255.0, v), f);
            }
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    f = fopen(p, "wb");
    write_be32(f, 0x00000801);
    write_be32(f, (uint32_t)n);
    for (int i = 0; i < n; i++) fputc(i % 10, f);
    fclose(f);
}

static TrainConfig tiny(const char *name) {
    static char paths[8][512];
    static int np = 0;
    TrainConfig c;
    train_config_default(&c);
    train_config_preset_fmnist(&c);
    char *out = paths[np++ % 8];
    snprintf(out, 512, "%s/%s", g_root, name);
    c.output_dir = out;
    static char data[512];
    snprintf(data, sizeof data, "%s/data", g_root);
    c.data_path = data;
    c.embed_dim = 32;
    c.depth = 2;
    c.num_heads = 2;
    c.out_dim = 128;
    c.head_hidden_dim = 64;
    c.head_bottleneck_dim = 32;
    c.batch_size_per_gpu = 8;
    c.local_crops_number = 2;
    c.epochs = 3;
    c.warmup_epochs = 1;
    c.warmup_teacher_temp_epochs = 2;
    c.freeze_last_layer = 1;
    c.drop_path_rate = 0.2f;  // keyed drop-path masks must replay too
    c.saveckp_freq = 1;
    c.num_workers = 0;
    c.log_every_steps = 1;
    c.quiet = 1;
    return c;
}

static int same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    size_t na = 0, nb = 0;
    unsigned char *a = test_read_file(pa, &na), *b = test_read_file(pb, &nb);
    int same = a && b && na == nb && !memcmp(a, b, na);
    free(a);
    free(b);
    return same;
}

// dst = src without the metadata entry `key`: a checkpoint of a version
// that did not record that setting.
static int copy_without_meta(const char *src, const char *dst, const char *key) {
    char err[256];
    Ckpt *c = ckpt_open(src, err, sizeof err);
    CkptWriter *w = c ? ckpt_writer_open(dst, err, sizeof err) : NULL;
    if (!w) {
        if (c) ckpt_close(c);
        return -1;
    }
    for (int i = 0; i < ckpt_n_meta(c); i++) {
        const char *k, *v;
        ckpt_meta_at(c, i, &k, &v);
        if (strcmp(k, key) != 0) ckpt_add_meta(w, k, v);
    }
    for (int i = 0; i < ckpt_n_tensors(c); i++) {
        const CkptTensor *x = ckpt_tensor_at(c, i);
        ckpt_add_tensor(w, x->name, x->dtype, x->ndim, x->shape, x->data);
    }
    int rc = ckpt_writer_commit(w, err, sizeof err);
    ckpt_close(c);
    return rc;
}

static int count_lines(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void compare_runs(const char *ref, const char *other, const char *what) {
    CHECK(same_file(ref, other, "checkpoint.dino"), "%s: final checkpoint.dino identical to the uninterrupted run's", what);
    CHECK(same_file(ref, other, "checkpoint0000.dino") && same_file(ref, other, "checkpoint0001.dino") &&
              same_file(ref, other, "checkpoint0002.dino"),
          "%s: per-epoch checkpoints identical", what);
    char *la = test_log_without_timing(ref), *lb = test_log_without_timing(other);
    CHECK(la && lb && !strcmp(la, lb), "%s: log.txt identical apart from images/s", what);
    free(la);
    free(lb);
}

// Runs tiny("e") in a child, sends SIGTERM once it has logged its second
// iteration, returns the child's exit status.
// A longer run (40 epochs of 3 iterations), so the signal lands mid-run.
static TrainConfig long_run(const char *name) {
    TrainConfig c = tiny(name);
    c.epochs = 40;
    c.saveckp_freq = 0;
    return c;
}

// train_run with no hooks; an error that stops the run is printed.
static int run_train(const TrainConfig *c) {
    char err[1024];
    int rc = train_run(c, NULL, err, sizeof err);
    if (rc < 0) fprintf(stderr, "train_run: %s\n", err);
    return rc;
}

static int sigterm_child(void) {
    TrainConfig e = long_run("e");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(run_train(&e));
    char elog[600];
    snprintf(elog, sizeof elog, "%s/log.txt", e.output_dir);
    for (int i = 0; i < 6000; i++) {  // at most 60 s
        size_t m = 0;
        char *s = (char *)test_read_file(elog, &m);
        int started = s && strstr(s, "\"step\": 1,");
        free(s);
        if (started) break;
        usleep(10000);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    snprintf(g_root, sizeof g_root, "/tmp/dino_test_resume_%d", (int)getpid());
    char cmd[600], data[600];
    snprintf(data, sizeof data, "%s/data", g_root);
    mkdir(g_root, 0777);
    mkdir(data, 0777);
    write_idx(data, 30);  // 3 iterations of 8 per epoch (drop_last)
    int sig_code = sigterm_child();

    TrainConfig a = tiny("a");
    CHECK(run_train(&a) == 0, "uninterrupted run finished");
    char p[600];
    snprintf(p, sizeof p, "%s/log.txt", a.output_dir);
    size_t n;
    char *log = (char *)test_read_file(p, &n);
    CHECK(log && count_lines(log, "\"type\": \"step\"") == 9 && count_lines(log, "\"train_loss\"") == 3,
          "log.txt: 9 step records and 3 epoch records (train_loss, train_lr, train_wd, epoch)");
    free(log);

    // Stopped mid-epoch (after 2 of 3 iterations), then at an epoch boundary, then resumed to the end.
    TrainConfig b = tiny("b");
    b.stop_after_steps = 2;
    CHECK(run_train(&b) == 0, "run b stopped after 2 iterations");
    b.stop_after_steps = 6;
    CHECK(run_train(&b) == 0, "run b resumed, stopped at iteration 6 (an epoch boundary)");
    b.stop_after_steps = 0;
    CHECK(run_train(&b) == 0, "run b resumed to the end");
    compare_runs(a.output_dir, b.output_dir, "stopped twice");

    // Mid-epoch checkpoints (--checkpoint_every_steps) do not change the run.
    TrainConfig d = tiny("d");
    d.checkpoint_every_steps = 2;
    d.stop_after_steps = 5;
    CHECK(run_train(&d) == 0, "run d with checkpoints every 2 iterations stopped at 5");
    d.stop_after_steps = 0;
    CHECK(run_train(&d) == 0, "run d resumed");
    compare_runs(a.output_dir, d.output_dir, "checkpoint_every_steps 2");

    // SIGTERM (forked first: libgomp's thread pool does not survive a fork):
    // the child is stopped at its next step boundary; it is resumed below.
    CHECK(sig_code == 128 + SIGTERM, "SIGTERM: the child wrote a checkpoint and exited with %d (want %d)", sig_code, 128 + SIGTERM);
    TrainConfig e = long_run("e"), eref = long_run("e_ref");
    char ep[600];
    snprintf(ep, sizeof ep, "%s/checkpoint.dino", e.output_dir);
    char ee[256] = "";
    Trainer *te = trainer_create(&e, 3, ee, sizeof ee);
    int lr_ = trainer_load(te, ep, ee, sizeof ee);
    int64_t at = (int64_t)te->epoch * 3 + te->step;
    CHECK(lr_ == 0 && at >= 2 && at < 120, "the SIGTERM checkpoint is mid-run, at iteration %lld", (long long)at);
    trainer_free(te);
    CHECK(run_train(&e) == 0, "resumed after SIGTERM");
    CHECK(run_train(&eref) == 0, "uninterrupted reference of the SIGTERM run");
    CHECK(same_file(eref.output_dir, e.output_dir, "checkpoint.dino"),
          "SIGTERM: final checkpoint.dino identical to the uninterrupted run's");
    char *la = test_log_without_timing(eref.output_dir), *lb = test_log_without_timing(e.output_dir);
    CHECK(la && lb && !strcmp(la, lb), "SIGTERM: log.txt identical apart from images/s");
    free(la);
    free(lb);

    // Refusals and warnings on resume.
    char err[512], ck[600];
    snprintf(ck, sizeof ck, "%s/checkpoint0000.dino", a.output_dir);
    TrainConfig f = tiny("f");
    f.out_dim = 256;
    Trainer *t = trainer_create(&f, 3, err, sizeof err);
    int rc = trainer_load(t, ck, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "--out_dim 128") && strstr(err, "256"),
          "a checkpoint of another --out_dim is refused: \"%s\"", err);
    trainer_free(t);
    f = tiny("f");
    f.local_crops_number = 4;
    t = trainer_create(&f, 3, err, sizeof err);
    rc = trainer_load(t, ck, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "--local_crops_number"), "another --local_crops_number is refused: \"%s\"", err);
    trainer_free(t);
    f = tiny("f");
    f.lr = 0.002;
    t = trainer_create(&f, 3, err, sizeof err);
    rc = trainer_load(t, ck, err, sizeof err);
    CHECK(rc == 0 && t->epoch == 1 && t->step == 0, "another --lr resumes (with a warning) at epoch 1 step 0");
    // Settings recorded since a later version: an older checkpoint without
    // --koleo_loss_weight was trained without KoLeo and resumes; one without
    // --lr (recorded from the start) is refused.
    char old_ck[640];
    snprintf(old_ck, sizeof old_ck, "%s/older.dino", a.output_dir);
    CHECK(copy_without_meta(ck, old_ck, "arg.koleo_loss_weight") == 0, "wrote a checkpoint without arg.koleo_loss_weight");
    Trainer *to = trainer_create(&a, 3, err, sizeof err);
    rc = trainer_load(to, old_ck, err, sizeof err);
    CHECK(rc == 0 && to->epoch == 1, "a checkpoint that predates --koleo_loss_weight resumes (%s)", rc ? err : "ok");
    trainer_free(to);
    // --blur_sigma was recorded later still, and older runs used any value:
    // such a checkpoint resumes without comparing it.
    CHECK(copy_without_meta(ck, old_ck, "arg.blur_sigma") == 0, "wrote a checkpoint without arg.blur_sigma");
    to = trainer_create(&a, 3, err, sizeof err);
    rc = trainer_load(to, old_ck, err, sizeof err);
    CHECK(rc == 0 && to->epoch == 1, "a checkpoint that predates the record of --blur_sigma resumes (%s)", rc ? err : "ok");
    trainer_free(to);
    CHECK(copy_without_meta(ck, old_ck, "arg.lr") == 0, "wrote a checkpoint without arg.lr");
    to = trainer_create(&a, 3, err, sizeof err);
    rc = trainer_load(to, old_ck, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "does not record --lr"), "a checkpoint without --lr is refused: \"%s\"", err);
    trainer_free(to);
    // The evaluation side reads the same file: model_load takes the teacher.
    DinoModel lm;
    float *lp = NULL;
    ModelLoadOptions mo = {0};
    rc = model_load(ck, &mo, &lm, &lp, err, sizeof err);
    CHECK(rc == 0 && lm.table.total == t->model.table.total &&
              !memcmp(lp, t->teacher, t->model.table.total * sizeof(float)),
          "model_load reads the checkpoint's teacher (%s)", rc ? err : "identical weights");
    if (rc == 0) {
        free(lp);
        model_free(&lm);
    }

    // A non-finite loss: trainer_step reports it and changes nothing.
    float *s0 = malloc(t->model.table.total * sizeof(float));
    memcpy(s0, t->student, t->model.table.total * sizeof(float));
    float *center0 = malloc((size_t)f.out_dim * sizeof(float));
    memcpy(center0, t->loss.center, (size_t)f.out_dim * sizeof(float));
    int Bn = 2;
    size_t g0n = (size_t)2 * Bn * 3 * 28 * 28, g1n = (size_t)2 * Bn * 3 * 16 * 16;
    float *g0 = calloc(g0n, sizeof(float)), *g1 = calloc(g1n, sizeof(float));
    g0[5] = NAN;
    Batch bb = {.B = Bn, .n_groups = 2};
    bb.groups[0] = (CropGroup){.size = 28, .n_crops = 2, .pixels = g0};
    bb.groups[1] = (CropGroup){.size = 16, .n_crops = 2, .pixels = g1};
    StepStats st;
    rc = trainer_step(t, &bb, &st);
    CHECK(rc == -1 && !isfinite(st.loss), "a NaN input gives a non-finite loss that trainer_step reports");
    CHECK(!memcmp(s0, t->student, t->model.table.total * sizeof(float)) &&
              !memcmp(center0, t->loss.center, (size_t)f.out_dim * sizeof(float)),
          "after a non-finite loss the student and centre are untouched");
    free(s0);
    free(center0);
    free(g0);
    free(g1);
    trainer_free(t);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) printf("could not remove %s\n", g_root);
    return test_finish();
}
