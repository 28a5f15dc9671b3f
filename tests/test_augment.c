// Multi-crop augmentation. Exactness: six DINO views of the real photo with
// parameters drawn by torchvision (every operation on somewhere; 224 and 96
// crops) and the evaluation transform must equal torchvision's bytes
// (data_pipeline.bin: uint8 hash + row sums, and the normalised tensors to
// 1e-6). Statistics of our keyed draws: crop scale and log-ratio
// distributions, flip/jitter/grey/blur/solarize rates, factor ranges,
// sigma range, the RandomResizedCrop fallback, and determinism of the keys.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/augment.h"
#include "data_testutil.h"
#include "fixture.h"
#include "image/decode.h"
#include "image/ops.h"
#include "testlib.h"

static void test_views(void) {
    Fixture fx = fixture_load("data_pipeline.bin");
    Image im;
    char err[512], name[64];
    if (image_decode_file(test_fixture_path("data_photo.jpg"), 0, &im, err, sizeof err)) {
        CHECK(0, "photo fixture: %s", err);
        return;
    }
    int nv = (int)fixture_scalar(&fx, "views");
    uint8_t *u = malloc(224 * 224 * 3);
    float *x = malloc(sizeof(float) * 3 * 224 * 224);
    for (int k = 0; k < nv; k++) {
        snprintf(name, sizeof name, "view%d.params", k);
        const float *v = fixture_get(&fx, name)->data;
        CropParams p = {0};
        p.i = (int)v[0]; p.j = (int)v[1]; p.h = (int)v[2]; p.w = (int)v[3];
        p.flip = v[4] != 0; p.jitter = v[5] != 0;
        for (int q = 0; q < 4; q++) p.perm[q] = (int)v[6 + q];
        p.brightness = v[10]; p.contrast = v[11]; p.saturation = v[12]; p.hue = v[13];
        p.gray = v[14] != 0; p.blur = v[15] != 0; p.sigma = v[16]; p.solarize = v[17] != 0;
        int size = (int)v[18];
        augment_apply_u8(&im, &p, size, u);
        snprintf(name, sizeof name, "view%d.hash", k);
        uint64_t want = data_fixture_hash(fixture_get(&fx, name));
        snprintf(name, sizeof name, "view%d.rowsums", k);
        double rs = data_rowsum_maxdiff(u, size, size, fixture_get(&fx, name));
        CHECK(data_hash64(u, (size_t)size * size * 3) == want && rs == 0,
              "view %d (%d px; crop %dx%d@%d,%d flip %d jitter %d [%d%d%d%d] b %.3f c %.3f s %.3f h %.3f gray %d "
              "blur %d sigma %.3f solarize %d): uint8 equal to torchvision (max |row-sum diff| %.0f)",
              k, size, p.w, p.h, p.j, p.i, p.flip, p.jitter, p.perm[0], p.perm[1], p.perm[2], p.perm[3],
              p.brightness, p.contrast, p.saturation, p.hue, p.gray, p.blur, p.sigma, p.solarize, rs);
        snprintf(name, sizeof name, "view%d.tensor", k);
        const FixtureTensor *t = fixture_find(&fx, name);
        if (t) {
            augment_apply(&im, &p, size, x, u);
            snprintf(name, sizeof name, "view %d normalised tensor", k);
            test_close(name, x, t->data, t->numel, 1e-6, 0);
        }
    }
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "eval%d.crop", k);
        int crop = (int)fixture_scalar(&fx, name);
        eval_transform_u8(&im, crop, u);
        snprintf(name, sizeof name, "eval%d.hash", k);
        uint64_t want = data_fixture_hash(fixture_get(&fx, name));
        snprintf(name, sizeof name, "eval%d.rowsums", k);
        double rs = data_rowsum_maxdiff(u, crop, crop, fixture_get(&fx, name));
        CHECK(data_hash64(u, (size_t)crop * crop * 3) == want && rs == 0,
              "eval transform (Resize %d bicubic, CenterCrop %d) equal to torchvision (max |row-sum diff| %.0f)",
              eval_resize_size(crop), crop, rs);
    }
    Image tall = {70, 150, data_noise(150, 70, 31)};
    eval_transform_u8(&tall, 64, u);
    CHECK(data_maxdiff(u, fixture_get(&fx, "eval_tall")) == 0, "eval transform of a tall 70x150 image: max |diff| %d",
          data_maxdiff(u, fixture_get(&fx, "eval_tall")));
    image_free(&tall);
    free(u);
    free(x);
    image_free(&im);
    fixture_free(&fx);
}

static void test_statistics(void) {
    AugmentConfig cfg;
    augment_config_default(&cfg);
    int W = 500, H = 375, N = 20000;
    double area = (double)W * H;
    const double lr = log(4.0 / 3.0);  // ratio range (3/4, 4/3): log-ratio in [-lr, lr]
    for (int kind = 0; kind < 2; kind++) {
        int crop = kind == 0 ? 0 : 2;
        double s0 = kind == 0 ? 0.4 : 0.05, s1 = kind == 0 ? 1.0 : 0.4;
        double sum_lr = 0, sum_lr2 = 0, sum_s = 0;
        int in_range = 1, n = 0;
        for (int t = 0; t < N; t++) {
            CropParams p;
            augment_params_for(&cfg, 5, 0, t, crop, W, H, &p);
            in_range &= p.i >= 0 && p.j >= 0 && p.i + p.h <= H && p.j + p.w <= W && p.w > 0 && p.h > 0;
            double s = p.w * (double)p.h / area, r = log((double)p.w / p.h);
            // Rounding to whole pixels widens the ranges slightly.
            in_range &= s >= s0 * 0.97 && s <= s1 * 1.001 + 0.01 && fabs(r) <= lr + 0.03;
            sum_s += s;
            sum_lr += r;
            sum_lr2 += r * r;
            n++;
        }
        double mean_lr = sum_lr / n, var_lr = sum_lr2 / n - mean_lr * mean_lr, mean_s = sum_s / n;
        // Expected values: an accepted draw is uniform over the feasible part of
        // (scale, log-ratio) space (crop fits in the image), integrated on a grid.
        double m0 = 0, ms = 0, me = 0, me2 = 0;
        for (int a = 0; a < 400; a++)
            for (int q = 0; q < 400; q++) {
                double s = s0 + (s1 - s0) * (a + 0.5) / 400, e = -lr + 2 * lr * (q + 0.5) / 400;
                if (sqrt(area * s * exp(e)) > W || sqrt(area * s / exp(e)) > H) continue;
                m0 += 1;
                ms += s;
                me += e;
                me2 += e * e;
            }
        double want_s = ms / m0, want_e = me / m0, want_var = me2 / m0 - want_e * want_e;
        CHECK(fabs(mean_lr - want_e) < 0.01 && fabs(var_lr - want_var) / want_var < 0.1,
              "%s crops: log-ratio mean %.4f (%.4f) variance %.5f (%.5f)", kind ? "local" : "global", mean_lr,
              want_e, var_lr, want_var);
        CHECK(fabs(mean_s - want_s) < 0.01, "%s crops: mean area fraction %.4f (%.4f)", kind ? "local" : "global",
              mean_s, want_s);
    }
    // Rates of the random operations over many crops of each kind.
    int cnt[3][6] = {{0}};
    int factors_ok = 1, perm_ok = 1;
    double smin = 9, smax = 0;
    for (int t = 0; t < N; t++)
        for (int kind = 0; kind < 3; kind++) {
            CropParams p;
            augment_params_for(&cfg, 9, 1, t, kind, W, H, &p);
            cnt[kind][0] += p.flip;
            cnt[kind][1] += p.jitter;
            cnt[kind][2] += p.gray;
            cnt[kind][3] += p.blur;
            cnt[kind][4] += p.solarize;
            if (p.jitter) {
                factors_ok &= p.brightness >= 0.6f && p.brightness <= 1.4f && p.contrast >= 0.6f &&
                              p.contrast <= 1.4f && p.saturation >= 0.8f && p.saturation <= 1.2f &&
                              p.hue >= -0.1f && p.hue <= 0.1f;
                int seen = 0;
                for (int q = 0; q < 4; q++) seen |= 1 << p.perm[q];
                perm_ok &= seen == 15;
            }
            if (p.blur) {
                if (p.sigma < smin) smin = p.sigma;
                if (p.sigma > smax) smax = p.sigma;
            }
        }
    double want[3][5] = {{0.5, 0.8, 0.2, 1.0, 0.0}, {0.5, 0.8, 0.2, 0.1, 0.2}, {0.5, 0.8, 0.2, 0.5, 0.0}};
    const char *names[5] = {"flip", "jitter", "grayscale", "blur", "solarize"};
    const char *kinds[3] = {"global 1", "global 2", "local"};
    for (int kind = 0; kind < 3; kind++)
        for (int o = 0; o < 5; o++) {
            double rate = cnt[kind][o] / (double)N, w = want[kind][o];
            double tol = 4 * sqrt(w * (1 - w) / N) + 1e-9;  // 4 standard errors
            CHECK(fabs(rate - w) <= tol, "%s %s rate %.4f (p = %.2f, tol %.4f)", kinds[kind], names[o], rate, w, tol);
        }
    CHECK(factors_ok && perm_ok, "jitter factors within their ranges; order is a permutation of 4");
    CHECK(smin >= 0.1 && smax <= 2.0 && smin < 0.11 && smax > 1.99, "blur sigma in [0.1, 2.0] (seen %.4f .. %.4f)", smin, smax);
    // Determinism and key independence.
    CropParams a, b, c;
    augment_params_for(&cfg, 1, 2, 3, 4, W, H, &a);
    augment_params_for(&cfg, 1, 2, 3, 4, W, H, &b);
    augment_params_for(&cfg, 1, 2, 3, 5, W, H, &c);
    CHECK(!memcmp(&a, &b, sizeof a) && memcmp(&a, &c, sizeof a), "same key -> same params; another crop -> other params");
}

static void test_rrc_fallback(void) {
    // A 1000x10 strip: no crop with ratio in [3/4, 4/3] fits in 10 tries at
    // scale >= 0.4, so the centre fallback h = H, w = round(H·4/3) = 13 is used.
    Rng r;
    rng_stream(&r, RNG_TEST, 3, 0, 0, 0);
    int i, j, h, w, fallback = 1;
    for (int t = 0; t < 50; t++) {
        augment_rrc_params(&r, 1000, 10, 0.4f, 1.0f, &i, &j, &h, &w);
        fallback &= h == 10 && w == 13 && i == 0 && j == (1000 - 13) / 2;
    }
    CHECK(fallback, "RandomResizedCrop fallback on a 1000x10 strip: centre 13x10 at (0, 493)");
    // A tall 10x1000 strip: w = W, h = round(W/0.75) = 13.
    augment_rrc_params(&r, 10, 1000, 0.4f, 1.0f, &i, &j, &h, &w);
    CHECK(w == 10 && h == 13 && j == 0 && i == (1000 - 13) / 2, "fallback on a 10x1000 strip: 10x13 at (493, 0)");
    // Square image, full-scale range: never falls back, always inside.
    int ok = 1;
    for (int t = 0; t < 1000; t++) {
        augment_rrc_params(&r, 64, 64, 0.05f, 0.4f, &i, &j, &h, &w);
        ok &= i >= 0 && j >= 0 && i + h <= 64 && j + w <= 64;
    }
    CHECK(ok, "RRC boxes always inside a 64x64 image");
}

int main(void) {
    test_views();
    test_statistics();
    test_rrc_fallback();
    return test_finish();
}
