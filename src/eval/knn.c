// k-NN search and voting (see knn.h). The search walks the test set in
// blocks of rows and the training set in blocks of columns; each block pair
// is one sgemm into a scratch tile, then every test row of the block updates
// its own candidate buffer in parallel (see "per-row selection" below).
// Training blocks are visited in index order, so a candidate whose similarity
// equals the floor has a larger index than what is kept and loses: the tie
// rule costs nothing on the fast path.
#include "eval/knn.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gemm.h"

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

// ---------------------------------------------------------------- per-row selection
//
// Each test row keeps a buffer of up to `cap` candidates (similarity, index)
// and a floor: the k-th best similarity at the last compaction. A candidate
// enters only if it beats the floor (one compare, well predicted, and
// vectorisable); when the buffer is full it is compacted to its best k by
// quickselect and the floor rises. About k·ln(n/k) candidates pass per row,
// so a row costs one pass over its similarities plus a few O(cap) selections
// (a bounded heap spent most of its time in mispredicted sift-downs).

typedef struct {
    float s;
    int64_t i;
} Cand;

// a ranks above b: larger similarity, or equal similarity and smaller index.
static inline int better(Cand a, Cand b) { return a.s > b.s || (a.s == b.s && a.i < b.i); }

// Reorders c[0..n) so that its best k come first (in no particular order).
static void select_best(Cand *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        // Median of three as pivot.
        int mid = lo + (hi - lo) / 2;
        Cand a = c[lo], b = c[mid], d = c[hi];
        Cand piv = better(a, b) ? (better(b, d) ? b : (better(a, d) ? d : a))
                                : (better(a, d) ? a : (better(b, d) ? d : b));
        int i = lo, j = hi;
        while (i <= j) {
            while (better(c[i], piv)) i++;
            while (better(piv, c[j])) j--;
            if (i <= j) {
                Cand t = c[i]; c[i] = c[j]; c[j] = t;
                i++;
                j--;
            }
        }
        // Now c[lo..j] >= pivot >= c[i..hi] in rank; recurse into the side holding position k-1.
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else return;
    }
}

static int cmp_better(const void *pa, const void *pb) {
    Cand a = *(const Cand *)pa, b = *(const Cand *)pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

// Keeps the best k of c[0..*n) and returns the new floor (the k-th best).
static float compact(Cand *c, int *n, int k) {
    select_best(c, *n, k);
    *n = k;
    Cand w = c[0];
    for (int q = 1; q < k; q++)
        if (better(w, c[q])) w = c[q];
    return w.s;
}

// Candidates a row's buffer holds before it is compacted to the best kmax.
static int64_t candidate_cap(int64_t kmax) { return 4 * kmax > kmax + 256 ? 4 * kmax : kmax + 256; }

// Bytes knn_search and the neighbour lists it fills take for these sizes.
static double search_bytes(int64_t n_test, int64_t kmax) {
    double rows = n_test < KNN_TEST_BLOCK ? (double)n_test : KNN_TEST_BLOCK;
    return rows * (double)candidate_cap(kmax) * sizeof(Cand) +
           (double)n_test * (double)kmax * (sizeof(float) + sizeof(int64_t));
}

void knn_search(const float *train, int64_t n_train, const float *test, int64_t n_test, int d,
                int kmax, float *out_sim, int64_t *out_idx) {
    DINO_ASSERT(kmax >= 1 && kmax <= n_train);
    int64_t tb = KNN_TEST_BLOCK, rb = KNN_TRAIN_BLOCK;
    int64_t rows = n_test < tb && n_test > 0 ? n_test : tb;  // a block holds at most this many
    int cap = (int)candidate_cap(kmax);
    float *tile = alignedAllocCheck((size_t)rows * rb * sizeof(float));
    Cand *buf = mallocCheck((size_t)rows * cap * sizeof(Cand));
    int *fill = mallocCheck((size_t)rows * sizeof(int));
    float *floor_v = mallocCheck((size_t)rows * sizeof(float));
    for (int64_t t0 = 0; t0 < n_test; t0 += tb) {
        int64_t nt = n_test - t0 < tb ? n_test - t0 : tb;
        for (int64_t i = 0; i < nt; i++) {
            fill[i] = 0;
            floor_v[i] = -INFINITY;
        }
        for (int64_t r0 = 0; r0 < n_train; r0 += rb) {
            int64_t nr = n_train - r0 < rb ? n_train - r0 : rb;
            // tile (nt, nr) = test[t0:t0+nt] · train[r0:r0+nr]ᵀ
            gemm_f32(GEMM_N, GEMM_T, (int)nt, (int)nr, d, 1.0f, test + t0 * d, d, train + r0 * d,
                     d, 0.0f, tile, (int)nr);
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < nt; i++) {
                const float *row = tile + i * nr;
                Cand *c = buf + i * cap;
                int n = fill[i];
                float fl = floor_v[i];
                for (int64_t j = 0; j < nr; j++) {
                    float v = row[j];
                    // Until k are kept everything enters (NaN as -inf); after, only
                    // what beats the floor: an equal similarity has a larger index and loses.
                    if (v > fl || (fl == -INFINITY && !(v > fl) && n < kmax)) {
                        c[n].s = isnan(v) ? -INFINITY : v;
                        c[n].i = r0 + j;
                        if (++n == cap) fl = compact(c, &n, kmax);
                    }
                }
                if (n >= kmax && fl == -INFINITY) fl = compact(c, &n, kmax);
                fill[i] = n;
                floor_v[i] = fl;
            }
        }
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nt; i++) {
            Cand *c = buf + i * cap;
            int n = fill[i];
            if (n > kmax) compact(c, &n, kmax);
            qsort(c, (size_t)n, sizeof(Cand), cmp_better);
            for (int q = 0; q < kmax; q++) {
                out_sim[(t0 + i) * kmax + q] = c[q].s;
                out_idx[(t0 + i) * kmax + q] = c[q].i;
            }
        }
    }
    free(floor_v);
    free(fill);
    free(buf);
    free(tile);
}

// ---------------------------------------------------------------- voting
//
// Only the classes of a row's k neighbours score above 0, so the vote keeps
// those in a small hash table (label -> score, summed in neighbour order as
// the reference sums), and the classes no neighbour names, all at score 0,
// are counted rather than scanned. A vote then costs O(k), whatever the
// number of classes (a scan of every class cost rows x k x classes: 12 s for
// one label of 1e8 among 8 samples).

typedef struct {
    int64_t label;
    float score;
    uint32_t stamp;  // the slot is in use for the vote of this stamp only
} Slot;

typedef struct {
    Slot *slot;
    int *used;  // slots taken by the current vote, in order of first use
    int n_used;
    uint64_t mask;
    int bits;
    uint32_t stamp;
} VoteTable;

// A table for up to kmax classes, at most half full.
static void vote_table_init(VoteTable *t, int kmax) {
    t->bits = 1;
    while (((int64_t)1 << t->bits) < 2 * (int64_t)kmax) t->bits++;
    t->mask = ((uint64_t)1 << t->bits) - 1;
    t->slot = callocCheck((size_t)t->mask + 1, sizeof(Slot));
    t->used = mallocCheck((size_t)kmax * sizeof(int));
    t->stamp = 0;
}

static void vote_table_free(VoteTable *t) {
    free(t->slot);
    free(t->used);
}

// Empties the table in O(1): slots of older stamps count as free.
static void vote_table_clear(VoteTable *t) {
    if (++t->stamp == 0) {  // wrapped: every slot's stamp may look current
        memset(t->slot, 0, (size_t)(t->mask + 1) * sizeof(Slot));
        t->stamp = 1;
    }
    t->n_used = 0;
}

// The slot of `label`, or of its free place when `insert` (NULL otherwise).
static Slot *vote_table_find(VoteTable *t, int64_t label, int insert) {
    uint64_t h = ((uint64_t)label * 0x9E3779B97F4A7C15ull) >> (64 - t->bits);
    while (t->slot[h].stamp == t->stamp && t->slot[h].label != label) h = (h + 1) & t->mask;
    Slot *sl = &t->slot[h];
    if (sl->stamp == t->stamp) return sl;
    if (!insert) return NULL;
    sl->stamp = t->stamp;
    sl->label = label;
    sl->score = 0.0f;
    t->used[t->n_used++] = (int)h;
    return sl;
}

// Rank of class `target` under (score desc, class index asc) when the first
// k neighbours, of labels lab and weights exp(sim/T) in w, vote.
static int64_t target_rank(VoteTable *t, const int64_t *lab, const float *w, int k,
                           int64_t target) {
    vote_table_clear(t);
    for (int j = 0; j < k; j++) vote_table_find(t, lab[j], 1)->score += w[j];
    const Slot *ts = vote_table_find(t, target, 0);
    float st = ts ? ts->score : 0.0f;
    int64_t rank = 0, named_below = 0;
    for (int u = 0; u < t->n_used; u++) {
        const Slot *sl = &t->slot[t->used[u]];
        if (sl->label < target) named_below++;
        if (sl->label != target && (sl->score > st || (sl->score == st && sl->label < target)))
            rank++;
    }
    // Scores are >= 0: an unnamed class (score 0) ranks above the target only
    // when the target scores 0 too and has the larger index.
    if (st == 0.0f) rank += target - named_below;
    return rank;
}

void knn_vote(const float *sim, const int64_t *idx, int kmax, int64_t n_test,
              const int64_t *train_labels, const int64_t *test_labels, const KnnConfig *cfg,
              KnnResult *results) {
    int64_t c1[KNN_MAX_K] = {0}, c5[KNN_MAX_K] = {0};
    float T = cfg->temperature;
#pragma omp parallel
    {
        VoteTable table;
        vote_table_init(&table, kmax);
        int64_t *lab = mallocCheck((size_t)kmax * sizeof(int64_t));
        float *w = mallocCheck((size_t)kmax * sizeof(float));
        int64_t l1[KNN_MAX_K] = {0}, l5[KNN_MAX_K] = {0};
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n_test; i++) {
            // As the reference: (sim / T).exp() of each neighbour, summed per class in order.
            for (int j = 0; j < kmax; j++) {
                lab[j] = train_labels[idx[i * kmax + j]];
                w[j] = expf(sim[i * kmax + j] / T);
            }
            for (int q = 0; q < cfg->n_k; q++) {
                int k = cfg->ks[q] < kmax ? cfg->ks[q] : kmax;
                int64_t rank = target_rank(&table, lab, w, k, test_labels[i]);
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
        free(w);
        free(lab);
        vote_table_free(&table);
    }
    for (int q = 0; q < cfg->n_k; q++) {
        results[q].k = cfg->ks[q];
        results[q].top1 = n_test ? 100.0 * (double)c1[q] / (double)n_test : 0;
        results[q].top5 = n_test ? 100.0 * (double)c5[q] / (double)n_test : 0;
    }
}

static int check_labels(const int64_t *lab, int64_t n, const char *which, int64_t *max_label,
                        char *err, size_t errlen) {
    for (int64_t i = 0; i < n; i++) {
        if (lab[i] < 0)
            return dino_errf(err, errlen,
                        "k-NN needs labels, but %s sample %lld has none (label %lld)", which,
                        (long long)i, (long long)lab[i]);
        if (lab[i] >= KNN_MAX_CLASSES)
            return dino_errf(err, errlen,
                        "%s sample %lld has label %lld, not below the limit of %d classes", which,
                        (long long)i, (long long)lab[i], KNN_MAX_CLASSES);
        if (lab[i] > *max_label) *max_label = lab[i];
    }
    return 0;
}

int knn_evaluate(const float *train, const int64_t *train_labels, int64_t n_train,
                 const float *test, const int64_t *test_labels, int64_t n_test, int d,
                 const KnnConfig *cfg, KnnResult *results, char *err, size_t errlen) {
    if (n_train < 1) return dino_errf(err, errlen, "k-NN has no training samples");
    if (n_test < 1) return dino_errf(err, errlen, "k-NN has no test samples");
    if (d < 1) return dino_errf(err, errlen, "k-NN features have dimension %d", d);
    if (cfg->n_k < 1 || cfg->n_k > KNN_MAX_K)
        return dino_errf(err, errlen, "k-NN needs 1 to %d values of k, got %d", KNN_MAX_K, cfg->n_k);
    if (cfg->num_classes > KNN_MAX_CLASSES)
        return dino_errf(err, errlen, "k-NN num_classes %d is above the limit of %d classes",
                    cfg->num_classes, KNN_MAX_CLASSES);
    if (!(cfg->temperature > 0))
        return dino_errf(err, errlen, "k-NN temperature must be > 0, got %g", cfg->temperature);
    int kmax = 0;
    for (int q = 0; q < cfg->n_k; q++) {
        if (cfg->ks[q] < 1) return dino_errf(err, errlen, "k-NN k must be >= 1, got %d", cfg->ks[q]);
        if (cfg->ks[q] > kmax) kmax = cfg->ks[q];
    }
    if (kmax > n_train) kmax = (int)n_train;
    if (search_bytes(n_test, kmax) > KNN_MAX_SEARCH_BYTES)
        return dino_errf(err, errlen,
                    "k-NN with k = %d over %lld test samples needs %.3g GiB of neighbour lists, "
                    "above the limit of %.0f GiB; use a smaller k", kmax, (long long)n_test,
                    search_bytes(n_test, kmax) / (1 << 30), KNN_MAX_SEARCH_BYTES / (1 << 30));
    for (int pass = 0; pass < 2; pass++) {
        const float *x = pass ? test : train;
        int64_t n = pass ? n_test : n_train;
        for (int64_t i = 0; i < n * d; i++)
            if (!isfinite(x[i]))
                return dino_errf(err, errlen, "%s feature %lld (sample %lld) is not a finite number",
                            pass ? "test" : "training", (long long)(i % d), (long long)(i / d));
    }
    int64_t max_label = -1;
    if (check_labels(train_labels, n_train, "training", &max_label, err, errlen)) return -1;
    if (check_labels(test_labels, n_test, "test", &max_label, err, errlen)) return -1;
    int num_classes = cfg->num_classes > 0 ? cfg->num_classes : (int)(max_label + 1);
    if (max_label >= num_classes)
        return dino_errf(err, errlen, "label %lld is not below the number of classes %d",
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
    knn_vote(sim, idx, kmax, n_test, train_labels, test_labels, cfg, results);
    free(sim);
    free(idx);
    free(tr);
    free(te);
    return 0;
}
