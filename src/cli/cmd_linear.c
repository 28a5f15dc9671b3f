// `dino linear`: the reference's linear probe (docs/DINO.md §9) in its fast mode:
// features are computed once (from .npy files, or by running the model over
// the dataset once with the evaluation transform) and the classifier trains
// on them for --epochs. Prints per-epoch lines and the best validation top-1,
// and optionally saves the classifier (.npy weight and bias). --full runs the
// reference's mode instead: augmented training images through the backbone
// every epoch (src/eval/linear_full.c).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "data/dataset.h"
#include "eval/features.h"
#include "eval/linear.h"
#include "eval/linear_full.h"
#include "eval/npy.h"

static void save_classifier(const LinearClassifier *lc, const char *output_dir) {
    char path[4096], err[1024];
    int64_t ws[2] = {lc->num_classes, lc->dim}, bs[1] = {lc->num_classes};
    snprintf(path, sizeof path, "%s/linear_weight.npy", output_dir);
    if (npy_write_f32(path, 2, ws, lc->w, err, sizeof err) != 0) dino_die("%s", err);
    snprintf(path, sizeof path, "%s/linear_bias.npy", output_dir);
    if (npy_write_f32(path, 1, bs, lc->b, err, sizeof err) != 0) dino_die("%s", err);
    printf("classifier written to %s/linear_{weight,bias}.npy\n", output_dir);
}

// The reference's closing lines; then the classifier is saved (when asked) and freed.
static void report_probe(const LinearResult *res, double t0, LinearClassifier *lc,
                         const char *output_dir) {
    printf("Training of the supervised linear classifier on frozen features completed.\n"
           "Top-1 test accuracy: %.1f (best, epoch %d; top-5 %.1f); last epoch top-1 %.1f "
           "(%.1f s)\n",
           res->best_top1, res->best_epoch, res->best_top5, res->last_top1, dino_now() - t0);
    if (output_dir) save_classifier(lc, output_dir);
    linear_free(lc);
}

// --full: RandomResizedCrop + flip views through the backbone every epoch.
static int linear_full_mode(const EvalModelArgs *ma, const LinearConfig *cfg, int num_labels,
                            const char *output_dir) {
    if (!ma->pretrained_weights || !ma->data_path)
        dino_die("dino linear --full needs --pretrained_weights and --data_path");
    EvalModel em;
    eval_model_load(ma, &em);
    eval_model_require_vit(ma, &em, "linear --full runs a ViT; for a ResNet's 2048-d features use "
                           "dino linear without --full");
    EvalFeatures fv;
    eval_features_from_model(ma, &em, 1, 0, &fv);
    if (!fv.labelled) dino_die("dino linear needs labels, but the val split of %s has none", ma->data_path);
    char err[1024];
    Dataset *ds = dataset_open(ma->data_path, SPLIT_TRAIN, err, sizeof err);
    if (!ds) dino_die("%s", err);
    if (dataset_num_classes(ds) == 0)
        dino_die("dino linear needs labels, but the train split of %s has none", ma->data_path);
    int nc = num_labels > 0 ? num_labels : dataset_num_classes(ds);
    FeatureConfig fc;
    feature_config_default(&fc);
    fc.crop = eval_crop(ma, &em);
    fc.n_last_blocks = ma->n_last_blocks;
    fc.avgpool = ma->avgpool;
    printf("linear probe (full mode, as the reference): %lld training images augmented every epoch "
           "(RandomResizedCrop %d, scale 0.08-1, bilinear; flip), %lld validation images, "
           "dimension %lld, %d classes, %d epochs, lr %g x %d/256; random crops come from our "
           "own generator\n",
           (long long)dataset_size(ds), fc.crop, (long long)fv.n, (long long)fv.d, nc, cfg->epochs,
           cfg->lr, cfg->batch_size);
    LinearClassifier lc;
    LinearResult res;
    double t0 = dino_now();
    if (linear_probe_full(&em.m.vit, &em.w, ds, fv.x, fv.labels, fv.n, &fc, cfg, nc, &lc, &res,
                          err, sizeof err) != 0)
        dino_die("%s", err);
    report_probe(&res, t0, &lc, output_dir);
    dataset_close(ds);
    free(fv.x);
    free(fv.labels);
    eval_model_free(&em);
    return 0;
}

int cmd_linear(int argc, char **argv) {
    FeatureFiles files = {0};
    const char *output_dir = NULL;
    int num_labels = 0, seed = 0, full = 0;
    LinearConfig cfg;
    linear_config_default(&cfg);
    cfg.verbose = 1;
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ma.n_last_blocks = 4;  // eval_linear.py default (4 for ViT-S, 1 for ViT-B)
    ArgSpec specs[] = {
        FEATURE_FILE_ARG_SPECS(files),
        {"epochs", ARG_INT, &cfg.epochs, "training epochs", ARG_RANGE(1, ARG_MAX_EPOCHS)},
        {"lr", ARG_FLOAT, &cfg.lr, "learning rate for a batch of 256 (scaled by batch/256)", ARG_RANGE(0, LINEAR_MAX_LR)},
        {"batch_size_per_gpu", ARG_INT, &cfg.batch_size, "SGD batch size (and images per forward pass)", ARG_RANGE(1, ARG_MAX_BATCH)},
        {"momentum", ARG_FLOAT, &cfg.momentum, "SGD momentum", ARG_RANGE(0, 1)},
        {"weight_decay", ARG_FLOAT, &cfg.weight_decay, "SGD weight decay", ARG_RANGE(0, LINEAR_MAX_WEIGHT_DECAY)},
        {"val_freq", ARG_INT, &cfg.val_freq, "validate every this many epochs and after the last (0: after the last only)", ARG_RANGE(0, ARG_MAX_EPOCHS)},
        {"num_labels", ARG_INT, &num_labels, "classes (0: from the labels)", ARG_RANGE(0, LINEAR_MAX_CLASSES)},
        {"seed", ARG_INT, &seed, "seed of the weight init and the shuffles", ARG_RANGE(-ARG_MAX_COUNT, ARG_MAX_COUNT)},
        {"output_dir", ARG_STRING, &output_dir, "write linear_weight.npy and linear_bias.npy here"},
        {"full", ARG_BOOL, &full, "the reference's mode: augmented training images through the backbone every epoch"},
        EVAL_MODEL_ARG_SPECS(ma),
        {NULL, 0, NULL, NULL},
    };
    const char *usage =
        "(--train_features F --train_labels F --val_features F --val_labels F | "
        "--pretrained_weights FILE --data_path PATH) [flags]";
    args_parse("linear", usage, specs, argc, argv, NULL, 0);
    char err_dir[1024];
    // Before training, so a long probe is not lost to a folder that cannot be made.
    if (output_dir && dino_make_dirs(output_dir, err_dir, sizeof err_dir)) dino_die("%s", err_dir);
    cfg.seed = (uint64_t)seed;
    ma.batch_size = cfg.batch_size;  // one batch size, as in the reference


    if (full) return linear_full_mode(&ma, &cfg, num_labels, output_dir);
    EvalFeatures ftr, fte;
    eval_labelled_features("linear", &files, LINEAR_MAX_CLASSES, &ma, &ftr, &fte);
    float *tr = ftr.x, *te = fte.x;
    int64_t *trl = ftr.labels, *tel = fte.labels, ntr = ftr.n, nte = fte.n;
    int d = (int)ftr.d;
    // Labels are below LINEAR_MAX_CLASSES here, so the count fits an int.
    int64_t max_label = -1;
    for (int64_t i = 0; i < ntr; i++) max_label = trl[i] > max_label ? trl[i] : max_label;
    for (int64_t i = 0; i < nte; i++) max_label = tel[i] > max_label ? tel[i] : max_label;
    int nc = num_labels > 0 ? num_labels : (int)(max_label + 1);

    printf("linear probe: %lld training and %lld validation samples, dimension %d, %d classes, "
           "%d epochs, lr %g x %d/256\n",
           (long long)ntr, (long long)nte, d, nc, cfg.epochs, cfg.lr, cfg.batch_size);
    printf("note: fast mode, unlike the reference: features are computed once with the "
           "evaluation transform (no RandomResizedCrop/flip augmentation per epoch), and the "
           "shuffle order comes from our own generator\n");
    LinearClassifier lc;
    LinearResult res;
    char err[512];
    double t0 = dino_now();
    if (linear_probe(&cfg, tr, trl, ntr, te, tel, nte, d, nc, &lc, &res, err, sizeof err) != 0)
        dino_die("%s", err);
    report_probe(&res, t0, &lc, output_dir);
    free(tr); free(te); free(trl); free(tel);
    return 0;
}
