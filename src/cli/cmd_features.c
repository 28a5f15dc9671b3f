// `dino features`: runs a model (teacher by default) over a dataset with the
// reference's evaluation transform and writes float32 .npy files numpy reads:
// OUT/{train,val}_features.npy (N, dim) — or (N, patches, D) with
// --patch_tokens — and OUT/{train,val}_labels.npy (N) int64, -1 where the
// dataset has no labels. `dino knn/linear --features_dir OUT` read them back.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "cuda/train_plan.h"
#include "eval/npy.h"

int cmd_features(int argc, char **argv) {
    const char *output_dir = ".", *split = "both", *device = "cpu";
    int patch_tokens = 0, avgpool_concat = 0;
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        EVAL_MODEL_ARG_SPECS(ma),
        {"batch_size_per_gpu", ARG_INT, &ma.batch_size, "images per forward pass", ARG_RANGE(1, ARG_MAX_BATCH)},
        {"split", ARG_STRING, &split, "train, val or both"},
        {"patch_tokens", ARG_BOOL, &patch_tokens, "write every final-norm patch token (N, patches, D)"},
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
    int do_split[2] = {!strcmp(split, "train") || !strcmp(split, "both"),
                       !strcmp(split, "val") || !strcmp(split, "test") || !strcmp(split, "both")};
    if (!do_split[0] && !do_split[1]) dino_die("--split must be train, val or both, got '%s'", split);
    if (patch_tokens && (ma.avgpool || ma.n_last_blocks != 1))
        dino_die("--patch_tokens writes the last block's tokens; drop --avgpool_patchtokens and --n_last_blocks");
    struct stat st;
    if (stat(output_dir, &st) != 0 && mkdir(output_dir, 0755) != 0)
        dino_die("cannot create the output folder %s", output_dir);

    EvalModel em;
    eval_model_load(&ma, &em);
    const char *names[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        if (!do_split[s]) continue;
        double t0 = dino_now();
        EvalFeatures f;
        eval_features_from_model(&ma, &em, s, patch_tokens, &f);
        char path[4096], err[1024];
        int64_t shape[3] = {f.n, f.d, 0};
        int ndim = 2;
        if (patch_tokens) {
            shape[1] = f.d / em.m.vit.dim;
            shape[2] = em.m.vit.dim;
            ndim = 3;
        }
        snprintf(path, sizeof path, "%s/%s_features.npy", output_dir, names[s]);
        if (npy_write_f32(path, ndim, shape, f.x, err, sizeof err) != 0) dino_die("%s", err);
        snprintf(path, sizeof path, "%s/%s_labels.npy", output_dir, names[s]);
        if (npy_write_i64(path, 1, &f.n, f.labels, err, sizeof err) != 0) dino_die("%s", err);
        printf("%s: %lld x %lld features%s -> %s/%s_{features,labels}.npy (%.1f s)\n", names[s],
               (long long)f.n, (long long)f.d, f.labelled ? "" : " (unlabelled: labels are -1)",
               output_dir, names[s], dino_now() - t0);
        free(f.x);
        free(f.labels);
    }
    eval_model_free(&em);
    return 0;
}
