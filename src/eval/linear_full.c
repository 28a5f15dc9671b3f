// Full-mode linear probe (see linear_full.h).
#include "eval/linear_full.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data/augment.h"
#include "image/ops.h"
#include "rng.h"

void linear_train_view(const Image *im, int crop, uint64_t seed, int epoch, int64_t index,
                       float *out) {
    Rng r;
    rng_stream(&r, RNG_LINEAR_AUGMENT, seed, (uint64_t)epoch, (uint64_t)index, 0);
    int i, j, h, w;
    augment_rrc_params(&r, im->w, im->h, 0.08f, 1.0f, &i, &j, &h, &w);
    // The fallback box can overhang by a rounding pixel; keep it inside.
    if (i < 0) h += i, i = 0;
    if (j < 0) w += j, j = 0;
    if (i + h > im->h) h = im->h - i;
    if (j + w > im->w) w = im->w - j;
    uint8_t *u = mallocCheck((size_t)crop * crop * 3);
    image_resize_region(u, crop, crop, im->rgb, im->w * 3, j, i, w, h, RESAMPLE_BILINEAR);
    if (rng_uniform(&r) < 0.5f) image_hflip(u, crop, crop);
    image_to_tensor(out, u, crop, crop, IMAGENET_MEAN, IMAGENET_STD);
    free(u);
}

int linear_probe_full(const ViTConfig *cfg, const ViTWeights *w, const Dataset *train,
                      const float *val_x, const int64_t *val_y, int64_t n_val,
                      const FeatureConfig *fc, const LinearConfig *lcfg, int num_classes,
                      LinearClassifier *out, LinearResult *res, char *err, size_t errlen) {
    int64_t N = dataset_size(train);
    if (N < 1) return dino_errf(err, errlen, "the training set is empty");
    if (lcfg->epochs < 1 || lcfg->batch_size < 1)
        return dino_errf(err, errlen,
                    "the linear probe needs epochs >= 1 and batch_size >= 1, got %d and %d",
                    lcfg->epochs, lcfg->batch_size);
    if (lcfg->val_freq < 0)
        return dino_errf(err, errlen,
                    "the linear probe's val_freq must be >= 0 (0: validate after the last epoch "
                    "only), got %d", lcfg->val_freq);
    // Buffers for at most the whole training set; the step size still follows lcfg->batch_size.
    int B = N < lcfg->batch_size ? (int)N : lcfg->batch_size, crop = fc->crop;
    if (features_check(cfg, fc, B, err, errlen)) return -1;
    int64_t dim = features_dim(cfg, fc);
    if (linear_check_shape((int)dim, num_classes, B, err, errlen)) return -1;
    for (int64_t k = 0; k < N; k++) {
        int32_t y = dataset_label(train, k);
        if (y < 0 || y >= num_classes)
            return dino_errf(err, errlen, "the linear probe needs labels in [0, %d), but training sample %lld has %d",
                        num_classes, (long long)k, y);
    }
    if (linear_check_finite(val_x, n_val, (int)dim, "validation", err, errlen)) return -1;
    LinearClassifier lc;
    linear_init(&lc, (int)dim, num_classes, lcfg->seed);
    LinearSgd opt;
    linear_sgd_init(&opt, &lc);
    struct ViTActs *acts = vit_acts_create(cfg, B, crop, crop, 0);
    float *imgs = mallocCheck((size_t)B * 3 * crop * crop * sizeof(float));
    float *feats = mallocCheck((size_t)B * dim * sizeof(float));
    int64_t *ys = mallocCheck((size_t)B * sizeof(int64_t));
    int64_t *order = mallocCheck((size_t)N * sizeof(int64_t));
    double base_lr = (double)lcfg->lr * lcfg->batch_size / 256.0;
    memset(res, 0, sizeof *res);
    res->best_top1 = -1;
    int rc = 0;
    for (int e = 0; e < lcfg->epochs && rc == 0; e++) {
        Rng r;
        rng_stream(&r, RNG_LINEAR_ORDER, lcfg->seed, (uint64_t)e, 1, 0);
        rng_shuffle_order(&r, order, N);
        float lr = (float)linear_lr_at(base_lr, e, lcfg->epochs);
        double loss_sum = 0;
        int64_t steps = 0;
        double t0 = dino_now();
        for (int64_t s = 0; s < N && rc == 0; s += B) {
            int nb = (int)(N - s < B ? N - s : B);
            int bad = -1;
            char ierr[256] = "";
#pragma omp parallel for schedule(dynamic)
            for (int b = 0; b < nb; b++) {
                Image im = {0};
                char e2[256];
                if (dataset_load(train, order[s + b], 0, &im, e2, sizeof e2) != 0) {
#pragma omp critical
                    {
                        bad = b;
                        snprintf(ierr, sizeof ierr, "%s", e2);
                    }
                    continue;
                }
                linear_train_view(&im, crop, lcfg->seed, e, order[s + b],
                                  imgs + (size_t)b * 3 * crop * crop);
                ys[b] = dataset_label(train, order[s + b]);
                image_free(&im);
            }
            if (bad >= 0) {
                rc = dino_errf(err, errlen, "%s", ierr);
                break;
            }
            features_from_images(cfg, w, acts, imgs, nb, fc, feats);
            loss_sum += linear_train_epoch(&lc, &opt, feats, ys, nb, NULL, nb, lr,
                                           lcfg->momentum, lcfg->weight_decay);
            steps++;
        }
        if (rc) break;
        double tl = steps ? loss_sum / steps : 0;
        res->last_train_loss = tl;
        rc = linear_epoch_end(&lc, lcfg, val_x, val_y, n_val, e, lr, tl, dino_now() - t0, res, err,
                              errlen);
        fflush(stdout);
    }
    if (res->best_top1 < 0) res->best_top1 = 0;
    free(imgs); free(feats); free(ys); free(order);
    vit_acts_free(acts);
    linear_sgd_free(&opt);
    if (rc == 0 && out) *out = lc;
    else linear_free(&lc);
    return rc;
}
