// `dino knn`: the reference's weighted k-NN evaluation (docs/DINO.md §8). Features
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
#include "device.h"
#include "eval/knn.h"
#include "eval/npy.h"

int cmd_knn(int argc, char **argv) {
    FeatureFiles files = {0};
    const char *device = "cpu";
    IntList nb_knn = {4, {10, 20, 100, 200}};
    float temperature = 0.07f;
    int num_classes = 0;
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        FEATURE_FILE_ARG_SPECS(files),
        {"nb_knn", ARG_INT_LIST, &nb_knn, "numbers of nearest neighbours", ARG_RANGE(1, KNN_MAX_NEIGHBOURS)},
        {"temperature", ARG_FLOAT, &temperature, "temperature of the exp(sim/T) vote", ARG_RANGE(KNN_MIN_TEMPERATURE, KNN_MAX_TEMPERATURE)},
        {"num_classes", ARG_INT, &num_classes, "classes (0: from the labels)", ARG_RANGE(0, KNN_MAX_CLASSES)},
        EVAL_MODEL_ARG_SPECS(ma),
        {"batch_size_per_gpu", ARG_INT, &ma.batch_size, "images per forward pass", ARG_RANGE(1, ARG_MAX_BATCH)},
        {"device", ARG_STRING, &device, "where the forward passes run: cpu, or cuda (make CUDA=1)"},
        {NULL, 0, NULL, NULL},
    };
    const char *usage =
        "(--train_features F --train_labels F --val_features F --val_labels F | "
        "--pretrained_weights FILE --data_path PATH) [flags]";
    args_parse("knn", usage, specs, argc, argv, NULL, 0);
    char derr[256];
    DeviceKind dk;
    if (device_parse(device, &dk, derr, sizeof derr)) dino_die("%s", derr);
    ma.device = (int)dk;

    KnnConfig cfg;
    knn_config_default(&cfg);
    cfg.n_k = nb_knn.n;
    for (int i = 0; i < nb_knn.n; i++) cfg.ks[i] = nb_knn.v[i];
    cfg.temperature = temperature;
    cfg.num_classes = num_classes;

    EvalFeatures ftr, fte;
    eval_labelled_features("knn", &files, KNN_MAX_CLASSES, &ma, &ftr, &fte);
    float *tr = ftr.x, *te = fte.x;
    int64_t *trl = ftr.labels, *tel = fte.labels, ntr = ftr.n, nte = fte.n;
    int d = (int)ftr.d;
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
