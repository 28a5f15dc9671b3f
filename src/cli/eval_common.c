// Shared steps of the evaluation commands (see eval_common.h).
#include "cli/eval_common.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gemm.h"
#include "data/dataset.h"
#include "eval/features.h"
#include "eval/knn_model.h"
#include "eval/npy.h"
#include "io/model_io.h"
#include "train/trainer.h"

void eval_model_args_default(EvalModelArgs *a) {
    memset(a, 0, sizeof *a);
    a->checkpoint_key = "teacher";
    a->arch = NULL;
    a->patch_size = 0;
    a->batch_size = 128;
    a->crop = 0;
    a->n_last_blocks = 1;
    a->avgpool = 0;
}

void eval_model_load(const EvalModelArgs *a, EvalModel *em) {
    memset(em, 0, sizeof *em);
    if (!a->pretrained_weights) dino_die("no model given: pass --pretrained_weights FILE");
    if (a->checkpoint_key && strcmp(a->checkpoint_key, "teacher") && strcmp(a->checkpoint_key, "student"))
        dino_warn("--checkpoint_key %s is neither teacher nor student", a->checkpoint_key);
    ModelLoadOptions opt;
    memset(&opt, 0, sizeof opt);
    opt.checkpoint_key = a->checkpoint_key;
    opt.head = MODEL_HEAD_NONE;
    opt.heads = a->heads;
    char err[1024];
    if (model_load(a->pretrained_weights, &opt, &em->m, &em->params, err, sizeof err) != 0)
        dino_die("%s", err);
    const ViTConfig *c = &em->m.vit;
    model_describe_backbone(&em->m, em->desc, sizeof em->desc);
    if (em->m.backbone == MODEL_BACKBONE_RESNET) {
        ResNetConfig want;
        int same = a->arch && resnet_config_preset(&want, a->arch) == 0;
        if (same) want.in_chans = em->m.resnet.in_chans, same = !memcmp(&want, &em->m.resnet, sizeof want);
        if (a->arch && !same)
            dino_die("%s holds a %s, not --arch %s: %s", a->pretrained_weights,
                     resnet_config_is_resnet50(&em->m.resnet) ? "resnet50"
                     : resnet_config_is_tiny(&em->m.resnet) ? "resnet_tiny" : "custom ResNet",
                     a->arch, em->desc);
        if (a->patch_size)
            dino_die("--patch_size does not apply to %s, a ResNet (%s)", a->pretrained_weights, em->desc);
        model_bind_resnet(&em->m, em->params, &em->rw);
        model_bind(&em->m, em->params, &em->w, NULL);
        return;
    }
    ResNetConfig rn;
    if (a->arch && resnet_config_preset(&rn, a->arch) == 0)
        dino_die("%s holds a ViT, not --arch %s: %s", a->pretrained_weights, a->arch, em->desc);
    if (a->arch || a->patch_size) {
        ViTConfig want;
        int patch = a->patch_size ? a->patch_size : c->patch;
        if (a->arch && vit_config_preset(&want, a->arch, patch) != 0)
            dino_die("unknown --arch %s (vit_tiny, vit_small, vit_base)", a->arch);
        if (a->patch_size && c->patch != a->patch_size)
            dino_die("%s holds a model with patch size %d, not the %d given by --patch_size (%s)",
                     a->pretrained_weights, c->patch, a->patch_size, em->desc);
        if (a->arch && (want.dim != c->dim || want.depth != c->depth || want.heads != c->heads))
            dino_die("%s holds a different architecture than --arch %s: %s", a->pretrained_weights,
                     a->arch, em->desc);
    }
    model_bind(&em->m, em->params, &em->w, NULL);
    if (a->use_bf16 && a->device != 0)
        dino_die("--use_bf16 runs on the CPU only; leave it out with --device cuda");
    eval_use_bf16(a->use_bf16, em->params, em->m.table.total);
}

void eval_use_bf16(int on, const float *params, size_t n) {
    if (!on) return;
    gemm_set_autocast_bf16(1);  // says so once where the CPU has no bf16
    if (!gemm_autocast_bf16()) return;
    if (gemm_bf16_weights_add(params, n)) dino_die("--use_bf16: too many models loaded at once");
}

void eval_model_require_vit(const EvalModelArgs *a, const EvalModel *em, const char *why) {
    if (em->m.backbone == MODEL_BACKBONE_RESNET)
        dino_die("%s holds a ResNet (%s): %s", a->pretrained_weights, em->desc, why);
}

void eval_model_free(EvalModel *em) {
    if (em->params) gemm_bf16_weights_remove(em->params);
    free(em->params);
    model_free(&em->m);
    memset(em, 0, sizeof *em);
}

int eval_crop(const EvalModelArgs *a, const EvalModel *em) {
    // A ResNet: 224, or 28 for the small stem of 28 px images.
    if (em->m.backbone == MODEL_BACKBONE_RESNET)
        return a->crop > 0 ? a->crop : em->m.resnet.stem_pool ? 224 : 28;
    int crop = a->crop > 0 ? a->crop : vit_eval_crop(&em->m.vit);
    if (crop < em->m.vit.patch)
        dino_die("--crop %d is smaller than the model's patch size %d", crop, em->m.vit.patch);
    return crop;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = mallocCheck(n);
    memcpy(p, s, n);
    return p;
}

void eval_features_from_model(const EvalModelArgs *a, const EvalModel *em, int split,
                              int tokens, EvalFeatures *out) {
    memset(out, 0, sizeof *out);
    if (!a->data_path) dino_die("no dataset given: pass --data_path");
    char err[1024];
    Dataset *ds = dataset_open(a->data_path, split ? SPLIT_TEST : SPLIT_TRAIN, err, sizeof err);
    if (!ds) dino_die("%s", err);
    FeatureConfig fc;
    feature_config_default(&fc);
    fc.crop = eval_crop(a, em);
    fc.batch_size = a->batch_size;
    fc.n_last_blocks = a->n_last_blocks;
    fc.avgpool = a->avgpool;
    fc.tokens = tokens;
    fc.device = a->device;
    fc.cuda_gemm = getenv("DINO_CUDA_GEMM");  // docs/GPU.md
    int th = dino_get_threads();
    fc.threads = th < 1 ? 1 : th > 8 ? 8 : th;
    fc.verbose = 1;
    out->n = dataset_size(ds);
    // Sizes checked before the (n, d) output is allocated: a huge --crop makes d huge too.
    int batch = out->n < fc.batch_size ? (int)out->n : fc.batch_size;
    int resnet = em->m.backbone == MODEL_BACKBONE_RESNET;
    if (out->n > 0 && (resnet ? features_check_resnet(&em->m.resnet, &fc, batch, err, sizeof err)
                              : features_check(&em->m.vit, &fc, batch, err, sizeof err)) != 0)
        dino_die("%s: %s", a->data_path, err);
    out->d = resnet ? model_feature_dim(&em->m) : features_dim(&em->m.vit, &fc);
    out->num_classes = dataset_num_classes(ds);
    out->has_splits = dataset_has_splits(ds);
    dino_info("%s (%s split): %s; crop %d; %lld floats per image from %s",
              dataset_describe(ds), split ? "val" : "train", em->desc, fc.crop,
              (long long)out->d, a->pretrained_weights);
    out->x = mallocCheck((size_t)out->n * out->d * sizeof(float));
    out->labels = mallocCheck((size_t)out->n * sizeof(int64_t));
    uint8_t *kept = a->skip_unreadable ? mallocCheck((size_t)out->n) : NULL;
    if ((resnet ? features_extract_resnet(&em->m.resnet, (ResNetWeights *)&em->rw, ds, &fc, out->x,
                                          out->labels, kept, err, sizeof err)
                : features_extract_skipping(&em->m.vit, &em->w, ds, &fc, out->x, out->labels, kept,
                                            err, sizeof err)) != 0)
        dino_die("%s: %s", a->data_path, err);
    if (a->record_paths && dataset_path(ds, 0)) {
        out->paths = mallocCheck((size_t)out->n * sizeof(char *));
        for (int64_t i = 0; i < out->n; i++) out->paths[i] = dup_str(dataset_path(ds, i));
    }
    if (kept) {
        // Rows of unreadable images leave, the others keep their order.
        int64_t m = 0;
        for (int64_t i = 0; i < out->n; i++) {
            if (!kept[i]) {
                char name[4096];
                dataset_image_name(ds, i, name, sizeof name);
                out->skipped = reallocCheck(out->skipped, (size_t)(out->n_skipped + 1) * sizeof(char *));
                out->skipped[out->n_skipped++] = dup_str(name);
                if (out->paths) free(out->paths[i]);
                continue;
            }
            if (m != i) {
                memcpy(out->x + (size_t)m * out->d, out->x + (size_t)i * out->d,
                       (size_t)out->d * sizeof(float));
                out->labels[m] = out->labels[i];
                if (out->paths) out->paths[m] = out->paths[i];
            }
            m++;
        }
        out->n = m;
        free(kept);
    }
    out->labelled = 1;
    for (int64_t i = 0; i < out->n; i++)
        if (out->labels[i] < 0) out->labelled = 0;
    dataset_close(ds);
}

void eval_features_free(EvalFeatures *f) {
    if (f->paths)
        for (int64_t i = 0; i < f->n; i++) free(f->paths[i]);
    for (int64_t i = 0; i < f->n_skipped; i++) free(f->skipped[i]);
    free(f->paths);
    free(f->skipped);
    free(f->x);
    free(f->labels);
    memset(f, 0, sizeof *f);
}

// ---------------------------------------------------------------- training hook

// The trainer's `--eval_knn_every` evaluation (TrainHooks.eval, which
// cmd_train sets): k-NN of the teacher backbone on the training dataset's
// labelled train/val splits with k = 20 (the reference's "usually best") and
// T = 0.07, logged as knn_top1/knn_top5 in log.txt.
int eval_knn_during_training(void *ctx, const TrainConfig *cfg, const DinoModel *model,
                             const float *teacher, int epoch, char *json, size_t n) {
    (void)ctx;
    ViTWeights w;
    model_bind(model, (float *)teacher, &w, NULL);  // read only: a forward pass never writes weights
    KnnModelConfig kc;
    knn_model_config_default(&kc, cfg->data_path);
    kc.knn.n_k = 1;
    kc.knn.ks[0] = 20;
    int th = dino_get_threads();
    kc.threads = th < 1 ? 1 : th > 8 ? 8 : th;
    KnnResult r;
    char err[512];
    double t0 = dino_now();
    ResNetWeights rw;
    int rc;
    if (model->backbone == MODEL_BACKBONE_RESNET) {
        model_bind_resnet(model, (float *)teacher, &rw);  // evaluation mode: running statistics, not written
        rc = knn_evaluate_resnet(&model->resnet, &rw, &kc, &r, err, sizeof err);
    } else {
        rc = knn_evaluate_model(&model->vit, &w, &kc, &r, err, sizeof err);
    }
    if (rc != 0) {
        dino_warn("epoch %d: k-NN evaluation skipped: %s", epoch, err);
        return -1;
    }
    dino_info("epoch %d: 20-NN top-1 %.2f top-5 %.2f (%.1f s)", epoch, r.top1, r.top5,
              dino_now() - t0);
    snprintf(json, n, "\"knn_k\": 20, \"knn_top1\": %.4f, \"knn_top5\": %.4f", r.top1, r.top5);
    return 0;
}

static float *load_npy_features(const char *path, int64_t *n, int64_t *d) {
    char err[512];
    NpyInfo info;
    float *x = npy_read_f32(path, &info, err, sizeof err);
    if (!x) dino_die("%s", err);
    if (info.ndim != 2)
        dino_die("%s: features must be a 2-D array (samples, dim), got %d dimensions", path,
                 info.ndim);
    *n = info.shape[0];
    *d = info.shape[1];
    if (*d > INT_MAX)
        dino_die("%s: feature dimension %lld is above the limit of %d", path, (long long)*d, INT_MAX);
    // A NaN or infinity is the sign of a diverged model; no evaluation of it means anything.
    for (size_t i = 0; i < info.numel; i++)
        if (!isfinite(x[i]))
            dino_die("%s: feature %lld of sample %lld is not a finite number (%g)", path,
                     (long long)(i % (size_t)*d), (long long)(i / (size_t)*d), x[i]);
    return x;
}

// "(2, 4)", "(5,)", "()": the shape as NumPy prints it.
static void format_shape(const NpyInfo *info, char *out, size_t n) {
    size_t len = (size_t)snprintf(out, n, "(");
    for (int i = 0; i < info->ndim && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s%lld", i ? ", " : "",
                                (long long)info->shape[i]);
    if (len < n) snprintf(out + len, n - len, "%s)", info->ndim == 1 ? "," : "");
}

// One label per feature row, each in [0, max_classes): checked as int64,
// before any narrowing to the int class counts.
static int64_t *load_npy_labels(const char *path, int64_t n, int max_classes) {
    char err[512];
    NpyInfo info;
    int64_t *l = npy_read_i64(path, &info, err, sizeof err);
    if (!l) dino_die("%s", err);
    if (info.ndim != 1) {
        char shape[160];
        format_shape(&info, shape, sizeof shape);
        dino_die("%s: labels must be 1-D, got shape %s", path, shape);
    }
    if ((int64_t)info.numel != n)
        dino_die("%s: expected %lld labels (one per feature row), got %zu", path, (long long)n,
                 info.numel);
    for (int64_t i = 0; i < n; i++) {
        if (l[i] < 0)
            dino_die("%s: sample %lld has no label (%lld); the evaluation needs labelled samples",
                     path, (long long)i, (long long)l[i]);
        if (l[i] >= max_classes)
            dino_die("%s: label %lld of sample %lld is not below the limit of %d classes", path,
                     (long long)l[i], (long long)i, max_classes);
    }
    return l;
}

void eval_labelled_features(const char *command, const FeatureFiles *files, int max_classes,
                            const EvalModelArgs *a, EvalFeatures *train, EvalFeatures *val) {
    FeatureFiles f = *files;
    char paths[4][4096];
    if (f.dir) {
        const char *names[4] = {"train_features", "train_labels", "val_features", "val_labels"};
        for (int i = 0; i < 4; i++) snprintf(paths[i], sizeof paths[i], "%s/%s.npy", f.dir, names[i]);
        f.train_features = paths[0], f.train_labels = paths[1];
        f.val_features = paths[2], f.val_labels = paths[3];
    }
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (f.train_features || f.val_features || f.train_labels || f.val_labels) {
        if (!f.train_features || !f.val_features)
            dino_die("dino %s needs both --train_features and --val_features", command);
        if (!f.train_labels || !f.val_labels)
            dino_die("dino %s needs labels: pass --train_labels and --val_labels", command);
        train->x = load_npy_features(f.train_features, &train->n, &train->d);
        val->x = load_npy_features(f.val_features, &val->n, &val->d);
        if (train->d != val->d)
            dino_die("training features have dimension %lld but validation features %lld",
                     (long long)train->d, (long long)val->d);
        train->labels = load_npy_labels(f.train_labels, train->n, max_classes);
        val->labels = load_npy_labels(f.val_labels, val->n, max_classes);
        train->labelled = val->labelled = 1;
        return;
    }
    if (!a->pretrained_weights || !a->data_path)
        dino_die("dino %s needs --train_features/--val_features files or "
                 "--pretrained_weights and --data_path (see dino %s --help)", command, command);
    EvalModel em;
    eval_model_load(a, &em);
    eval_features_from_model(a, &em, 0, 0, train);
    eval_features_from_model(a, &em, 1, 0, val);
    eval_model_free(&em);
    if (!train->labelled || !val->labelled)
        dino_die("dino %s needs labels, but %s has none (use a labelled dataset)", command,
                 a->data_path);
}
