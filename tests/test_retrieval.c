// Retrieval and copy-detection pieces against a NumPy/PyTorch restatement of
// the reference's evaluation (tools/make_downstream_fixtures.py): revisited
// Oxford/Paris average precision and precision at k on random rankings with
// junk images (one query without positives), GeM pooling, and the PCA
// whitening, compared through the cosine similarities it produces (the
// eigenvectors' signs are arbitrary). Also hand-checked AP values.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/retrieval.h"
#include "fixture.h"
#include "rng.h"
#include "testlib.h"

#define SEED 7000

static int *ints(const FixtureTensor *t) {
    int *v = malloc(sizeof(int) * (t->numel ? t->numel : 1));
    for (size_t i = 0; i < t->numel; i++) v[i] = (int)t->data[i];
    return v;
}

static void revisited(const Fixture *fx) {
    const FixtureTensor *kt = fixture_get(fx, "kappas");
    int *kappas = ints(kt), nk = (int)kt->numel;
    int ok_all = 1, skipped = 0;
    double worst = 0;
    for (int q = 0; q < 6; q++) {
        char k[64];
        snprintf(k, sizeof k, "%d.ranking", q);
        const FixtureTensor *rt = fixture_get(fx, k);
        snprintf(k, sizeof k, "%d.ok", q);
        const FixtureTensor *ot = fixture_get(fx, k);
        snprintf(k, sizeof k, "%d.junk", q);
        const FixtureTensor *jt = fixture_get(fx, k);
        int *ranking = ints(rt), *ok = ints(ot), *junk = ints(jt);
        double prec[8];
        double ap = retrieval_revisited_ap(ranking, (int)rt->numel, ok, (int)ot->numel, junk, (int)jt->numel, kappas,
                                           nk, prec);
        snprintf(k, sizeof k, "%d.ap", q);
        const FixtureTensor *want = fixture_find(fx, k);
        if (!want) {
            skipped += ap == -1;
            if (ap != -1) ok_all = 0;
        } else {
            worst = fmax(worst, fabs(ap - want->data[0]));
            snprintf(k, sizeof k, "%d.prec", q);
            const float *wp = fixture_get(fx, k)->data;
            for (int j = 0; j < nk; j++) worst = fmax(worst, fabs(prec[j] - wp[j]));
        }
        free(ranking), free(ok), free(junk);
    }
    CHECK(ok_all && skipped == 1 && worst < 1e-6,
          "revisited protocol: AP and precision at 1/5/10 of 5 queries equal the reference's (max diff %.2g); the query without positives is left out",
          worst);
    free(kappas);
}

// Positives at ranks 0 and 2 of 2: (1+1)/2·½ + (½+⅔)/2·½ = 0.79167.
static void hand_checked(void) {
    int ranks[2] = {0, 2};
    double ap = retrieval_ap_from_ranks(ranks, 2, 2);
    CHECK(fabs(ap - (0.5 + (0.5 + 2.0 / 3) / 4)) < 1e-12, "AP of positives at ranks 0 and 2: %.6f", ap);
    // database 0..4 ranked 4 3 2 1 0; positive 0 (last), junk 3 and 1 before it: its rank 4
    // becomes 2, so AP = (0/2 + 1/3)/2 (1/10 if the junk stayed)
    int ranking[5] = {4, 3, 2, 1, 0}, ok[1] = {0}, junk[2] = {3, 1}, kappas[1] = {1};
    double prec;
    ap = retrieval_revisited_ap(ranking, 5, ok, 1, junk, 2, kappas, 1, &prec);
    CHECK(fabs(ap - 1.0 / 6) < 1e-12 && prec == 0,
          "junk ranked before a positive is taken out: AP %.6f (want 1/6), precision@1 %g", ap, prec);
}

static void gem(const Fixture *fx) {
    float tokens[2 * 15 * 16], out[2 * 16];
    fixture_fill(tokens, 2 * 15 * 16, SEED + 900, -0.5f, 1.0f);
    for (int b = 0; b < 2; b++) retrieval_gem(tokens + b * 15 * 16, 15, 16, 4.0f, 1e-6f, out + b * 16);
    test_close("GeM p=4 over 3x5 tokens (negative values clamped to 1e-6)", out, fixture_get(fx, "gem")->data, 32, 1e-7,
               1e-5);
}

static void normalise(float *y, int n, int d) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)y[i * d + k] * y[i * d + k];
        for (int k = 0; k < d; k++) y[i * d + k] /= (float)sqrt(s);
    }
}

static void whitening(const Fixture *fx) {
    const float *cfg = fixture_get(fx, "whiten.cfg")->data;
    int n = (int)cfg[0], d = (int)cfg[1], keep = (int)cfg[2];
    const float *X = fixture_get(fx, "whiten.X")->data;
    float *mean = malloc(sizeof(float) * d), *dvt = malloc(sizeof(float) * keep * d);
    char err[256];
    int rc = retrieval_whitening_learn(X, n, d, keep, 0.5, mean, dvt, err, sizeof err);
    CHECK(rc == 0, "whitening learned from %d features of width %d (%s)", n, d, rc ? err : "ok");
    test_close("whitening mean", mean, fixture_get(fx, "whiten.mean")->data, (size_t)d, 1e-7, 1e-6);
    float Q[5 * 12], D[7 * 12], yq[5 * 12], yd[7 * 12], sim[5 * 7];
    fixture_fill(Q, (size_t)5 * d, SEED + 902, -1.0f, 1.0f);
    fixture_fill(D, (size_t)7 * d, SEED + 903, -1.0f, 1.0f);
    retrieval_whitening_apply(Q, 5, d, mean, dvt, keep, yq);
    retrieval_whitening_apply(D, 7, d, mean, dvt, keep, yd);
    normalise(yq, 5, keep);
    normalise(yd, 7, keep);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 7; j++) {
            double s = 0;
            for (int k = 0; k < keep; k++) s += (double)yq[i * keep + k] * yd[j * keep + k];
            sim[i * 7 + j] = (float)s;
        }
    char what[96];
    snprintf(what, sizeof what, "whitened cosine similarities (%d -> %d dimensions)", d, keep);
    test_close(what, sim, fixture_get(fx, "whiten.sim")->data, 35, 1e-5, 1e-5);
    rc = retrieval_whitening_learn(X, n, d, d + 1, 0.5, mean, dvt, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "dimension"), "a whitening dimension above the features' is refused: %s", err);
    free(mean);
    free(dvt);
}

int main(void) {
    Fixture fx = fixture_load("downstream_retrieval.bin");
    revisited(&fx);
    hand_checked();
    gem(&fx);
    whitening(&fx);
    fixture_free(&fx);
    return test_finish();
}
