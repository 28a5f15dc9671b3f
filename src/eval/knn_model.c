// knn_evaluate_model (see knn_model.h).
#include "eval/knn_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data/dataset.h"
#include "eval/features.h"

void knn_model_config_default(KnnModelConfig *c, const char *data_path) {
    memset(c, 0, sizeof *c);
    c->data_path = data_path;
    c->crop = 0;
    c->batch_size = 128;
    c->threads = 2;
    knn_config_default(&c->knn);
}

// The backbone whose features are scored: a ViT, or a ResNet when rn is set.
typedef struct {
    const ViTConfig *cfg;
    const ViTWeights *w;
    const ResNetConfig *rn;
    ResNetWeights *rw;
} Backbone;

static int split_features(const Backbone *bb, const KnnModelConfig *c, Split split, float **x,
                          int64_t **labels, int64_t *n, int64_t *d, char *err, size_t errlen) {
    Dataset *ds = dataset_open(c->data_path, split, err, errlen);
    if (!ds) return -1;
    const char *which = split == SPLIT_TRAIN ? "train" : "val";
    if (dataset_num_classes(ds) == 0) {
        snprintf(err, errlen, "k-NN needs labels, but the %s split of %s has none", which,
                 c->data_path);
        dataset_close(ds);
        return -1;
    }
    FeatureConfig fc;
    feature_config_default(&fc);
    // A ResNet: 224 px, or 28 px for the small stem (28 px images), as `dino knn`.
    fc.crop = c->crop > 0 ? c->crop : bb->rn ? (bb->rn->stem_pool ? 224 : 28) : vit_eval_crop(bb->cfg);
    fc.batch_size = c->batch_size;
    fc.threads = c->threads;
    *n = dataset_size(ds);
    // Sizes checked before the (n, d) output is allocated.
    int batch = *n < fc.batch_size ? (int)*n : fc.batch_size;
    if (*n > 0 && (bb->rn ? features_check_resnet(bb->rn, &fc, batch, err, errlen)
                          : features_check(bb->cfg, &fc, batch, err, errlen)) != 0) {
        dataset_close(ds);
        return -1;
    }
    *d = bb->rn ? resnet_out_dim(bb->rn) : features_dim(bb->cfg, &fc);
    *x = mallocCheck((size_t)*n * *d * sizeof(float));
    *labels = mallocCheck((size_t)*n * sizeof(int64_t));
    int rc = bb->rn ? features_extract_resnet(bb->rn, bb->rw, ds, &fc, *x, *labels, NULL, err, errlen)
                    : features_extract(bb->cfg, bb->w, ds, &fc, *x, *labels, err, errlen);
    dataset_close(ds);
    if (rc) {
        free(*x);
        free(*labels);
        *x = NULL;
        *labels = NULL;
    }
    return rc;
}

static int knn_evaluate_backbone(const Backbone *bb, const KnnModelConfig *c, KnnResult *results,
                                 char *err, size_t errlen) {
    float *tr = NULL, *te = NULL;
    int64_t *trl = NULL, *tel = NULL, ntr, nte, d, d2;
    if (split_features(bb, c, SPLIT_TRAIN, &tr, &trl, &ntr, &d, err, errlen)) return -1;
    if (split_features(bb, c, SPLIT_TEST, &te, &tel, &nte, &d2, err, errlen)) {
        free(tr);
        free(trl);
        return -1;
    }
    int rc = knn_evaluate(tr, trl, ntr, te, tel, nte, (int)d, &c->knn, results, err, errlen);
    free(tr);
    free(trl);
    free(te);
    free(tel);
    return rc;
}

int knn_evaluate_model(const ViTConfig *cfg, const ViTWeights *w, const KnnModelConfig *c,
                       KnnResult *results, char *err, size_t errlen) {
    Backbone bb = {cfg, w, NULL, NULL};
    return knn_evaluate_backbone(&bb, c, results, err, errlen);
}

int knn_evaluate_resnet(const ResNetConfig *cfg, ResNetWeights *w, const KnnModelConfig *c,
                        KnnResult *results, char *err, size_t errlen) {
    Backbone bb = {NULL, NULL, cfg, w};
    return knn_evaluate_backbone(&bb, c, results, err, errlen);
}
