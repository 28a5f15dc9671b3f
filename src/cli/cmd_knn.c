// `dino knn`: the reference's weighted k-NN evaluation (SPEC §8). Features
// come either from .npy files (--train_features/--train_labels/--val_features/
// --val_labels, e.g. written by `dino features`) or from a model run over a
// dataset (--pretrained_weights + --data_path, as eval_knn.py), which is
// handled by cmd_features.c's shared extraction path.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "eval/knn.h"
#include "eval/npy.h"

static float *load_features(const char *path, int64_t *n, int *d) {
    char err[512];
    NpyInfo info;
    float *x = npy_read_f32(path, &info, err, sizeof err);
    if (!x) dino_die("%s", err);
    if (info.ndim != 2)
        dino_die("%s: features must be a 2-D array (samples, dim), got %d dimensions", path,
                 info.ndim);
    *n = info.shape[0];
    *d = (int)info.shape[1];
    return x;
}

static int64_t *load_labels(const char *path, int64_t n) {
    char err[512];
    NpyInfo info;
    int64_t *l = npy_read_i64(path, &info, err, sizeof err);
    if (!l) dino_die("%s", err);
    if (info.ndim != 1 || (int64_t)info.numel != n)
        dino_die("%s: expected %lld labels in a 1-D array, got shape with %zu elements", path,
                 (long long)n, info.numel);
    return l;
}

int cmd_knn(int argc, char **argv) {
    const char *train_features = NULL, *train_labels = NULL, *val_features = NULL,
               *val_labels = NULL, *features_dir = NULL;
    IntList nb_knn = {4, {10, 20, 100, 200}};
    float temperature = 0.07f;
    int num_classes = 0;
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        {"features_dir", ARG_STRING, &features_dir, "folder written by dino features (sets the four files below)"},
        {"train_features", ARG_STRING, &train_features, ".npy (N, D) training features"},
        {"train_labels", ARG_STRING, &train_labels, ".npy (N) training labels"},
        {"val_features", ARG_STRING, &val_features, ".npy (M, D) validation features"},
        {"val_labels", ARG_STRING, &val_labels, ".npy (M) validation labels"},
        {"nb_knn", ARG_INT_LIST, &nb_knn, "numbers of nearest neighbours"},
        {"temperature", ARG_FLOAT, &temperature, "temperature of the exp(sim/T) vote"},
        {"num_classes", ARG_INT, &num_classes, "classes (0: from the labels)"},
        EVAL_MODEL_ARG_SPECS(ma),
        {"batch_size_per_gpu", ARG_INT, &ma.batch_size, "images per forward pass"},
        {NULL, 0, NULL, NULL},
    };
    const char *usage =
        "(--train_features F --train_labels F --val_features F --val_labels F | "
        "--pretrained_weights FILE --data_path PATH) [flags]";
    args_parse("knn", usage, specs, argc, argv, NULL, 0);

    KnnConfig cfg;
    knn_config_default(&cfg);
    cfg.n_k = nb_knn.n;
    for (int i = 0; i < nb_knn.n; i++) cfg.ks[i] = nb_knn.v[i];
    cfg.temperature = temperature;
    cfg.num_classes = num_classes;

    float *tr = NULL, *te = NULL;
    int64_t *trl = NULL, *tel = NULL, ntr = 0, nte = 0;
    int d = 0, d2 = 0;
    char fpaths[4][4096];
    if (features_dir) {
        const char *names[4] = {"train_features", "train_labels", "val_features", "val_labels"};
        for (int i = 0; i < 4; i++) snprintf(fpaths[i], sizeof fpaths[i], "%s/%s.npy", features_dir, names[i]);
        train_features = fpaths[0], train_labels = fpaths[1], val_features = fpaths[2], val_labels = fpaths[3];
    }
    int from_files = train_features || val_features || train_labels || val_labels;
    if (from_files) {
        if (!train_features || !val_features)
            dino_die("dino knn needs both --train_features and --val_features");
        if (!train_labels || !val_labels)
            dino_die("dino knn needs labels: pass --train_labels and --val_labels");
        tr = load_features(train_features, &ntr, &d);
        te = load_features(val_features, &nte, &d2);
        if (d != d2)
            dino_die("training features have dimension %d but validation features %d", d, d2);
        trl = load_labels(train_labels, ntr);
        tel = load_labels(val_labels, nte);
    } else {
        if (!ma.pretrained_weights || !ma.data_path)
            dino_die("dino knn needs --train_features/--val_features files or "
                     "--pretrained_weights and --data_path (see dino knn --help)");
        EvalModel em;
        eval_model_load(&ma, &em);
        EvalFeatures ftr, fte;
        eval_features_from_model(&ma, &em, 0, 0, &ftr);
        eval_features_from_model(&ma, &em, 1, 0, &fte);
        eval_model_free(&em);
        tr = ftr.x; trl = ftr.labels; ntr = ftr.n; d = (int)ftr.d;
        te = fte.x; tel = fte.labels; nte = fte.n;
        if (!ftr.labelled || !fte.labelled)
            dino_die("dino knn needs labels, but %s has none (use a labelled dataset)",
                     ma.data_path);
    }
    printf("k-NN: %lld training and %lld validation samples of dimension %d, T=%g\n",
           (long long)ntr, (long long)nte, d, temperature);
    KnnResult res[KNN_MAX_K];
    char err[512];
    double t0 = dino_now();
    if (knn_evaluate(tr, trl, ntr, te, tel, nte, d, &cfg, res, err, sizeof err) != 0)
        dino_die("%s", err);
    double secs = dino_now() - t0;
    for (int q = 0; q < cfg.n_k; q++)
        printf("%d-NN classifier result: Top1: %.4f, Top5: %.4f\n", res[q].k, res[q].top1,
               res[q].top5);
    printf("k-NN time: %.2f s (%d threads)\n", secs, dino_get_threads());
    free(tr); free(te); free(trl); free(tel);
    return 0;
}
