// DAVIS-2017 scores (src/eval/davis.c) against a numpy transcription of the
// davis2017-evaluation formulas (tools/make_video_fixtures.py) on synthetic
// two-object masks with ragged edges, void pixels and a frame where an object
// is lost: J and F per object and frame (F also with a 4-pixel bound), the
// mean / recall / decay statistics, and the statistics' bin edges on other
// lengths. Plus hand-checkable cases: the boundary rule, empty masks, and a
// result label above the objects being refused.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/davis.h"
#include "fixture.h"
#include "testlib.h"

static uint8_t *bytes_of(const FixtureTensor *t) {
    uint8_t *b = malloc(t->numel);
    for (size_t i = 0; i < t->numel; i++) b[i] = (uint8_t)t->data[i];
    return b;
}

static double max_diff(const double *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - (double)b[i]);
        if (!(d <= m)) m = d;  // NaN counts as the largest
    }
    return m;
}

int main(void) {
    Fixture fx = fixture_load("video_davis.bin");
    const FixtureTensor *gt_t = fixture_get(&fx, "gt"), *res_t = fixture_get(&fx, "res");
    int nf = (int)gt_t->shape[0], h = (int)gt_t->shape[1], w = (int)gt_t->shape[2];
    int nobj = (int)fixture_get(&fx, "J")->shape[0];
    uint8_t *gt = bytes_of(gt_t), *res = bytes_of(res_t);
    const uint8_t *gts[16], *ress[16];
    for (int f = 0; f < nf; f++) gts[f] = gt + (size_t)f * h * w, ress[f] = res + (size_t)f * h * w;

    double *J = malloc(sizeof(double) * nobj * nf), *F = malloc(sizeof(double) * nobj * nf);
    char err[256];
    int rc = davis_score_sequence(gts, ress, nf, h, w, nobj, J, F, err, sizeof err);
    CHECK(rc == 0, "a sequence scores (%s)", rc ? err : "ok");
    // The float32 fixture holds the float64 numbers rounded: a difference of 1e-7 is that rounding.
    double dj = max_diff(J, fixture_get(&fx, "J")->data, (size_t)nobj * nf);
    double df = max_diff(F, fixture_get(&fx, "F")->data, (size_t)nobj * nf);
    CHECK(dj < 1e-7, "J (IoU) of %d objects x %d frames equals the transcription's (max diff %.2g)", nobj, nf, dj);
    CHECK(df < 1e-7, "F (bound 0.008 x diagonal = 1 px) equals the transcription's (max diff %.2g)", df);

    // F with a 4-pixel bound: a disk that is not a square.
    uint8_t *a = malloc((size_t)h * w), *b = malloc((size_t)h * w);
    double F4[64];
    for (int k = 1; k <= nobj; k++)
        for (int f = 0; f < nf; f++) {
            for (size_t i = 0; i < (size_t)h * w; i++) a[i] = gts[f][i] == k, b[i] = ress[f][i] == k;
            F4[(k - 1) * nf + f] = davis_fmeasure(a, b, h, w, 4);
        }
    double d4 = max_diff(F4, fixture_get(&fx, "F4")->data, (size_t)nobj * nf);
    CHECK(d4 < 1e-7, "F with a 4-pixel disk equals the transcription's (max diff %.2g)", d4);
    int differs = 0;
    for (int i = 0; i < nobj * nf; i++) differs |= fabs(F4[i] - F[i]) > 1e-3;
    CHECK(differs, "the 4-pixel bound changes F (the radius is used)");

    // Statistics per object: J mean, recall, decay, then F's.
    const float *st = fixture_get(&fx, "stats")->data;
    for (int k = 0; k < nobj; k++) {
        double s[6];
        davis_statistics(J + (size_t)k * nf, nf, &s[0], &s[1], &s[2]);
        davis_statistics(F + (size_t)k * nf, nf, &s[3], &s[4], &s[5]);
        double d = max_diff(s, st + 6 * k, 6);
        CHECK(d < 1e-6, "object %d: J and F mean, recall, decay equal the transcription's (max diff %.2g)",
              k + 1, d);
    }
    const FixtureTensor *lens = fixture_get(&fx, "lens");
    for (size_t i = 0; i < lens->numel; i++) {
        int n = (int)lens->data[i];
        char name[64];
        snprintf(name, sizeof name, "vals_len%d", n);
        const float *vf = fixture_get(&fx, name)->data;
        double v[64], s[3];
        for (int j = 0; j < n; j++) v[j] = vf[j];
        davis_statistics(v, n, &s[0], &s[1], &s[2]);
        snprintf(name, sizeof name, "stats_len%d", n);
        double d = max_diff(s, fixture_get(&fx, name)->data, 3);
        CHECK(d < 1e-6, "statistics of %d values (bin edges) equal the transcription's (max diff %.2g)", n, d);
    }

    // The boundary rule by hand: a 2x2 square at (1,1) in a 4x4 image.
    uint8_t sq[16] = {0}, bm[16];
    sq[5] = sq[6] = sq[9] = sq[10] = 1;
    davis_boundary(sq, 4, 4, bm);
    const uint8_t want[16] = {1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0};
    CHECK(!memcmp(bm, want, 16), "seg2bmap: pixels differing from E, S or SE; last row E only, last column S only");
    uint8_t zero[16] = {0};
    CHECK(davis_iou(zero, zero, 4, 4) == 1.0 && davis_fmeasure(zero, zero, 4, 4, 0.008) == 1.0,
          "two empty masks: J = F = 1");
    CHECK(davis_iou(sq, zero, 4, 4) == 0.0 && davis_fmeasure(sq, zero, 4, 4, 0.008) == 0.0,
          "an object missed entirely: J = F = 0");

    // A result label above the number of objects is refused, as the evaluation does.
    uint8_t *bad = malloc((size_t)h * w);
    memcpy(bad, ress[0], (size_t)h * w);
    bad[7] = (uint8_t)(nobj + 1);
    const uint8_t *bads[1] = {bad};
    rc = davis_score_sequence(gts, bads, 1, h, w, nobj, J, F, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "label 3"), "a result label above the objects is refused (%s)", err);

    free(bad), free(a), free(b), free(J), free(F), free(gt), free(res);
    fixture_free(&fx);
    return test_finish();
}
