// Weighted k-nearest-neighbour classification, as the reference's
// eval_knn.py (docs/DINO.md §8): features L2-normalised, cosine similarity, the k most
// similar training samples each vote for their label with weight exp(sim/T),
// top-1 and top-min(5,k) accuracy in percent. Similarities come from blocked
// cblas_sgemm and each test row keeps a partial top-k heap, so no N×M matrix
// is ever stored. Several k are answered from one search (the top-k lists of
// smaller k are prefixes of the largest one).
//
// Ties: neighbours with equal similarity rank by lower training index first;
// classes with equal score rank by lower class index first (what PyTorch's
// CPU stable sort does in the reference's probs.sort).
#ifndef DINO_EVAL_KNN_H
#define DINO_EVAL_KNN_H

#include <stddef.h>
#include <stdint.h>

#define KNN_MAX_K 16
// Labels and num_classes must lie below this: a class index of 2^24 or more
// is an id or a corrupt file, not one of a dataset's classes (ImageNet-21k has
// 21,841), and it must fit the int of KnnConfig.num_classes.
#define KNN_MAX_CLASSES (1 << 24)
// The most memory the neighbour search may take (the kmax best of every test
// row and the candidate buffers): beyond it, k is far above the reference's
// largest (200) for the number of test samples.
#define KNN_MAX_SEARCH_BYTES ((double)((int64_t)8 << 30))

typedef struct {
    int n_k;
    int ks[KNN_MAX_K];    // reference default {10, 20, 100, 200}
    float temperature;    // 0.07
    int num_classes;      // 0: 1 + the largest label in train or test
} KnnConfig;

typedef struct {
    int k;        // as asked; the search uses min(k, n_train)
    double top1;  // percent
    double top5;  // percent, top-min(5,k)
} KnnResult;

// The reference defaults: k = 10 20 100 200, T = 0.07, classes from the data.
void knn_config_default(KnnConfig *cfg);

// Divides each of the n rows of x (n, d) by max(‖row‖₂, 1e-12), in place
// (F.normalize(dim=1)).
void knn_l2_normalize(float *x, int64_t n, int d);

// For each test row, the kmax training rows of largest dot product, best
// first: out_sim/out_idx are (n_test, kmax). kmax <= n_train. No normalising
// happens here. Uses OpenBLAS and OpenMP with the current thread count.
void knn_search(const float *train, int64_t n_train, const float *test, int64_t n_test, int d,
                int kmax, float *out_sim, int64_t *out_idx);

// Votes of the neighbours found by knn_search: for each k in cfg, top-1 and
// top-min(5,k) accuracy. Labels must be >= 0; the work per row is O(kmax)
// for each k, whatever the number of classes.
void knn_vote(const float *sim, const int64_t *idx, int kmax, int64_t n_test,
              const int64_t *train_labels, const int64_t *test_labels, const KnnConfig *cfg,
              KnnResult *results);

// The whole evaluation on raw (un-normalised) features, which are left
// untouched: copies, normalises, searches, votes. results has cfg->n_k entries.
// Returns 0, or -1 with err filled (no training samples, a negative label
// meaning "unlabelled", a label >= num_classes or >= KNN_MAX_CLASSES, k < 1,
// a search beyond KNN_MAX_SEARCH_BYTES, a NaN or infinite feature — the sign
// of a diverged model).
int knn_evaluate(const float *train, const int64_t *train_labels, int64_t n_train,
                 const float *test, const int64_t *test_labels, int64_t n_test, int d,
                 const KnnConfig *cfg, KnnResult *results, char *err, size_t errlen);

#endif
