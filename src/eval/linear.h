// The reference's linear probe (eval_linear.py, docs/DINO.md §9) on frozen features:
// one Linear(dim, classes) with weight N(0, 0.01) and zero bias, cross-entropy
// loss (mean over the batch), SGD with momentum 0.9 and no dampening or
// Nesterov, weight decay 0 by default, learning rate lr·batch/256 annealed by
// a cosine over epochs (CosineAnnealingLR, T_max = epochs, eta_min = 0,
// stepped once per epoch), validation each val_freq epochs and at the end,
// reporting the best validation top-1.
//
// Difference from the reference, by design of this fast mode: the features
// are computed once (centre crop, no RandomResizedCrop/flip augmentation per
// epoch), so each epoch is a few GEMMs instead of a backbone pass per image.
#ifndef DINO_EVAL_LINEAR_H
#define DINO_EVAL_LINEAR_H

#include <stddef.h>
#include <stdint.h>

// At most this many classes: a class index of 2^24 or more is an id or a
// corrupt file, not one of a dataset's classes (ImageNet-21k has 21,841).
#define LINEAR_MAX_CLASSES (1 << 24)
// At most this many floats in the weight (classes x dim) and in a batch's
// logits or features: the weight, its momentum and its gradient then take
// 1 GiB each; a larger probe is a wrong --num_labels or batch, not a plan.
#define LINEAR_MAX_WEIGHTS ((int64_t)1 << 28)

typedef struct {
    int dim, num_classes;
    float *w;  // (num_classes, dim)
    float *b;  // (num_classes)
} LinearClassifier;

typedef struct {
    float *mw, *mb;  // momentum buffers, same shapes as w and b
    int started;     // the first step copies the gradient into the buffer
} LinearSgd;

typedef struct {
    int epochs;          // 100
    float lr;            // 0.001, for a batch of 256
    int batch_size;      // 128: the step size is lr·batch_size/256
    float momentum;      // 0.9
    float weight_decay;  // 0
    int val_freq;        // 1; 0: validate only after the last epoch
    int shuffle;         // 1: a new order each epoch from (seed, epoch); 0: dataset order
    uint64_t seed;       // for the init and the shuffles
    int verbose;         // print one line per epoch to stdout
} LinearConfig;

typedef struct {
    double best_top1, best_top5;  // percent; best_top5 goes with the best top-1 epoch
    int best_epoch;               // 0-based
    double last_top1, last_top5, last_train_loss;
} LinearResult;

void linear_config_default(LinearConfig *c);

// 0 when a probe of num_classes classes on dim features, trained in batches
// of `batch`, lies within the limits above; -1 with err filled otherwise.
int linear_check_shape(int dim, int num_classes, int batch, char *err, size_t errlen);
// 0 when every one of the n rows of x (n, dim) is finite; -1 with err
// naming `which` ("training", "validation"), the sample and the feature.
int linear_check_finite(const float *x, int64_t n, int dim, const char *which, char *err,
                        size_t errlen);
// Whether epoch e (0-based) ends with a validation: every val_freq epochs and
// after the last one (only then when val_freq is 0).
int linear_validates(const LinearConfig *c, int epoch);

// Allocates and initialises (weight N(0, 0.01) from a stream keyed by seed,
// bias 0); the shape must pass linear_check_shape.
void linear_init(LinearClassifier *lc, int dim, int num_classes, uint64_t seed);
void linear_free(LinearClassifier *lc);
void linear_sgd_init(LinearSgd *opt, const LinearClassifier *lc);
void linear_sgd_free(LinearSgd *opt);

// Learning rate of epoch e (0-based): CosineAnnealingLR with eta_min 0.
double linear_lr_at(double base_lr, int epoch, int epochs);

// One pass over the n samples taken in `order` (NULL: 0..n-1) in batches of
// `batch` (the last one may be smaller), one SGD step per batch at `lr`.
// Returns the mean of the per-batch losses.
double linear_train_epoch(LinearClassifier *lc, LinearSgd *opt, const float *x,
                          const int64_t *y, int64_t n, const int64_t *order, int batch, float lr,
                          float momentum, float weight_decay);

// Top-1 and top-min(5, classes) accuracy in percent and mean loss over x.
void linear_evaluate(const LinearClassifier *lc, const float *x, const int64_t *y, int64_t n,
                     double *top1, double *top5, double *loss);

// linear_evaluate on the validation set after epoch `epoch`: its top-1 and
// top-5 become res's last, and its best when top-1 improves. Returns the loss.
double linear_validate_epoch(const LinearClassifier *lc, const float *x, const int64_t *y,
                             int64_t n, int epoch, LinearResult *res);

// What ends epoch `epoch` of a probe: a training loss that is not finite is
// an error; when linear_validates, validation (a non-finite validation loss
// is an error too); with cfg->verbose, one line on stdout, ending in the
// epoch's time when seconds >= 0. 0, or -1 with err filled.
int linear_epoch_end(const LinearClassifier *lc, const LinearConfig *cfg, const float *val_x,
                     const int64_t *val_y, int64_t n_val, int epoch, float lr, double train_loss,
                     double seconds, LinearResult *res, char *err, size_t errlen);

// The whole probe: init, epochs × (train, schedule, validate). Labels must
// lie in [0, num_classes). Returns 0, or -1 with err filled: bad labels or
// settings, a shape beyond the limits, a non-finite feature, or a training or
// validation loss that is not finite (then no accuracy is reported: a
// diverged probe ranks NaN logits as correct).
int linear_probe(const LinearConfig *cfg, const float *train_x, const int64_t *train_y,
                 int64_t n_train, const float *val_x, const int64_t *val_y, int64_t n_val,
                 int dim, int num_classes, LinearClassifier *out, LinearResult *res, char *err,
                 size_t errlen);

#endif
