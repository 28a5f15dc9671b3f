// Linear probe training (see linear.h). A batch is: gather rows, logits =
// X·Wᵀ + b (sgemm), softmax cross-entropy, dlogits = (p − onehot)/B,
// dW = dlogitsᵀ·X (sgemm), db = Σ dlogits, then PyTorch's SGD update.
#include "eval/linear.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gemm.h"
#include "rng.h"

void linear_config_default(LinearConfig *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 100;
    c->lr = 0.001f;
    c->batch_size = 128;
    c->momentum = 0.9f;
    c->weight_decay = 0.0f;
    c->val_freq = 1;
    c->shuffle = 1;
    c->seed = 0;
}

int linear_check_shape(int dim, int num_classes, int batch, char *err, size_t errlen) {
    if (num_classes < 2) return dino_errf(err, errlen, "the linear probe needs at least 2 classes");
    if (num_classes > LINEAR_MAX_CLASSES)
        return dino_errf(err, errlen, "the linear probe supports at most %d classes, got %d",
                    LINEAR_MAX_CLASSES, num_classes);
    if (dim < 1)
        return dino_errf(err, errlen, "the linear probe needs features of dimension >= 1, got %d", dim);
    if (batch < 1)
        return dino_errf(err, errlen, "the linear probe needs a batch size >= 1, got %d", batch);
    int64_t weights = (int64_t)num_classes * dim;
    if (weights > LINEAR_MAX_WEIGHTS)
        return dino_errf(err, errlen,
                    "a linear classifier of %d classes on %d features has %lld weights, above the "
                    "limit of %lld", num_classes, dim, (long long)weights, (long long)LINEAR_MAX_WEIGHTS);
    int64_t wide = num_classes > dim ? num_classes : dim;
    if ((int64_t)batch * wide > LINEAR_MAX_WEIGHTS)
        return dino_errf(err, errlen,
                    "a linear-probe batch of %d samples x %lld values is above the limit of %lld "
                    "floats; use a smaller batch", batch, (long long)wide, (long long)LINEAR_MAX_WEIGHTS);
    return 0;
}

int linear_check_finite(const float *x, int64_t n, int dim, const char *which, char *err,
                        size_t errlen) {
    for (int64_t i = 0; i < n * dim; i++)
        if (!isfinite(x[i]))
            return dino_errf(err, errlen,
                        "the linear probe's %s feature %lld of sample %lld is not a finite number (%g)",
                        which, (long long)(i % dim), (long long)(i / dim), x[i]);
    return 0;
}

int linear_validates(const LinearConfig *c, int epoch) {
    if (epoch == c->epochs - 1) return 1;
    return c->val_freq > 0 && (epoch + 1) % c->val_freq == 0;
}

void linear_init(LinearClassifier *lc, int dim, int num_classes, uint64_t seed) {
    lc->dim = dim;
    lc->num_classes = num_classes;
    lc->w = mallocCheck((size_t)dim * num_classes * sizeof(float));
    lc->b = callocCheck((size_t)num_classes, sizeof(float));
    Rng r;
    rng_stream(&r, RNG_LINEAR_INIT, seed, 0, 0, 0);
    for (size_t i = 0; i < (size_t)dim * num_classes; i++) lc->w[i] = (float)(0.01 * rng_normal(&r));
}

void linear_free(LinearClassifier *lc) {
    free(lc->w);
    free(lc->b);
    lc->w = lc->b = NULL;
}

void linear_sgd_init(LinearSgd *opt, const LinearClassifier *lc) {
    opt->mw = callocCheck((size_t)lc->dim * lc->num_classes, sizeof(float));
    opt->mb = callocCheck((size_t)lc->num_classes, sizeof(float));
    opt->started = 0;
}

void linear_sgd_free(LinearSgd *opt) {
    free(opt->mw);
    free(opt->mb);
    opt->mw = opt->mb = NULL;
}

double linear_lr_at(double base_lr, int epoch, int epochs) {
    return 0.5 * base_lr * (1.0 + cos(M_PI * (double)epoch / (double)epochs));
}

// Softmax cross-entropy of rows of logits (B, C) in place: logits become
// dL/dlogits for the mean loss; returns the mean loss.
static double softmax_xent(float *logits, const int64_t *y, int B, int C) {
    double loss = 0;
    for (int i = 0; i < B; i++) {
        float *l = logits + (size_t)i * C;
        float mx = l[0];
        for (int c = 1; c < C; c++) mx = l[c] > mx ? l[c] : mx;
        double sum = 0;
        for (int c = 0; c < C; c++) sum += exp((double)l[c] - mx);
        double lse = mx + log(sum);
        loss += lse - l[y[i]];
        for (int c = 0; c < C; c++) l[c] = (float)(exp((double)l[c] - lse) / B);
        l[y[i]] -= 1.0f / (float)B;
    }
    return loss / B;
}

static void sgd_update(float *p, float *buf, const float *g, size_t n, float lr, float mom,
                       float wd, int first) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        if (wd != 0.0f) gi += wd * p[i];
        buf[i] = first ? gi : mom * buf[i] + gi;
        p[i] -= lr * buf[i];
    }
}

double linear_train_epoch(LinearClassifier *lc, LinearSgd *opt, const float *x,
                          const int64_t *y, int64_t n, const int64_t *order, int batch, float lr,
                          float momentum, float weight_decay) {
    int D = lc->dim, C = lc->num_classes;
    int rows = n < batch ? (int)n : batch;  // a batch larger than the data needs no more room
    float *xb = mallocCheck((size_t)rows * D * sizeof(float));
    int64_t *yb = mallocCheck((size_t)rows * sizeof(int64_t));
    float *lg = mallocCheck((size_t)rows * C * sizeof(float));
    float *gw = mallocCheck((size_t)C * D * sizeof(float));
    float *gb = mallocCheck((size_t)C * sizeof(float));
    double loss_sum = 0;
    int64_t n_batches = 0;
    for (int64_t s = 0; s < n; s += batch) {
        int B = (int)(n - s < batch ? n - s : batch);
        for (int i = 0; i < B; i++) {
            int64_t k = order ? order[s + i] : s + i;
            memcpy(xb + (size_t)i * D, x + (size_t)k * D, (size_t)D * sizeof(float));
            yb[i] = y[k];
        }
        for (int i = 0; i < B; i++) memcpy(lg + (size_t)i * C, lc->b, (size_t)C * sizeof(float));
        gemm_f32(GEMM_N, GEMM_T, B, C, D, 1.0f, xb, D, lc->w, D, 1.0f, lg, C);
        loss_sum += softmax_xent(lg, yb, B, C);
        n_batches++;
        // gw (C, D) = dlogitsᵀ (C, B) · xb (B, D)
        gemm_f32(GEMM_T, GEMM_N, C, D, B, 1.0f, lg, C, xb, D, 0.0f, gw, D);
        for (int c = 0; c < C; c++) {
            float acc = 0;
            for (int i = 0; i < B; i++) acc += lg[(size_t)i * C + c];
            gb[c] = acc;
        }
        sgd_update(lc->w, opt->mw, gw, (size_t)C * D, lr, momentum, weight_decay, !opt->started);
        sgd_update(lc->b, opt->mb, gb, (size_t)C, lr, momentum, weight_decay, !opt->started);
        opt->started = 1;
    }
    free(xb); free(yb); free(lg); free(gw); free(gb);
    return n_batches ? loss_sum / (double)n_batches : 0;
}

void linear_evaluate(const LinearClassifier *lc, const float *x, const int64_t *y, int64_t n,
                     double *top1, double *top5, double *loss) {
    int D = lc->dim, C = lc->num_classes;
    // Up to 1024 rows of logits at a time, fewer with many classes (2^20 floats at most).
    int chunk = (1 << 20) / C;
    if (chunk > 1024) chunk = 1024;
    if (chunk < 1) chunk = 1;
    float *lg = mallocCheck((size_t)chunk * C * sizeof(float));
    int64_t c1 = 0, c5 = 0;
    double loss_sum = 0;
    int topk = C < 5 ? C : 5;
    for (int64_t s = 0; s < n; s += chunk) {
        int B = (int)(n - s < chunk ? n - s : chunk);
        for (int i = 0; i < B; i++) memcpy(lg + (size_t)i * C, lc->b, (size_t)C * sizeof(float));
        gemm_f32(GEMM_N, GEMM_T, B, C, D, 1.0f, x + (size_t)s * D, D, lc->w, D, 1.0f, lg, C);
        for (int i = 0; i < B; i++) {
            const float *l = lg + (size_t)i * C;
            int64_t t = y[s + i];
            int rank = 0;
            float mx = l[0];
            for (int c = 0; c < C; c++) {
                if (l[c] > l[t] || (l[c] == l[t] && c < t)) rank++;
                if (l[c] > mx) mx = l[c];
            }
            double sum = 0;
            for (int c = 0; c < C; c++) sum += exp((double)l[c] - mx);
            loss_sum += mx + log(sum) - l[t];
            c1 += rank == 0;
            c5 += rank < topk;
        }
    }
    free(lg);
    *top1 = n ? 100.0 * (double)c1 / (double)n : 0;
    *top5 = n ? 100.0 * (double)c5 / (double)n : 0;
    *loss = n ? loss_sum / (double)n : 0;
}

double linear_validate_epoch(const LinearClassifier *lc, const float *x, const int64_t *y,
                             int64_t n, int epoch, LinearResult *res) {
    double t1, t5, loss;
    linear_evaluate(lc, x, y, n, &t1, &t5, &loss);
    res->last_top1 = t1;
    res->last_top5 = t5;
    if (t1 > res->best_top1) {
        res->best_top1 = t1;
        res->best_top5 = t5;
        res->best_epoch = epoch;
    }
    return loss;
}

static int check_labels(const int64_t *y, int64_t n, int nc, const char *which, char *err,
                        size_t errlen) {
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= nc)
            return dino_errf(err, errlen,
                        "the linear probe needs labels in [0, %d), but %s sample %lld has label %lld",
                        nc, which, (long long)i, (long long)y[i]);
    return 0;
}

int linear_epoch_end(const LinearClassifier *lc, const LinearConfig *cfg, const float *val_x,
                     const int64_t *val_y, int64_t n_val, int epoch, float lr, double train_loss,
                     double seconds, LinearResult *res, char *err, size_t errlen) {
    if (!isfinite(train_loss))
        return dino_errf(err, errlen,
                    "the linear probe's training loss is not finite (%g) at epoch %d (the features "
                    "are too large or the learning rate diverges), so no accuracy is reported",
                    train_loss, epoch);
    char line[512];
    int len = snprintf(line, sizeof line, "epoch %d: lr %.6g train loss %.4f", epoch, lr, train_loss);
    if (n_val > 0 && linear_validates(cfg, epoch)) {
        double vl = linear_validate_epoch(lc, val_x, val_y, n_val, epoch, res);
        if (!isfinite(vl))
            return dino_errf(err, errlen,
                        "the linear probe's validation loss is not finite (%g) at epoch %d (the "
                        "classifier diverged), so no accuracy is reported", vl, epoch);
        len += snprintf(line + len, sizeof line - (size_t)len,
                        " val loss %.4f top-1 %.2f top-5 %.2f (best top-1 %.2f", vl, res->last_top1,
                        res->last_top5, res->best_top1);
        if (seconds >= 0) snprintf(line + len, sizeof line - (size_t)len, "; %.1f s)", seconds);
        else snprintf(line + len, sizeof line - (size_t)len, ")");
    } else if (seconds >= 0) {
        snprintf(line + len, sizeof line - (size_t)len, " (%.1f s)", seconds);
    }
    if (cfg->verbose) printf("%s\n", line);
    return 0;
}

int linear_probe(const LinearConfig *cfg, const float *train_x, const int64_t *train_y,
                 int64_t n_train, const float *val_x, const int64_t *val_y, int64_t n_val,
                 int dim, int num_classes, LinearClassifier *out, LinearResult *res, char *err,
                 size_t errlen) {
    if (n_train < 1) return dino_errf(err, errlen, "the linear probe has no training samples");
    if (cfg->epochs < 1 || cfg->batch_size < 1)
        return dino_errf(err, errlen, "the linear probe needs epochs >= 1 and batch_size >= 1");
    if (cfg->val_freq < 0)
        return dino_errf(err, errlen,
                    "the linear probe's val_freq must be >= 0 (0: validate after the last epoch "
                    "only), got %d", cfg->val_freq);
    int batch = n_train < cfg->batch_size ? (int)n_train : cfg->batch_size;
    if (linear_check_shape(dim, num_classes, batch, err, errlen)) return -1;
    if (check_labels(train_y, n_train, num_classes, "training", err, errlen)) return -1;
    if (check_labels(val_y, n_val, num_classes, "validation", err, errlen)) return -1;
    if (linear_check_finite(train_x, n_train, dim, "training", err, errlen)) return -1;
    if (linear_check_finite(val_x, n_val, dim, "validation", err, errlen)) return -1;
    LinearClassifier lc;
    linear_init(&lc, dim, num_classes, cfg->seed);
    LinearSgd opt;
    linear_sgd_init(&opt, &lc);
    int64_t *order = mallocCheck((size_t)n_train * sizeof(int64_t));
    double base_lr = (double)cfg->lr * cfg->batch_size / 256.0;
    memset(res, 0, sizeof *res);
    res->best_top1 = -1;
    int rc = 0;
    for (int e = 0; e < cfg->epochs && rc == 0; e++) {
        if (cfg->shuffle) {
            Rng r;
            rng_stream(&r, RNG_LINEAR_ORDER, cfg->seed, (uint64_t)e, 0, 0);
            rng_shuffle_order(&r, order, n_train);
        } else {
            for (int64_t i = 0; i < n_train; i++) order[i] = i;
        }
        float lr = (float)linear_lr_at(base_lr, e, cfg->epochs);
        double tl = linear_train_epoch(&lc, &opt, train_x, train_y, n_train, order,
                                       cfg->batch_size, lr, cfg->momentum, cfg->weight_decay);
        res->last_train_loss = tl;
        rc = linear_epoch_end(&lc, cfg, val_x, val_y, n_val, e, lr, tl, -1, res, err, errlen);
        fflush(stdout);
    }
    if (res->best_top1 < 0) res->best_top1 = 0;
    free(order);
    linear_sgd_free(&opt);
    if (rc == 0 && out) *out = lc;
    else linear_free(&lc);
    return rc;
}
