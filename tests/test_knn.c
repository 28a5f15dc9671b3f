// Tests of the weighted k-NN classifier (src/eval/knn.c):
// 1. knn_search against a brute-force double-precision full sort, on
//    features whose dot products are exact in float (multiples of 1/8), so the
//    many exact ties must come out in the same order (lower index first);
//    several test and training blocks are crossed.
// 2. knn_vote against a separately written vote (full class sort).
// 3. knn_evaluate on random continuous features against a brute-force
//    pipeline in double (normalise, similarities, sort, vote).
// 4. The reference's knn_classifier run in PyTorch (tests/fixtures/eval_knn.bin
//    from tools/make_eval_fixtures.py): top-1/top-5 must match exactly.
// 5. Errors: unlabelled samples, k < 1.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "eval/knn.h"
#include "fixture.h"
#include "rng.h"
#include "testlib.h"

typedef struct {
    double s;
    int64_t i;
} Pair;

static int cmp_pair(const void *a, const void *b) {
    const Pair *x = a, *y = b;
    if (x->s > y->s) return -1;
    if (x->s < y->s) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

// Brute force: full sort of double dot products.
static void brute_search(const float *tr, int64_t ntr, const float *te, int64_t nte, int d,
                         int kmax, double *sim, int64_t *idx) {
    Pair *p = mallocCheck((size_t)ntr * sizeof(Pair));
    for (int64_t i = 0; i < nte; i++) {
        for (int64_t j = 0; j < ntr; j++) {
            double s = 0;
            for (int c = 0; c < d; c++) s += (double)te[i * d + c] * tr[j * d + c];
            p[j].s = s;
            p[j].i = j;
        }
        qsort(p, (size_t)ntr, sizeof(Pair), cmp_pair);
        for (int k = 0; k < kmax; k++) {
            sim[i * kmax + k] = p[k].s;
            idx[i * kmax + k] = p[k].i;
        }
    }
    free(p);
}

typedef struct {
    float score;
    int c;
} ClassScore;

static int cmp_class(const void *a, const void *b) {
    const ClassScore *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return x->c - y->c;
}

// The reference's vote written out: one-hot × exp(sim/T) summed over the k
// neighbours, classes sorted descending (stable), target among the first
// min(5,k)?  Counts rather than percent.
static void brute_vote(const float *sim, const int64_t *idx, int kmax, int64_t nte,
                       const int64_t *trl, const int64_t *tel, int nc, int k, float T,
                       int64_t *c1, int64_t *c5) {
    ClassScore *cs = mallocCheck((size_t)nc * sizeof(ClassScore));
    *c1 = *c5 = 0;
    int kk = k < kmax ? k : kmax;
    for (int64_t i = 0; i < nte; i++) {
        for (int c = 0; c < nc; c++) {
            cs[c].score = 0;
            cs[c].c = c;
        }
        for (int j = 0; j < kk; j++) cs[trl[idx[i * kmax + j]]].score += expf(sim[i * kmax + j] / T);
        qsort(cs, (size_t)nc, sizeof(ClassScore), cmp_class);
        int top = k < 5 ? k : 5;
        if (cs[0].c == tel[i]) (*c1)++;
        for (int j = 0; j < top && j < nc; j++)
            if (cs[j].c == tel[i]) (*c5)++;
    }
    free(cs);
}

static void random_labels(int64_t *lab, int64_t n, int nc, uint64_t seed) {
    Rng r;
    rng_stream(&r, RNG_TEST, seed, 1, 2, 3);
    for (int64_t i = 0; i < n; i++) lab[i] = rng_below(&r, (uint32_t)nc);
}

static void test_exact_ties(void) {
    const int64_t ntr = 9000, nte = 700;  // 3 training blocks, 2 test blocks
    const int d = 12, kmax = 200, nc = 7;
    float *tr = mallocCheck(ntr * d * sizeof(float)), *te = mallocCheck(nte * d * sizeof(float));
    Rng r;
    rng_stream(&r, RNG_TEST, 11, 0, 0, 0);
    // Entries in {-1, -7/8, ..., 1}: products are multiples of 1/64, sums of 12 are exact.
    for (int64_t i = 0; i < ntr * d; i++) tr[i] = ((int)rng_below(&r, 17) - 8) / 8.0f;
    for (int64_t i = 0; i < nte * d; i++) te[i] = ((int)rng_below(&r, 17) - 8) / 8.0f;
    // Exact duplicates of training rows at later indices: guaranteed ties at the top.
    for (int i = 0; i < 50; i++) memcpy(tr + (8000 + i) * d, tr + (i * 37) * d, d * sizeof(float));
    float *sim = mallocCheck(nte * kmax * sizeof(float));
    int64_t *idx = mallocCheck(nte * kmax * sizeof(int64_t));
    double *bsim = mallocCheck(nte * kmax * sizeof(double));
    int64_t *bidx = mallocCheck(nte * kmax * sizeof(int64_t));
    knn_search(tr, ntr, te, nte, d, kmax, sim, idx);
    brute_search(tr, ntr, te, nte, d, kmax, bsim, bidx);
    int64_t bad_idx = 0, bad_sim = 0, ties = 0;
    for (int64_t i = 0; i < nte * kmax; i++) {
        bad_idx += idx[i] != bidx[i];
        bad_sim += (double)sim[i] != bsim[i];
        if (i % kmax && bsim[i] == bsim[i - 1]) ties++;
    }
    CHECK(ties > nte * kmax / 2, "exact-tie data has many ties (%lld of %lld neighbours)",
          (long long)ties, (long long)(nte * kmax));
    CHECK(bad_idx == 0, "knn_search indices equal brute force with ties by index (%lld differ)",
          (long long)bad_idx);
    CHECK(bad_sim == 0, "knn_search similarities exact (%lld differ)", (long long)bad_sim);

    // Voting on these neighbours, many k (incl. k < 5 and k = kmax).
    int64_t *trl = mallocCheck(ntr * sizeof(int64_t)), *tel = mallocCheck(nte * sizeof(int64_t));
    random_labels(trl, ntr, nc, 5);
    random_labels(tel, nte, nc, 6);
    KnnConfig cfg;
    knn_config_default(&cfg);
    int ks[] = {1, 3, 5, 10, 20, 100, 200};
    cfg.n_k = 7;
    for (int q = 0; q < 7; q++) cfg.ks[q] = ks[q];
    cfg.temperature = 0.07f;
    KnnResult res[KNN_MAX_K];
    knn_vote(sim, idx, kmax, nte, trl, tel, &cfg, res);
    int all_ok = 1;
    for (int q = 0; q < 7; q++) {
        int64_t c1, c5;
        brute_vote(sim, idx, kmax, nte, trl, tel, nc, ks[q], 0.07f, &c1, &c5);
        int ok = fabs(res[q].top1 - 100.0 * c1 / nte) < 1e-9 && fabs(res[q].top5 - 100.0 * c5 / nte) < 1e-9;
        if (!ok)
            printf("     k=%d: got %.4f/%.4f want %.4f/%.4f\n", ks[q], res[q].top1, res[q].top5,
                   100.0 * c1 / nte, 100.0 * c5 / nte);
        all_ok &= ok;
    }
    CHECK(all_ok, "knn_vote top-1/top-5 equal the sorted-class vote for k = 1 3 5 10 20 100 200");
    free(tr); free(te); free(sim); free(idx); free(bsim); free(bidx); free(trl); free(tel);
}

// Brute-force pipeline in double: normalise, similarities, full sort, vote in double.
static void brute_evaluate(const float *tr, const int64_t *trl, int64_t ntr, const float *te,
                           const int64_t *tel, int64_t nte, int d, int nc, int k, double T,
                           double *top1, double *top5, double *min_gap) {
    double *ntrd = mallocCheck(ntr * d * sizeof(double)), *nted = mallocCheck(nte * d * sizeof(double));
    for (int pass = 0; pass < 2; pass++) {
        const float *x = pass ? te : tr;
        double *y = pass ? nted : ntrd;
        int64_t n = pass ? nte : ntr;
        for (int64_t i = 0; i < n; i++) {
            double ss = 0;
            for (int c = 0; c < d; c++) ss += (double)x[i * d + c] * x[i * d + c];
            double nrm = sqrt(ss);
            for (int c = 0; c < d; c++) y[i * d + c] = x[i * d + c] / nrm;
        }
    }
    Pair *p = mallocCheck(ntr * sizeof(Pair));
    double *score = mallocCheck(nc * sizeof(double));
    int64_t c1 = 0, c5 = 0;
    for (int64_t i = 0; i < nte; i++) {
        for (int64_t j = 0; j < ntr; j++) {
            double s = 0;
            for (int c = 0; c < d; c++) s += nted[i * d + c] * ntrd[j * d + c];
            p[j].s = s;
            p[j].i = j;
        }
        qsort(p, ntr, sizeof(Pair), cmp_pair);
        if (k < ntr && p[k - 1].s - p[k].s < *min_gap) *min_gap = p[k - 1].s - p[k].s;
        for (int c = 0; c < nc; c++) score[c] = 0;
        for (int j = 0; j < k; j++) score[trl[p[j].i]] += exp(p[j].s / T);
        int rank = 0;
        int64_t t = tel[i];
        for (int c = 0; c < nc; c++)
            if (score[c] > score[t] || (score[c] == score[t] && c < t)) rank++;
        c1 += rank == 0;
        c5 += rank < (k < 5 ? k : 5);
    }
    *top1 = 100.0 * c1 / nte;
    *top5 = 100.0 * c5 / nte;
    free(p); free(score); free(ntrd); free(nted);
}

static void test_random_vs_double(void) {
    const int64_t ntr = 1500, nte = 300;
    const int d = 24, nc = 10;
    float *tr = mallocCheck(ntr * d * sizeof(float)), *te = mallocCheck(nte * d * sizeof(float));
    int64_t *trl = mallocCheck(ntr * sizeof(int64_t)), *tel = mallocCheck(nte * sizeof(int64_t));
    random_labels(trl, ntr, nc, 21);
    random_labels(tel, nte, nc, 22);
    fixture_fill(tr, ntr * d, 31, -1, 1);
    fixture_fill(te, nte * d, 32, -1, 1);
    // Make labels learnable: shift each sample towards a class centre.
    for (int64_t i = 0; i < ntr; i++) tr[i * d + trl[i]] += 1.5f;
    for (int64_t i = 0; i < nte; i++) te[i * d + tel[i]] += 1.5f;
    KnnConfig cfg;
    knn_config_default(&cfg);
    int ks[] = {1, 2, 10, 20, 100, 200};
    cfg.n_k = 6;
    for (int q = 0; q < 6; q++) cfg.ks[q] = ks[q];
    KnnResult res[KNN_MAX_K];
    char err[256];
    float *copy = mallocCheck(ntr * d * sizeof(float));
    memcpy(copy, tr, ntr * d * sizeof(float));
    int rc = knn_evaluate(tr, trl, ntr, te, tel, nte, d, &cfg, res, err, sizeof err);
    CHECK(rc == 0, "knn_evaluate on random features succeeds (%s)", rc ? err : "");
    for (int q = 0; q < 6; q++) {
        double b1, b5, gap = 1;
        brute_evaluate(tr, trl, ntr, te, tel, nte, d, nc, ks[q], 0.07, &b1, &b5, &gap);
        CHECK(res[q].top1 == b1 && res[q].top5 == b5,
              "k=%d: top-1 %.2f top-5 %.2f equal the double-precision brute force (%.2f %.2f; "
              "smallest k-th/k+1-th gap %.2g)", ks[q], res[q].top1, res[q].top5, b1, b5, gap);
    }
    CHECK(res[2].top1 > 50, "k=10 separates the shifted classes (top-1 %.1f%%)", res[2].top1);
    // Inputs must be untouched (knn_evaluate normalises copies).
    CHECK(memcmp(copy, tr, ntr * d * sizeof(float)) == 0, "knn_evaluate leaves its inputs untouched");
    free(copy);

    // Errors: an unlabelled sample, k = 0.
    tel[7] = -1;
    rc = knn_evaluate(tr, trl, ntr, te, tel, nte, d, &cfg, res, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "label"), "unlabelled test sample is refused: %s", err);
    tel[7] = 0;
    te[5 * d + 3] = NAN;
    rc = knn_evaluate(tr, trl, ntr, te, tel, nte, d, &cfg, res, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "finite"), "NaN feature refused: %s", err);
    te[5 * d + 3] = 0;
    cfg.ks[0] = 0;
    rc = knn_evaluate(tr, trl, ntr, te, tel, nte, d, &cfg, res, err, sizeof err);
    CHECK(rc == -1, "k = 0 is refused: %s", err);
    free(tr); free(te); free(trl); free(tel);
}

// The reference's knn_classifier run in PyTorch on fill()-generated features.
static void test_fixture(void) {
    Fixture fx = fixture_load("eval_knn.bin");
    const FixtureTensor *meta = fixture_get(&fx, "meta");  // ntr, nte, d, nc, seed_tr, seed_te
    int64_t ntr = (int64_t)meta->data[0], nte = (int64_t)meta->data[1];
    int d = (int)meta->data[2];  // meta->data[3]: classes, taken from the labels
    float *tr = mallocCheck(ntr * d * sizeof(float)), *te = mallocCheck(nte * d * sizeof(float));
    fixture_fill(tr, ntr * d, (uint64_t)meta->data[4], -1, 1);
    fixture_fill(te, nte * d, (uint64_t)meta->data[5], -1, 1);
    const FixtureTensor *ftrl = fixture_get(&fx, "train_labels"), *ftel = fixture_get(&fx, "test_labels");
    int64_t *trl = mallocCheck(ntr * sizeof(int64_t)), *tel = mallocCheck(nte * sizeof(int64_t));
    for (int64_t i = 0; i < ntr; i++) trl[i] = (int64_t)ftrl->data[i];
    for (int64_t i = 0; i < nte; i++) tel[i] = (int64_t)ftel->data[i];
    for (int64_t i = 0; i < ntr; i++) tr[i * d + trl[i]] += 1.0f;  // as the script does
    for (int64_t i = 0; i < nte; i++) te[i * d + tel[i]] += 1.0f;
    const FixtureTensor *ks = fixture_get(&fx, "ks"), *want = fixture_get(&fx, "top1_top5");
    KnnConfig cfg;
    knn_config_default(&cfg);
    cfg.n_k = (int)ks->numel;
    for (int q = 0; q < cfg.n_k; q++) cfg.ks[q] = (int)ks->data[q];
    KnnResult res[KNN_MAX_K];
    char err[256];
    int rc = knn_evaluate(tr, trl, ntr, te, tel, nte, d, &cfg, res, err, sizeof err);
    CHECK(rc == 0, "knn_evaluate on the fixture runs (%s)", rc ? err : "");
    for (int q = 0; q < cfg.n_k; q++)
        CHECK(fabs(res[q].top1 - want->data[2 * q]) < 1e-4 &&
                  fabs(res[q].top5 - want->data[2 * q + 1]) < 1e-4,
              "PyTorch reference k=%d: top-1 %.3f top-5 %.3f (want %.3f %.3f)", cfg.ks[q],
              res[q].top1, res[q].top5, want->data[2 * q], want->data[2 * q + 1]);
    free(tr); free(te); free(trl); free(tel);
    fixture_free(&fx);
}

int main(void) {
    dino_set_threads(2);
    test_exact_ties();
    test_random_vs_double();
    test_fixture();
    return test_finish();
}
