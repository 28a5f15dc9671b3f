// `dino features`: runs a model (teacher by default) over a dataset with the
// reference's evaluation transform and writes float32 .npy files numpy reads:
// OUT/{train,val}_features.npy (N, dim) — or (N, patches, D) with
// --patch_tokens, (N, registers, D) with --register_tokens — and OUT/{train,val}_labels.npy (N) int64, -1 where the
// dataset has no labels; OUT/{train,val}_paths.txt names the image of each
// row, one path per line (folder and list datasets). A dataset without
// train/val splits (a plain folder, a list) gives one set: OUT/features.npy,
// labels.npy, paths.txt. `dino knn/linear --features_dir OUT` read the split
// files back. --skip_unreadable leaves unreadable images out and lists them
// in OUT/[split_]skipped.txt.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "device.h"
#include "eval/features.h"
#include "eval/npy.h"
#include "io/atomic_file.h"

// One line per string to `path` (atomically). Dies naming the file.
static void write_lines(const char *path, char *const *lines, int64_t n) {
    char err[1024];
    AtomicFile *f = atomic_open(path, err, sizeof err);
    if (!f) dino_die("%s", err);
    for (int64_t i = 0; i < n; i++) {
        atomic_write(f, lines[i], strlen(lines[i]));
        atomic_write(f, "\n", 1);
    }
    if (atomic_commit(f, err, sizeof err) != 0) dino_die("%s", err);
}

// A path holding a line break would read back as two rows.
static void check_one_line_paths(char *const *paths, int64_t n, const char *data_path) {
    for (int64_t i = 0; i < n; i++)
        if (strchr(paths[i], '\n') || strchr(paths[i], '\r'))
            dino_die("%s: image %lld has a line break in its file name, which a paths file cannot "
                     "hold; rename it", data_path, (long long)i);
}

int cmd_features(int argc, char **argv) {
    const char *output_dir = ".", *split = NULL, *device = "cpu";
    int patch_tokens = 0, register_tokens = 0, avgpool_concat = 0;
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        EVAL_MODEL_ARG_SPECS(ma),
        {"batch_size_per_gpu", ARG_INT, &ma.batch_size, "images per forward pass", ARG_RANGE(1, ARG_MAX_BATCH)},
        {"split", ARG_STRING, &split, "train, val or both (default: both, or the one set of a dataset without splits)"},
        {"skip_unreadable", ARG_BOOL, &ma.skip_unreadable, "leave unreadable images out (listed in skipped.txt) instead of stopping"},
        {"patch_tokens", ARG_BOOL, &patch_tokens, "write every final-norm patch token (N, patches, D)"},
        {"register_tokens", ARG_BOOL, &register_tokens, "write every final-norm register (DINOv2) or storage (DINOv3) token (N, registers, D)"},
        {"avgpool_concat", ARG_BOOL, &avgpool_concat, "CLS tokens then the mean patch token, concatenated (DINOv2's linear eval)"},
        {"output_dir", ARG_STRING, &output_dir, "where the .npy files go"},
        {"device", ARG_STRING, &device, "cpu, or cuda (a build with make CUDA=1; docs/GPU.md)"},
        {NULL, 0, NULL, NULL},
    };
    args_parse("features", "--pretrained_weights FILE --data_path PATH [flags]", specs, argc, argv,
               NULL, 0);
    char derr[256];
    DeviceKind dk;
    if (device_parse(device, &dk, derr, sizeof derr)) dino_die("%s", derr);
    ma.device = (int)dk;
    if (avgpool_concat) ma.avgpool = 2;  // FeatureConfig.avgpool 2: concatenated
    if (!ma.pretrained_weights) dino_die("dino features needs --pretrained_weights FILE");
    if (!ma.data_path) dino_die("dino features needs --data_path PATH");
    // No --split (or both) on a dataset without splits: one set, unprefixed,
    // known once the train split is open.
    int both = !split || !strcmp(split, "both"), one_set = 0;
    if (!split) split = "both";
    int do_split[2] = {!strcmp(split, "train") || both,
                       !strcmp(split, "val") || !strcmp(split, "test") || both};
    if (!do_split[0] && !do_split[1]) dino_die("--split must be train, val or both, got '%s'", split);
    ma.record_paths = 1;
    if (patch_tokens && register_tokens) dino_die("--patch_tokens and --register_tokens: choose one");
    const char *tokens_flag = patch_tokens ? "--patch_tokens" : "--register_tokens";
    if ((patch_tokens || register_tokens) && (ma.avgpool || ma.n_last_blocks != 1))
        dino_die("%s writes the last block's tokens; drop --avgpool_patchtokens, --avgpool_concat and "
                 "--n_last_blocks", tokens_flag);
    int tokens = patch_tokens ? FEATURE_TOKENS_PATCH : register_tokens ? FEATURE_TOKENS_REGISTER : FEATURE_TOKENS_NONE;
    char err_dir[1024];
    if (dino_make_dirs(output_dir, err_dir, sizeof err_dir)) dino_die("%s", err_dir);

    EvalModel em;
    eval_model_load(&ma, &em);
    const char *names[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        if (!do_split[s]) continue;
        double t0 = dino_now();
        EvalFeatures f;
        eval_features_from_model(&ma, &em, s, tokens, &f);
        if (s == 0 && both && !f.has_splits) one_set = 1, do_split[1] = 0;
        char prefix[16];
        snprintf(prefix, sizeof prefix, "%s%s", one_set ? "" : names[s], one_set ? "" : "_");
        const char *what = one_set ? "all" : names[s];
        if (f.n == 0) dino_die("%s: no readable image (%lld skipped)", ma.data_path, (long long)f.n_skipped);
        if (f.paths) check_one_line_paths(f.paths, f.n, ma.data_path);
        char path[4096], err[1024];
        int64_t shape[3] = {f.n, f.d, 0};
        int ndim = 2;
        if (tokens != FEATURE_TOKENS_NONE) {
            shape[1] = f.d / em.m.vit.dim;
            shape[2] = em.m.vit.dim;
            ndim = 3;
        }
        snprintf(path, sizeof path, "%s/%sfeatures.npy", output_dir, prefix);
        if (npy_write_f32(path, ndim, shape, f.x, err, sizeof err) != 0) dino_die("%s", err);
        snprintf(path, sizeof path, "%s/%slabels.npy", output_dir, prefix);
        if (npy_write_i64(path, 1, &f.n, f.labels, err, sizeof err) != 0) dino_die("%s", err);
        if (f.paths) {
            snprintf(path, sizeof path, "%s/%spaths.txt", output_dir, prefix);
            write_lines(path, f.paths, f.n);
        }
        if (ma.skip_unreadable) {
            snprintf(path, sizeof path, "%s/%sskipped.txt", output_dir, prefix);
            write_lines(path, f.skipped, f.n_skipped);
            if (f.n_skipped)
                printf("%s: skipped %lld unreadable image(s), listed in %s\n", what,
                       (long long)f.n_skipped, path);
        }
        printf("%s: %lld x %lld features%s -> %s/%s{features,labels}.npy%s%s%s (%.1f s)\n", what,
               (long long)f.n, (long long)f.d, f.labelled ? "" : " (unlabelled: labels are -1)",
               output_dir, prefix, f.paths ? ", " : "", f.paths ? prefix : "",
               f.paths ? "paths.txt" : "", dino_now() - t0);
        eval_features_free(&f);
    }
    eval_model_free(&em);
    return 0;
}
