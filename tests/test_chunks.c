// The pieces the chunked training pass is built from agree with the
// whole-batch functions: the head's forward and backward over rows that come
// a few at a time (head_prepare, head_forward_rows, head_backward_rows with a
// small sum_rows so the kept rows are flushed mid-batch, head_backward_finish)
// against head_forward + head_backward over all rows. Only the order of the
// gradient sums differs, so the tolerance is float32 rounding: 1e-6 of each
// tensor's scale (a missed or doubled chunk is off by its whole share). And
// the ViT backward from activations that recompute the attention
// probabilities (VIT_ACTS_TRAIN_LEAN) gives the same bits as from stored ones.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "head.h"
#include "params.h"
#include "rng.h"
#include "testlib.h"
#include "vit.h"

static void close_scaled(const char *what, const float *got, const float *want, size_t n) {
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(want[i]));
    test_close(what, got, want, n, 1e-6 * (mx > 0 ? mx : 1), 0);
}

static void head_in_chunks(int norm_last_layer) {
    HeadConfig hc;
    head_config_default(&hc, 24, 40);
    hc.hidden = 32;
    hc.bottleneck = 8;
    hc.norm_last_layer = norm_last_layer;
    ParamTable t;
    param_table_init(&t);
    head_param_table(&hc, &t, "");
    float *p = mallocCheck(t.total * sizeof(float));
    float *g1 = callocCheck(t.total, sizeof(float)), *g2 = callocCheck(t.total, sizeof(float));
    fixture_fill(p, t.total, 71, -0.3f, 0.3f);
    HeadWeights w, gw1, gw2;
    head_weights_bind(&w, &hc, p);
    head_weights_bind(&gw1, &hc, g1);
    head_weights_bind(&gw2, &hc, g2);
    const int N = 7, chunk = 3, sum_rows = 4;
    float *in = mallocCheck((size_t)N * hc.in_dim * sizeof(float));
    float *dout = mallocCheck((size_t)N * hc.out_dim * sizeof(float));
    float *din1 = mallocCheck((size_t)N * hc.in_dim * sizeof(float));
    float *din2 = mallocCheck((size_t)N * hc.in_dim * sizeof(float));
    float *logits2 = mallocCheck((size_t)N * hc.out_dim * sizeof(float));
    fixture_fill(in, (size_t)N * hc.in_dim, 72, -1, 1);
    fixture_fill(dout, (size_t)N * hc.out_dim, 73, -1, 1);

    HeadActs *a = head_acts_create(&hc, N, 1);
    head_forward(&hc, &w, a, in, N);
    head_backward(&hc, &w, &gw1, a, dout, din1);

    // Rows 0-2, 3-5, 6: the second chunk does not fit next to the first in
    // sum_rows = 4, so the first is flushed before it; finish flushes the rest.
    HeadActs *c = head_acts_create_rows(&hc, chunk, 1, sum_rows);
    head_prepare(&hc, &w, c);
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int n = N - r0 < chunk ? N - r0 : chunk;
        head_forward_rows(&hc, &w, c, in + (size_t)r0 * hc.in_dim, n);
        memcpy(logits2 + (size_t)r0 * hc.out_dim, head_output(c), (size_t)n * hc.out_dim * sizeof(float));
        head_backward_rows(&hc, &w, &gw2, c, dout + (size_t)r0 * hc.out_dim, din2 + (size_t)r0 * hc.in_dim,
                           r0 == 0);
    }
    head_backward_finish(&hc, &w, &gw2, c);
    char what[192];
    snprintf(what, sizeof what, "head in chunks (norm_last_layer %d): logits", norm_last_layer);
    close_scaled(what, logits2, head_output(a), (size_t)N * hc.out_dim);
    snprintf(what, sizeof what, "head in chunks (norm_last_layer %d): dL/din", norm_last_layer);
    close_scaled(what, din2, din1, (size_t)N * hc.in_dim);
    for (int i = 0; i < t.n; i++) {
        const ParamInfo *pi = &t.p[i];
        snprintf(what, sizeof what, "head in chunks (norm_last_layer %d): grad %s", norm_last_layer, pi->name);
        close_scaled(what, g2 + pi->offset, g1 + pi->offset, pi->numel);
    }
    head_acts_free(a);
    head_acts_free(c);
    param_table_free(&t);
    free(p), free(g1), free(g2), free(in), free(dout), free(din1), free(din2), free(logits2);
}

static void vit_lean_backward(void) {
    ViTConfig vc = {.img_size = 24, .patch = 4, .in_chans = 3, .dim = 48, .depth = 3,
                    .heads = 3, .mlp_hidden = 192, .ln_eps = 1e-6f};
    ParamTable t;
    param_table_init(&t);
    vit_param_table(&vc, &t, "");
    float *p = mallocCheck(t.total * sizeof(float));
    float *g1 = callocCheck(t.total, sizeof(float)), *g2 = callocCheck(t.total, sizeof(float));
    fixture_fill(p, t.total, 81, -0.2f, 0.2f);
    ViTWeights w, gw1, gw2;
    vit_weights_bind(&w, &vc, p);
    vit_weights_bind(&gw1, &vc, g1);
    vit_weights_bind(&gw2, &vc, g2);
    const int B = 3, H = 24;
    int T = vit_tokens(&vc, H, H);
    size_t nimg = (size_t)B * 3 * H * H, ntok = (size_t)B * T * vc.dim;
    float *img = mallocCheck(nimg * sizeof(float)), *dout = mallocCheck(ntok * sizeof(float));
    float *di1 = mallocCheck(nimg * sizeof(float)), *di2 = mallocCheck(nimg * sizeof(float));
    fixture_fill(img, nimg, 82, -2, 2);
    fixture_fill(dout, ntok, 83, -1, 1);
    float drop[2 * 3 * 3];
    for (int i = 0; i < 18; i++) drop[i] = i % 5 == 3 ? 0.0f : 1.25f;
    ViTActs *a1 = vit_acts_create_in(&vc, B, H, H, VIT_ACTS_TRAIN, NULL);
    ViTActs *a2 = vit_acts_create_in(&vc, B, H, H, VIT_ACTS_TRAIN_LEAN, NULL);
    CHECK(vit_acts_bytes(&vc, B, H, H, VIT_ACTS_TRAIN_LEAN) < vit_acts_bytes(&vc, B, H, H, VIT_ACTS_TRAIN),
          "lean training activations are smaller");
    vit_forward(&vc, &w, a1, img, B, drop);
    vit_forward(&vc, &w, a2, img, B, drop);
    vit_backward(&vc, &w, &gw1, a1, dout, di1);
    vit_backward(&vc, &w, &gw2, a2, dout, di2);
    CHECK(!memcmp(vit_output(a1), vit_output(a2), ntok * sizeof(float)) &&
              !memcmp(vit_last_attention(a1), vit_last_attention(a2), (size_t)B * 3 * T * T * sizeof(float)),
          "lean activations: same tokens and last-block attention");
    CHECK(!memcmp(g1, g2, t.total * sizeof(float)) && !memcmp(di1, di2, nimg * sizeof(float)),
          "lean activations: parameter and image gradients identical bit for bit");
    vit_acts_free(a1);
    vit_acts_free(a2);
    param_table_free(&t);
    free(p), free(g1), free(g2), free(img), free(dout), free(di1), free(di2);
}

int main(void) {
    dino_set_threads(2);
    vit_lean_backward();
    head_in_chunks(0);
    head_in_chunks(1);
    return test_finish();
}
