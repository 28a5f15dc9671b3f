// k-NN search and voting (see knn.h). The search walks the test set in
// blocks of rows and the training set in blocks of columns; each block pair
// is one sgemm into a scratch tile, then every test row of the block updates
// its own bounded heap in parallel. Training blocks are visited in index
// order, so a candidate whose similarity equals the heap's worst has a larger
// index and loses: the tie rule costs nothing on the fast path.
#include "eval/knn.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define KNN_TEST_BLOCK 512
#define KNN_TRAIN_BLOCK 4096

void knn_config_default(KnnConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->n_k = 4;
    cfg->ks[0] = 10;
    cfg->ks[1] = 20;
    cfg->ks[2] = 100;
    cfg->ks[3] = 200;
    cfg->temperature = 0.07f;
    cfg->num_classes = 0;
}

void knn_l2_normalize(float *x, int64_t n, int d) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *r = x + i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)r[j] * r[j];
        float norm = (float)sqrt(ss);
        if (norm < 1e-12f) norm = 1e-12f;
        for (int j = 0; j < d; j++) r[j] /= norm;
    }
}

// ---------------------------------------------------------------- bounded heap

// a ranks below b: smaller similarity, or equal similarity and larger index.
static inline int worse(float sa, int64_t ia, float sb, int64_t ib) {
    return sa < sb || (sa == sb && ia > ib);
}

// Min-heap on `worse`: the root is the weakest of the kept neighbours.
static void heap_sift_down(float *s, int64_t *ix, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(s[l], ix[l], s[m], ix[m])) m = l;
        if (r < n && worse(s[r], ix[r], s[m], ix[m])) m = r;
        if (m == i) return;
        float ts = s[i]; s[i] = s[m]; s[m] = ts;
        int64_t ti = ix[i]; ix[i] = ix[m]; ix[m] = ti;
        i = m;
    }
}

static void heap_push(float *s, int64_t *ix, int n, float v, int64_t id) {
    int i = n;
    s[i] = v;
    ix[i] = id;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!worse(s[i], ix[i], s[p], ix[p])) break;
        float ts = s[i]; s[i] = s[p]; s[p] = ts;
        int64_t ti = ix[i]; ix[i] = ix[p]; ix[p] = ti;
        i = p;
    }
}

// Pops the heap into best-first order in place (heap sort).
static void heap_sort_best_first(float *s, int64_t *ix, int n) {
    for (int end = n - 1; end > 0; end--) {
        float ts = s[0]; s[0] = s[end]; s[end] = ts;
        int64_t ti = ix[0]; ix[0] = ix[end]; ix[end] = ti;
        heap_sift_down(s, ix, end, 0);
    }
    // Popping the weakest to the back leaves best first already.
}

void knn_search(const float *train, int64_t n_train, const float *test, int64_t n_test, int d,
                int kmax, float *out_sim, int64_t *out_idx) {
    DINO_ASSERT(kmax >= 1 && kmax <= n_train);
    int64_t tb = KNN_TEST_BLOCK, rb = KNN_TRAIN_BLOCK;
    float *tile = alignedAllocCheck((size_t)tb * rb * sizeof(float));
    int *fill = mallocCheck((size_t)tb * sizeof(int));
    for (int64_t t0 = 0; t0 < n_test; t0 += tb) {
        int64_t nt = n_test - t0 < tb ? n_test - t0 : tb;
        float *hs = out_sim + t0 * kmax;  // heaps live in the output rows
        int64_t *hi = out_idx + t0 * kmax;
        for (int64_t i = 0; i < nt; i++) fill[i] = 0;
        for (int64_t r0 = 0; r0 < n_train; r0 += rb) {
            int64_t nr = n_train - r0 < rb ? n_train - r0 : rb;
            // tile (nt, nr) = test[t0:t0+nt] · train[r0:r0+nr]ᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nt, (int)nr, d, 1.0f,
                        test + t0 * d, d, train + r0 * d, d, 0.0f, tile, (int)nr);
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < nt; i++) {
                const float *row = tile + i * nr;
                float *s = hs + i * kmax;
                int64_t *ix = hi + i * kmax;
                int n = fill[i];
                int64_t j = 0;
                for (; j < nr && n < kmax; j++) {
                    float v = row[j];
                    if (isnan(v)) v = -INFINITY;
                    heap_push(s, ix, n++, v, r0 + j);
                }
                float floor_v = s[0];
                for (; j < nr; j++) {
                    float v = row[j];
                    if (!(v > floor_v)) continue;  // also rejects NaN; equal loses on index
                    s[0] = v;
                    ix[0] = r0 + j;
                    heap_sift_down(s, ix, kmax, 0);
                    floor_v = s[0];
                }
                fill[i] = n;
            }
        }
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nt; i++) heap_sort_best_first(hs + i * kmax, hi + i * kmax, kmax);
    }
    free(fill);
    free(tile);
}

void knn_vote(const float *sim, const int64_t *idx, int kmax, int64_t n_test,
              const int64_t *train_labels, const int64_t *test_labels, int num_classes,
              const KnnConfig *cfg, KnnResult *results) {
    int64_t c1[KNN_MAX_K] = {0}, c5[KNN_MAX_K] = {0};
    float T = cfg->temperature;
#pragma omp parallel
    {
        float *score = mallocCheck((size_t)num_classes * sizeof(float));
        int64_t l1[KNN_MAX_K] = {0}, l5[KNN_MAX_K] = {0};
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n_test; i++) {
            const float *s = sim + i * kmax;
            const int64_t *ix = idx + i * kmax;
            int64_t target = test_labels[i];
            for (int q = 0; q < cfg->n_k; q++) {
                int k = cfg->ks[q] < kmax ? cfg->ks[q] : kmax;
                memset(score, 0, (size_t)num_classes * sizeof(float));
                // As the reference: (sim / T).exp(), summed over neighbours in order.
                for (int j = 0; j < k; j++) score[train_labels[ix[j]]] += expf(s[j] / T);
                // Rank of the target under (score desc, class index asc).
                float st = score[target];
                int rank = 0;
                for (int c = 0; c < num_classes; c++)
                    if (score[c] > st || (score[c] == st && c < target)) rank++;
                int top = cfg->ks[q] < 5 ? cfg->ks[q] : 5;
                if (rank == 0) l1[q]++;
                if (rank < top) l5[q]++;
            }
        }
#pragma omp critical
        for (int q = 0; q < cfg->n_k; q++) {
            c1[q] += l1[q];
            c5[q] += l5[q];
        }
        free(score);
    }
    for (int q = 0; q < cfg->n_k; q++) {
        results[q].k = cfg->ks[q];
        results[q].top1 = n_test ? 100.0 * (double)c1[q] / (double)n_test : 0;
        results[q].top5 = n_test ? 100.0 * (double)c5[q] / (double)n_test : 0;
    }
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_labels(const int64_t *lab, int64_t n, const char *which, int64_t *max_label,
                        char *err, size_t errlen) {
    for (int64_t i = 0; i < n; i++) {
        if (lab[i] < 0)
            return fail(err, errlen,
                        "k-NN needs labels, but %s sample %lld has none (label %lld)", which,
                        (long long)i, (long long)lab[i]);
        if (lab[i] > *max_label) *max_label = lab[i];
    }
    return 0;
}

int knn_evaluate(const float *train, const int64_t *train_labels, int64_t n_train,
                 const float *test, const int64_t *test_labels, int64_t n_test, int d,
                 const KnnConfig *cfg, KnnResult *results, char *err, size_t errlen) {
    if (n_train < 1) return fail(err, errlen, "k-NN has no training samples");
    if (n_test < 1) return fail(err, errlen, "k-NN has no test samples");
    if (d < 1) return fail(err, errlen, "k-NN features have dimension %d", d);
    if (cfg->n_k < 1 || cfg->n_k > KNN_MAX_K)
        return fail(err, errlen, "k-NN needs 1 to %d values of k, got %d", KNN_MAX_K, cfg->n_k);
    if (!(cfg->temperature > 0))
        return fail(err, errlen, "k-NN temperature must be > 0, got %g", cfg->temperature);
    int kmax = 0;
    for (int q = 0; q < cfg->n_k; q++) {
        if (cfg->ks[q] < 1) return fail(err, errlen, "k-NN k must be >= 1, got %d", cfg->ks[q]);
        if (cfg->ks[q] > kmax) kmax = cfg->ks[q];
    }
    if (kmax > n_train) kmax = (int)n_train;
    int64_t max_label = -1;
    if (check_labels(train_labels, n_train, "training", &max_label, err, errlen)) return -1;
    if (check_labels(test_labels, n_test, "test", &max_label, err, errlen)) return -1;
    int num_classes = cfg->num_classes > 0 ? cfg->num_classes : (int)(max_label + 1);
    if (max_label >= num_classes)
        return fail(err, errlen, "label %lld is not below the number of classes %d",
                    (long long)max_label, num_classes);

    float *tr = alignedAllocCheck((size_t)n_train * d * sizeof(float));
    float *te = alignedAllocCheck((size_t)n_test * d * sizeof(float));
    memcpy(tr, train, (size_t)n_train * d * sizeof(float));
    memcpy(te, test, (size_t)n_test * d * sizeof(float));
    knn_l2_normalize(tr, n_train, d);
    knn_l2_normalize(te, n_test, d);
    float *sim = mallocCheck((size_t)n_test * kmax * sizeof(float));
    int64_t *idx = mallocCheck((size_t)n_test * kmax * sizeof(int64_t));
    knn_search(tr, n_train, te, n_test, d, kmax, sim, idx);
    knn_vote(sim, idx, kmax, n_test, train_labels, test_labels, num_classes, cfg, results);
    free(sim);
    free(idx);
    free(tr);
    free(te);
    return 0;
}
