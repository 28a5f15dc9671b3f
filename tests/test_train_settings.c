// The table of training settings (src/train/train_settings.h) against what
// is built from it: every setting is in a checkpoint's configuration with
// its value, or says why not; every setting is in what MPI ranks compare, or
// says why it may differ; the defaults and the preset pass the checks; the
// checks refuse a value outside a setting's range. Then through the real
// binary: resuming with another --blur_sigma, --solarization_prob or
// --jpeg_min_side (settings the checkpoint once forgot) warns as their
// resume class says, and another --local_crop_size refuses.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "testlib.h"
#include "train/dist_train.h"
#include "train/trainer.h"

static char g_dino[1024];

// The fmnist preset made tiny, with every model width given, so that the
// checkpoint's record of the model's shape is the configuration's own value.
static TrainConfig tiny(void) {
    TrainConfig c;
    train_config_default(&c);
    train_config_preset_fmnist(&c);
    c.embed_dim = 32;
    c.depth = 2;
    c.num_heads = 2;
    c.out_dim = 64;
    c.head_hidden_dim = 32;
    c.head_bottleneck_dim = 16;
    c.head_nlayers = 3;
    c.local_crops_number = 2;
    c.batch_size_per_gpu = 8;
    // Values other than the defaults, so that a setting read from the wrong
    // field shows.
    c.blur_sigma[0] = 0.5;
    c.blur_sigma[1] = 1.5;
    c.solarization_prob = 0.25;
    c.jpeg_min_side = 77;
    c.seed = 5;
    return c;
}

static void check_table(void) {
    int bad_name = 0, bad_help = 0, bad_reason = 0;
    for (int i = 0; i < train_settings_count; i++) {
        const TrainSetting *s = &train_settings[i];
        for (int j = 0; j < i; j++) bad_name += !strcmp(s->name, train_settings[j].name);
        bad_help += !s->help || !*s->help;
        bad_reason += (s->resume == TS_NOT_RECORDED) != (s->not_recorded && *s->not_recorded);
        bad_reason += s->may_differ && !*s->may_differ;
    }
    CHECK(train_settings_count >= 45 && !bad_name, "%d settings, every name once", train_settings_count);
    CHECK(!bad_help, "every setting has a help text");
    CHECK(!bad_reason, "a setting left out of the checkpoint or the rank check says why");

    char err[512] = "";
    TrainConfig c;
    train_config_default(&c);
    CHECK(train_config_check(&c, err, sizeof err) == 0, "the defaults pass train_config_check (%s)", err);
    train_config_preset_fmnist(&c);
    CHECK(train_config_check(&c, err, sizeof err) == 0, "the fmnist preset passes train_config_check (%s)", err);
    c.blur_sigma[1] = 2000;
    CHECK(train_config_check(&c, err, sizeof err) == -1 && strstr(err, "--blur_sigma"),
          "a --blur_sigma past its range is refused by the library: \"%s\"", err);
    train_config_preset_fmnist(&c);
    c.blur_sigma[0] = 0.3, c.blur_sigma[1] = 0.2;
    CHECK(train_config_check(&c, err, sizeof err) == -1 && strstr(err, "min <= max"),
          "a --blur_sigma out of order is refused: \"%s\"", err);
    train_config_preset_fmnist(&c);
    c.solarization_prob = 1.5;
    CHECK(train_config_check(&c, err, sizeof err) == -1 && strstr(err, "--solarization_prob"),
          "a --solarization_prob above 1 is refused: \"%s\"", err);
}

// Every recorded setting is in a saved checkpoint as arg.NAME with the value
// train_setting_format gives; every setting ranks must agree on is in
// dist_config_items with its value.
static void check_records(void) {
    TrainConfig c = tiny();
    char err[512] = "";
    Trainer *t = trainer_create(&c, 3, err, sizeof err);
    CHECK(t != NULL, "trainer_create on the tiny configuration (%s)", err);
    if (!t) return;
    const char *path = test_tmp_path("settings.dino");
    CHECK(trainer_save(t, path, err, sizeof err) == 0, "trainer_save (%s)", err);
    Ckpt *ck = ckpt_open(path, err, sizeof err);
    CHECK(ck != NULL, "the checkpoint opens (%s)", err);
    DistItem items[DIST_MAX_ITEMS];
    int ni = dist_config_items(&c, 30, 3, items);
    int recorded = 0, missing = 0, per_run = 0, agreed = 0, free_ = 0, unchecked = 0;
    for (int i = 0; ck && i < train_settings_count; i++) {
        const TrainSetting *s = &train_settings[i];
        char key[64], want[300];
        snprintf(key, sizeof key, "arg.%s", s->name);
        train_setting_format(s, &c, want, sizeof want);
        const char *v = ckpt_meta(ck, key);
        if (s->resume == TS_NOT_RECORDED) {
            per_run++;
            if (v) printf("FAIL-detail: %s is recorded though its line says not\n", s->name), missing++;
        } else if (!v || strcmp(v, want)) {
            printf("FAIL-detail: %s recorded as '%s', want '%s'\n", s->name, v ? v : "(absent)", want);
            missing++;
        } else {
            recorded++;
        }
        int found = 0;
        for (int k = 0; k < ni; k++)
            if (!strcmp(items[k].key, s->name)) found = 1 + !strcmp(items[k].value, want);
        if (s->may_differ) free_++, unchecked += found != 0;
        else if (found == 2) agreed++;
        else printf("FAIL-detail: ranks do not compare %s\n", s->name), unchecked++;
    }
    CHECK(ck && !missing, "every setting is recorded in the checkpoint with its value (%d), or is per-run (%d)",
          recorded, per_run);
    CHECK(!unchecked, "every setting is compared across ranks (%d) or says why it may differ (%d)", agreed, free_);
    const char *later[] = {"blur_sigma", "solarization_prob", "jpeg_min_side"};
    for (int k = 0; ck && k < 3; k++) {
        char key[64];
        snprintf(key, sizeof key, "arg.%s", later[k]);
        int ranked = 0;
        for (int j = 0; j < ni; j++) ranked |= !strcmp(items[j].key, later[k]);
        CHECK(ckpt_meta(ck, key) && ranked, "--%s is in the checkpoint and in the rank check", later[k]);
    }
    CHECK(ck && !strcmp(ckpt_meta(ck, "arg.blur_sigma"), "0.5 1.5") && !strcmp(ckpt_meta(ck, "arg.jpeg_min_side"), "77"),
          "the recorded values are exact: blur '%s'", ck ? ckpt_meta(ck, "arg.blur_sigma") : "");
    if (ck) ckpt_close(ck);
    trainer_free(t);
}

// `dino train` on the tiny configuration writing into dir, with extra flags
// (NULL-ended). Returns the exit status; *out holds what it wrote to stderr.
static int run_dino(const char *data, const char *dir, const char *const *extra, char **out) {
    const char *errp = test_tmp_path("stderr.txt");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(errp, "w", stderr)) _exit(126);
        setenv("OMP_NUM_THREADS", "1", 1);
        const char *argv[64] = {"dino", "train", "--threads", "1", "--data_path", data, "--output_dir", dir,
                                "--embed_dim", "32", "--depth", "2", "--num_heads", "2", "--out_dim", "64",
                                "--head_hidden_dim", "32", "--head_bottleneck_dim", "16",
                                "--local_crops_number", "2", "--batch_size_per_gpu", "8",
                                "--epochs", "2", "--num_workers", "1", "--quiet", "--preset", "fmnist"};
        int a = 0;
        while (argv[a]) a++;
        for (int i = 0; extra[i]; i++) argv[a++] = extra[i];
        argv[a] = NULL;
        execv(g_dino, (char **)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    size_t n;
    *out = (char *)test_read_file(errp, &n);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void write_idx(const char *dir) {
    char p[700];
    const int n = 24;
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    FILE *f = fopen(p, "wb");
    const unsigned char hi[16] = {0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28};
    fwrite(hi, 1, 16, f);
    uint64_t s = 99;
    for (int i = 0; i < n * 784; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        fputc((int)(s >> 56), f);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    f = fopen(p, "wb");
    const unsigned char hl[8] = {0, 0, 8, 1, 0, 0, 0, n};
    fwrite(hl, 1, 8, f);
    for (int i = 0; i < n; i++) fputc(i % 10, f);
    fclose(f);
}

static void check_resume(void) {
    char data[600], base[600], dir[600], cmd[2000];
    snprintf(data, sizeof data, "%s", test_tmp_path("data"));
    snprintf(base, sizeof base, "%s", test_tmp_path("base"));
    snprintf(dir, sizeof dir, "%s", test_tmp_path("resumed"));
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", data);
    CHECK(system(cmd) == 0, "made %s", data);
    write_idx(data);
    char *err = NULL;
    const char *first[] = {"--stop_after_steps", "1", NULL};
    int rc = run_dino(data, base, first, &err);
    CHECK(rc == 0, "a tiny run stops after one iteration (exit %d: %s)", rc, err ? err : "");
    free(err);
    static const struct {
        const char *flag, *value;
        int refuses;
    } cases[] = {
        {"--blur_sigma", "0.0125 0.3", 0},
        {"--solarization_prob", "0.5", 0},
        {"--jpeg_min_side", "64", 0},
        {"--local_crop_size", "7", 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dir, base, dir);
        CHECK(system(cmd) == 0, "copied the stopped run");
        char v0[32], v1[32];
        const char *args[8] = {"--stop_after_steps", "2", cases[k].flag};
        int a = 3;
        if (sscanf(cases[k].value, "%31s %31s", v0, v1) == 2) args[a++] = v0, args[a++] = v1;
        else args[a++] = cases[k].value;
        args[a] = NULL;
        rc = run_dino(data, dir, args, &err);
        const char *e = err ? err : "";
        if (cases[k].refuses)
            CHECK(rc == 1 && strstr(e, "cannot resume") && strstr(e, cases[k].flag),
                  "resuming with another %s is refused (exit %d): %s", cases[k].flag, rc, e);
        else
            CHECK(rc == 0 && strstr(e, "warning: resuming") && strstr(e, cases[k].flag) &&
                      strstr(e, "resuming from"),
                  "resuming with another %s %s warns and resumes (exit %d): %s", cases[k].flag, cases[k].value,
                  rc, e);
        if (k == 0)
            CHECK(strstr(e, "--blur_sigma 0.0125 0.25; this run uses"), "the warning shows the recorded pair short");
        free(err);
    }
    // The same flags again: no warning.
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dir, base, dir);
    CHECK(system(cmd) == 0, "copied the stopped run");
    const char *same[] = {"--stop_after_steps", "2", NULL};
    rc = run_dino(data, dir, same, &err);
    CHECK(rc == 0 && err && !strstr(err, "warning: resuming"), "the same flags resume without a warning: %s",
          err ? err : "");
    free(err);
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    // dino sits next to the tests folder: BUILD/tests/test_x -> BUILD/dino.
    snprintf(g_dino, sizeof g_dino, "%s", argv[0]);
    char *slash = strrchr(g_dino, '/');
    if (slash) *slash = 0;
    else snprintf(g_dino, sizeof g_dino, ".");
    strncat(g_dino, "/../dino", sizeof g_dino - strlen(g_dino) - 1);
    test_tmpdir("train_settings");
    check_table();
    check_records();
    if (access(g_dino, X_OK) == 0) check_resume();
    else CHECK(0, "the dino binary is at %s", g_dino);
    test_tmpdir_remove();
    return test_finish();
}
