// `dino train`: self-supervised DINO training. Parses the reference's flags
// (main_dino.py names and defaults) plus our own, and runs train_run.
// Floating-point hyper-parameters that feed the schedules are parsed as
// doubles (ARG_DOUBLE), as Python does, so the schedules equal the reference's.
// The flags are the rows of train/train_settings.h plus a few accepted for
// the reference's command lines. Every number has a range; combinations the
// model needs (crop sizes on the patch grid, ...) are checked
// (train_config_check) before any data is read. The environment's test and
// tuning knobs (train_hooks_from_env) and the k-NN evaluation reach the run
// as its TrainHooks.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "device.h"
#include "eval_common.h"
#include "train_env.h"
#include "train/trainer.h"

// --local_rank from a launcher: any rank of a job.
#define TRAIN_MAX_LOCAL_RANK 65535

// A list flag holds a pair (train_config_check then checks its order).
static void want_pair(const char *flag, const FloatList *l) {
    if (l->n != 2) dino_die("--%s expects two numbers (min max), got %d", flag, l->n);
}

// Flags that are no setting of the run, each placed after the setting
// `after` in --help (NULL: first).
typedef struct {
    const char *after;
    ArgSpec spec;
} ExtraFlag;

static const ArgType arg_type[] = {
    [TS_INT] = ARG_INT, [TS_BOOL] = ARG_BOOL, [TS_I64] = ARG_INT, [TS_FLOAT] = ARG_FLOAT,
    [TS_DOUBLE] = ARG_DOUBLE, [TS_FDOUBLE] = ARG_FLOAT, [TS_STRING] = ARG_STRING,
    [TS_FLOAT2] = ARG_FLOAT_LIST, [TS_FDOUBLE2] = ARG_FLOAT_LIST, [TS_DEVICE] = ARG_STRING,
};

int cmd_train(int argc, char **argv) {
    TrainConfig c;
    train_config_default(&c);
    // A preset changes the defaults; explicit flags then override it.
    const char *preset = NULL;
    int has_data_path = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[i + 1];
        else if (!strncmp(argv[i], "--preset=", 9)) preset = argv[i] + 9;
        if (!strcmp(argv[i], "--data_path") || !strncmp(argv[i], "--data_path=", 12) ||
            !strcmp(argv[i], "--data-path") || !strncmp(argv[i], "--data-path=", 12))
            has_data_path = 1;
    }
    if (preset && strcmp(preset, "fmnist") != 0) dino_die("--preset: unknown preset '%s' (known: fmnist)", preset);
    if (preset || !has_data_path) train_config_preset_fmnist(&c);

    int use_fp16 = 2;  // 2: left at the default (true)
    const char *dist_url = "env://", *preset_flag = preset ? preset : "";
    int local_rank = 0;
    const ExtraFlag extras[] = {
        {NULL, {"preset", ARG_STRING, &preset_flag, "fmnist: small-data defaults for Fashion-MNIST (also used when --data_path is omitted)"}},
        {"koleo_loss_weight", {"use_fp16", ARG_BOOL, &use_fp16, "the reference's fp16 mixed precision (accepted; ignored: use --use_bf16)"}},
        {"dist", {"dist_url", ARG_STRING, &dist_url, "accepted for compatibility; single process"}},
        {"dist", {"local_rank", ARG_INT, &local_rank, "accepted for compatibility; single process", ARG_RANGE(0, TRAIN_MAX_LOCAL_RANK)}},
    };
    const int n_extras = (int)(sizeof extras / sizeof *extras);

    // Settings whose field is not what the flag reads go through these:
    // lists, int64, float-read doubles and the device's name.
    enum { N = 128 };
    DINO_ASSERT(train_settings_count <= N);
    FloatList lists[N];
    float floats[N];
    int ints[N];
    const char *names[N];
    ArgSpec specs[N + 8];
    int ns = 0;
    for (int e = 0; e < n_extras; e++)
        if (!extras[e].after) specs[ns++] = extras[e].spec;
    for (int i = 0; i < train_settings_count; i++) {
        const TrainSetting *s = &train_settings[i];
        char *field = (char *)&c + s->offset;
        void *value = field;
        switch (s->kind) {
        case TS_I64: ints[i] = (int)*(int64_t *)field; value = &ints[i]; break;
        case TS_FDOUBLE: floats[i] = (float)*(double *)field; value = &floats[i]; break;
        case TS_FLOAT2: lists[i] = (FloatList){2, {((float *)field)[0], ((float *)field)[1]}}; value = &lists[i]; break;
        case TS_FDOUBLE2:
            lists[i] = (FloatList){2, {(float)((double *)field)[0], (float)((double *)field)[1]}};
            value = &lists[i];
            break;
        case TS_DEVICE: names[i] = device_name((DeviceKind) * (int *)field); value = &names[i]; break;
        default: break;
        }
        specs[ns++] = (ArgSpec){s->name, arg_type[s->kind], value, s->help, s->min, s->max};
        for (int e = 0; e < n_extras; e++)
            if (extras[e].after && !strcmp(extras[e].after, s->name)) specs[ns++] = extras[e].spec;
    }
    DINO_ASSERT(ns == train_settings_count + n_extras);  // every extra found its place
    specs[ns] = (ArgSpec){NULL, 0, NULL, NULL};
    args_parse("train", "[flags]   (resumes from OUTPUT_DIR/checkpoint.dino when it exists)", specs, argc,
               argv, NULL, 0);
    for (int i = 0; i < train_settings_count; i++) {
        const TrainSetting *s = &train_settings[i];
        char *field = (char *)&c + s->offset;
        double *d = (double *)field;
        char derr[256];
        DeviceKind dk;
        switch (s->kind) {
        case TS_I64: *(int64_t *)field = ints[i]; break;
        // A float-read double keeps its exact default unless the flag changed it.
        case TS_FDOUBLE: if (floats[i] != (float)d[0]) d[0] = floats[i]; break;
        case TS_FLOAT2:
            want_pair(s->name, &lists[i]);
            ((float *)field)[0] = lists[i].v[0];
            ((float *)field)[1] = lists[i].v[1];
            break;
        case TS_FDOUBLE2:
            want_pair(s->name, &lists[i]);
            if (lists[i].v[0] != (float)d[0] || lists[i].v[1] != (float)d[1]) {
                d[0] = lists[i].v[0];
                d[1] = lists[i].v[1];
            }
            break;
        case TS_DEVICE:
            if (device_parse(names[i], &dk, derr, sizeof derr)) dino_die("%s", derr);
            *(int *)field = (int)dk;
            break;
        default: break;
        }
    }
    if (use_fp16 == 1 && !c.use_bf16)
        dino_info("--use_fp16 is ignored: training runs in float32; --use_bf16 true gives bf16 mixed precision");
    if (c.use_bf16 && c.device == DEVICE_CUDA) dino_die("--use_bf16 runs on the CPU only; leave it out with --device cuda");
    if (c.teacher_temp > 0.07) dino_warn("--teacher_temp %g is above 0.07, which the reference calls usually unstable", c.teacher_temp);
    char err[1024];
    if (train_config_check(&c, err, sizeof err)) dino_die("%s", err);
    TrainHooks hooks;
    train_hooks_from_env(&hooks);
    hooks.eval = eval_knn_during_training;
    int rc = train_run(&c, &hooks, err, sizeof err);
    if (rc < 0) dino_die("%s", err);
    return rc;
}
