// Tests of src/rng.c: the fixture generator reproduces tools/fixture_io.fill
// exactly, keyed streams are deterministic and distinct, and the draws have
// the range and moments they promise. Also checks the parameter table rules.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "params.h"
#include "rng.h"
#include "testlib.h"

static void check_fill(const Fixture *fx, const char *name, uint64_t seed, float lo, float hi) {
    const FixtureTensor *t = fixture_get(fx, name);
    float *x = malloc(t->numel * sizeof(float));
    fixture_fill(x, t->numel, seed, lo, hi);
    CHECK(memcmp(x, t->data, t->numel * sizeof(float)) == 0, "fixture_fill matches Python fill (%s, bitwise)", name);
    free(x);
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

int main(void) {
    Fixture fx = fixture_load("core_fill.dfx");
    check_fill(&fx, "fill_s0_m1_1", 0, -1.0f, 1.0f);
    check_fill(&fx, "fill_s7_0_1", 7, 0.0f, 1.0f);
    check_fill(&fx, "fill_s123456_m0.02_0.02", 123456, -0.02f, 0.02f);
    fixture_free(&fx);

    Rng a, b, c;
    rng_stream(&a, RNG_TEST, 1, 2, 3, 4);
    rng_stream(&b, RNG_TEST, 1, 2, 3, 4);
    rng_stream(&c, RNG_TEST, 1, 2, 3, 5);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rng_u64(&a), y = rng_u64(&b), z = rng_u64(&c);
        same &= x == y;
        differ += x != z;
    }
    CHECK(same, "equal keys give equal streams");
    CHECK(differ == 100, "a different key gives a different stream (%d/100 differ)", differ);

    // Domains: every (domain, seed, a, b, c) over a grid that includes the
    // keys the uses pass (small indices, all ones) starts differently, so
    // e.g. the backbone init of slot i no longer replays the augmentation of
    // sample i in epoch 1.
    {
        const uint64_t seeds[3] = {0, 1, 42}, keys[4] = {0, 1, 2, UINT64_MAX};
        size_t n = 0, cap = (size_t)RNG_DOMAIN_COUNT * 3 * 64;
        uint64_t *first = malloc(cap * sizeof *first);
        for (int d = 1; d < RNG_DOMAIN_COUNT; d++)
            for (int s = 0; s < 3; s++)
                for (int i = 0; i < 64; i++) {
                    Rng q;
                    rng_stream(&q, (RngDomain)d, seeds[s], keys[i & 3], keys[(i >> 2) & 3], keys[i >> 4]);
                    first[n++] = rng_u64(&q);
                }
        qsort(first, n, sizeof *first, cmp_u64);
        int dup = 0;
        for (size_t i = 1; i < n; i++) dup += first[i] == first[i - 1];
        CHECK(dup == 0, "no two of %zu (domain, seed, keys) streams start alike (%d repeats)", n, dup);
        free(first);
        Rng init, aug;
        rng_stream(&init, RNG_INIT_BACKBONE, 0, 3, 0, 0);
        rng_stream(&aug, RNG_AUGMENT, 0, 3, 0, 0);
        CHECK(rng_u64(&init) != rng_u64(&aug), "the same keys in two domains give two streams");
    }

    Rng r;
    rng_stream(&r, RNG_TEST, 42, 0, 0, 0);
    const int n = 200000;
    double sum = 0, sum2 = 0, nsum = 0, nsum2 = 0;
    float umin = 1, umax = 0;
    int below_ok = 1, counts[7] = {0};
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        umin = fminf(umin, u);
        umax = fmaxf(umax, u);
        sum += u;
        sum2 += (double)u * u;
        double g = rng_normal(&r);
        nsum += g;
        nsum2 += g * g;
        uint32_t k = rng_below(&r, 7);
        below_ok &= k < 7;
        counts[k < 7 ? k : 0]++;
    }
    CHECK(umin >= 0 && umax < 1, "uniform in [0,1): min %g max %g", umin, umax);
    CHECK(fabs(sum / n - 0.5) < 0.005, "uniform mean %.4f ~ 0.5", sum / n);
    CHECK(fabs(sum2 / n - sum * sum / ((double)n * n) - 1.0 / 12) < 0.003, "uniform variance ~ 1/12");
    CHECK(fabs(nsum / n) < 0.01 && fabs(nsum2 / n - 1) < 0.02, "normal mean %.4f variance %.4f", nsum / n, nsum2 / n);
    int cnt_ok = below_ok;
    for (int k = 0; k < 7; k++) cnt_ok &= fabs(counts[k] / (double)n - 1.0 / 7) < 0.005;
    CHECK(cnt_ok, "rng_below(7) in range and uniform");
    float tmin = 1, tmax = -1;
    for (int i = 0; i < 10000; i++) {
        float t = rng_trunc_normal(&r, 1.0f, -0.5f, 0.5f);
        tmin = fminf(tmin, t);
        tmax = fmaxf(tmax, t);
    }
    CHECK(tmin >= -0.5f && tmax <= 0.5f, "trunc_normal within bounds [%g, %g]", tmin, tmax);

    ParamTable t;
    param_table_init(&t);
    int64_t s2[2] = {4, 3}, s1[1] = {4}, s3[3] = {1, 1, 4};
    param_table_add(&t, "backbone.", "blocks.0.attn.qkv.weight", 2, s2);
    param_table_add(&t, "backbone.", "blocks.0.attn.qkv.bias", 1, s1);
    param_table_add(&t, "backbone.", "norm.weight", 1, s1);
    param_table_add(&t, "backbone.", "cls_token", 3, s3);
    CHECK(t.total == 12 + 4 + 4 + 4 && t.p[2].offset == 16, "table offsets are cumulative");
    CHECK(!t.p[0].no_decay && t.p[1].no_decay && t.p[2].no_decay && !t.p[3].no_decay,
          "no-decay group: biases and 1-D tensors only (cls_token is decayed, as in the reference)");
    CHECK(param_table_find(&t, "backbone.norm.weight") == 2 && param_table_find(&t, "norm.weight") == -1,
          "lookup by full name");
    param_table_free(&t);
    return test_finish();
}
