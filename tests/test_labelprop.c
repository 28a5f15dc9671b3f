// The reference's label propagation (DAVIS video object segmentation) against
// a PyTorch restatement (tools/make_downstream_fixtures.py) on fixed random
// features and soft masks: the propagated mask at patch resolution, its
// bilinear upsampling with per-channel min-max rescaling, and the labels
// (compared wherever the two largest channels differ by more than rounding).
// Three cases: a window as large as the grid (every source scored), no window,
// and a window small enough that only its sources are visited. Also: a
// neighbourhood window that leaves fewer than topk sources keeps them all,
// and bad configurations are refused.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/labelprop.h"
#include "fixture.h"
#include "rng.h"
#include "testlib.h"

static void fixture_case(const char *file) {
    Fixture fx = fixture_load(file);
    const float *cf = fixture_get(&fx, "cfg")->data;
    int h = (int)cf[0], w = (int)cf[1], d = (int)cf[2], C = (int)cf[3], n = (int)cf[4];
    int r = (int)cf[5], topk = (int)cf[6], patch = (int)cf[7];
    uint64_t seed = (uint64_t)cf[8];
    int hw = h * w;
    float *target = malloc(sizeof(float) * hw * d), *feats[8], *segs[8];
    fixture_fill(target, (size_t)hw * d, seed, -1.0f, 1.0f);
    for (int i = 0; i < n; i++) {
        feats[i] = malloc(sizeof(float) * hw * d);
        segs[i] = malloc(sizeof(float) * C * hw);
        fixture_fill(feats[i], (size_t)hw * d, seed + 1 + i, -1.0f, 1.0f);
        fixture_fill(segs[i], (size_t)C * hw, seed + 100 + i, 0.0f, 1.0f);
    }
    LabelProp lp = {.h = h, .w = w, .dim = d, .n_classes = C, .neighborhood = r, .topk = topk, .temperature = 0.1f};
    float *seg = malloc(sizeof(float) * C * hw);
    char err[256];
    int rc = labelprop_propagate(&lp, target, (const float *const *)feats, (const float *const *)segs, n, seg,
                                 err, sizeof err);
    CHECK(rc == 0, "%s: propagation runs (%s)", file, rc ? err : "ok");
    char what[160];
    snprintf(what, sizeof what, "%s: propagated mask (%d classes, %dx%d, window %d, top-%d)", file, C, h, w, r, topk);
    test_close(what, seg, fixture_get(&fx, "seg")->data, (size_t)C * hw, 1e-6, 1e-5);

    size_t npix = (size_t)h * patch * w * patch;
    float *up = malloc(sizeof(float) * C * npix);
    labelprop_upsample(fixture_get(&fx, "seg")->data, C, h, w, patch, up);
    snprintf(what, sizeof what, "%s: upsampled x%d and rescaled", file, patch);
    test_close(what, up, fixture_get(&fx, "up")->data, C * npix, 1e-6, 1e-5);

    // labels from our own propagated mask, as the command computes them
    labelprop_upsample(seg, C, h, w, patch, up);
    uint8_t *lab = malloc(npix);
    labelprop_argmax(up, C, npix, lab);
    const float *want = fixture_get(&fx, "labels")->data, *margin = fixture_get(&fx, "margin")->data;
    long differ = 0, near_ties = 0;
    for (size_t i = 0; i < npix; i++) {
        if (margin[i] <= 1e-4f) near_ties++;
        else if (lab[i] != (uint8_t)want[i]) differ++;
    }
    CHECK(differ == 0 && near_ties < (long)npix / 100,
          "%s: labels equal the reference's at every pixel whose two best channels differ by more than 1e-4 (%ld differ; %ld near ties of %zu)",
          file, differ, near_ties, npix);
    free(lab);
    free(up);
    free(seg);
    for (int i = 0; i < n; i++) free(feats[i]), free(segs[i]);
    free(target);
    fixture_free(&fx);
}

// A 1-patch window at a corner of a 3x3 grid sees 4 sources in one context
// frame: with topk 5 every one of them is kept (the 5th largest is a zero).
static void small_window(void) {
    const int h = 3, w = 3, d = 2, C = 2;
    float target[9 * 2], src[9 * 2], mask[2 * 9], out[2 * 9];
    for (int i = 0; i < 9; i++) {
        target[2 * i] = src[2 * i] = 1.0f;
        target[2 * i + 1] = src[2 * i + 1] = 0.1f * i;
        mask[i] = (float)(i % 2);      // channel 0
        mask[9 + i] = (float)(1 - i % 2);  // channel 1
    }
    LabelProp lp = {.h = h, .w = w, .dim = d, .n_classes = C, .neighborhood = 1, .topk = 5, .temperature = 0.1f};
    const float *f[1] = {src}, *s[1] = {mask};
    char err[256];
    int rc = labelprop_propagate(&lp, target, f, s, 1, out, err, sizeof err);
    // query 0 (corner): sources 0, 1, 3, 4; channel 0 holds 1 at sources 1 and 3
    int ok = rc == 0 && fabsf(out[0] + out[9] - 1.0f) < 1e-6f && out[0] > 0.0f && out[0] < 1.0f;
    CHECK(ok, "corner query with fewer window sources than topk: weights over its 4 sources sum to 1 (%g + %g)",
          out[0], out[9]);
    lp.topk = 10;
    rc = labelprop_propagate(&lp, target, f, s, 1, out, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "topk"), "topk above the number of sources refused: %s", err);
    lp.topk = 5;
    lp.temperature = 0;
    rc = labelprop_propagate(&lp, target, f, s, 1, out, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "invalid"), "temperature 0 refused: %s", err);
}

int main(void) {
    fixture_case("downstream_labelprop_window.bin");
    fixture_case("downstream_labelprop_all.bin");
    fixture_case("downstream_labelprop_sparse.bin");
    small_window();
    return test_finish();
}
