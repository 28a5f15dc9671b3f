// ViT backbone and DINO head against PyTorch (tools/make_engine_fixtures.py):
// tiny models (D=48, depth 2, 3 heads) at patch 4 and 16, at the stored grid,
// a non-square and an interpolated size, with and without drop path and
// norm_last_layer: final-norm tokens, last attention, intermediate layers,
// head logits, every parameter gradient and the input gradient. Then a
// full-size ViT-S/16 forward at 224, 96 and 160x224. Weights and inputs are
// regenerated with fixture_fill.
//
// Tolerances (relative to each tensor's largest magnitude, see engine_close):
// forward 1e-5 (tiny and ViT-S), gradients 2e-5. Measured errors are <= 1.5e-6
// of the tensor's scale (fp32 GEMMs with another summation order).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "engine_fill.h"
#include "fixture.h"
#include "head.h"
#include "model.h"
#include "testlib.h"
#include "vit.h"

#define TOL_FWD 1e-5
#define TOL_GRAD 2e-5

static void tiny_config(ViTConfig *vc, HeadConfig *hc, int img, int patch, int norm_last,
                        int nlayers) {
    memset(vc, 0, sizeof *vc);
    vc->img_size = img;
    vc->patch = patch;
    vc->in_chans = 3;
    vc->dim = 48;
    vc->depth = 2;
    vc->heads = 3;
    vc->mlp_hidden = 192;
    vc->ln_eps = 1e-6f;
    head_config_default(hc, 48, 64);
    hc->hidden = 32;
    hc->bottleneck = 16;
    hc->nlayers = nlayers;
    hc->norm_last_layer = norm_last;
}

static void cmp_fx(const Fixture *fx, const char *tag, const char *name, const float *got,
                   size_t n, double tol) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", tag, name);
    const FixtureTensor *t = fixture_get(fx, key);
        CHECK(t->numel == n, "%s: size %zu (fixture %zu)", key, n, t->numel);
    if (t->numel == n) engine_close(key, got, t->data, n, tol);
}

// One backbone pass, head on the CLS tokens, loss sum(logits·R) + sum(tokens·Rt).
static void single_case(const char *file, const Fixture *fx, const char *tag, int img, int patch,
                        int norm_last, int nlayers, int k, int B, int H, int W) {
    printf("-- %s case %s: %dx%d, patch %d, norm_last_layer %d, head nlayers %d\n", file, tag, H,
           W, patch, norm_last, nlayers);
    ViTConfig vc;
    HeadConfig hc;
    tiny_config(&vc, &hc, img, patch, norm_last, nlayers);
    DinoModel m;
    model_build(&m, &vc, &hc, 1);
    float *params = callocCheck(m.table.total, sizeof(float));
    float *grads = callocCheck(m.table.total, sizeof(float));
    engine_fill_params(&m.table, params);
    ViTWeights vw, gw;
    HeadWeights hw, ghw;
    model_bind(&m, params, &vw, &hw);
    model_bind(&m, grads, &gw, &ghw);

    size_t nimg = (size_t)B * 3 * H * W;
    float *images = mallocCheck(nimg * sizeof(float));
    fixture_fill(images, nimg, ENGINE_IMG_SEED + 16 * (uint64_t)k, -2.0f, 2.0f);
    char key[128];
    snprintf(key, sizeof key, "%s.drop", tag);
    const FixtureTensor *drop = fixture_find(fx, key);

    int D = vc.dim, T = vit_tokens(&vc, H, W), NH = vc.heads;
    size_t ntok = (size_t)B * T * D;
    ViTActs *a = vit_acts_create(&vc, B, H, W, 1);
    vit_forward(&vc, &vw, a, images, B, drop ? drop->data : NULL);
    cmp_fx(fx, tag, "tokens", vit_output(a), ntok, TOL_FWD);
    cmp_fx(fx, tag, "attn", vit_last_attention(a), (size_t)B * NH * T * T, TOL_FWD);
    float *inter = mallocCheck(2 * ntok * sizeof(float));
    vit_intermediate(&vc, &vw, a, 2, inter);
    cmp_fx(fx, tag, "inter", inter, 2 * ntok, TOL_FWD);

    // The inference path (slots reused, no saved statistics) must agree.
    if (!drop) {
        // (created for one image more than used: a smaller batch is allowed)
        ViTActs *ai = vit_acts_create(&vc, B + 1, H, W, 0);
        vit_forward(&vc, &vw, ai, images, B, NULL);
        char t2[64];
        snprintf(t2, sizeof t2, "%s", tag);
        printf("   (inference activations)\n");
        cmp_fx(fx, t2, "tokens", vit_output(ai), ntok, TOL_FWD);
        cmp_fx(fx, t2, "attn", vit_last_attention(ai), (size_t)B * NH * T * T, TOL_FWD);
        vit_intermediate(&vc, &vw, ai, 2, inter);
        cmp_fx(fx, t2, "inter", inter, 2 * ntok, TOL_FWD);
        vit_acts_free(ai);
    }

    float *feat = mallocCheck((size_t)B * D * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(feat + (size_t)b * D, vit_output(a) + (size_t)b * T * D, (size_t)D * sizeof(float));
    HeadActs *h = head_acts_create(&hc, B, 1);
    head_forward(&hc, &hw, h, feat, B);
    cmp_fx(fx, tag, "logits", head_output(h), (size_t)B * hc.out_dim, TOL_FWD);

    float *R = mallocCheck((size_t)B * hc.out_dim * sizeof(float));
    fixture_fill(R, (size_t)B * hc.out_dim, ENGINE_R_SEED + (uint64_t)k, -1.0f, 1.0f);
    float *dtok = mallocCheck(ntok * sizeof(float));
    fixture_fill(dtok, ntok, ENGINE_RT_SEED + (uint64_t)k, -1.0f, 1.0f);
    float *dfeat = mallocCheck((size_t)B * D * sizeof(float));
    head_backward(&hc, &hw, &ghw, h, R, dfeat);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < D; j++) dtok[(size_t)b * T * D + j] += dfeat[(size_t)b * D + j];
    float *dimages = mallocCheck(nimg * sizeof(float));
    vit_backward(&vc, &vw, &gw, a, dtok, dimages);
    cmp_fx(fx, tag, "dimages", dimages, nimg, TOL_GRAD);
    for (int i = 0; i < m.table.n; i++) {
        const ParamInfo *p = &m.table.p[i];
        if (p->trainable) {
            snprintf(key, sizeof key, "grad.%s", p->name);
            cmp_fx(fx, tag, key, grads + p->offset, p->numel, TOL_GRAD);
        } else {
            int zero = 1;
            for (size_t j = 0; j < p->numel; j++) zero &= grads[p->offset + j] == 0.0f;
            CHECK(zero, "%s.%s: frozen, gradient stays zero", tag, p->name);
        }
    }
    free(params), free(grads), free(images), free(inter), free(feat), free(R), free(dtok);
    free(dfeat), free(dimages);
    vit_acts_free(a);
    head_acts_free(h);
    model_free(&m);
}

static void vits16_case(const Fixture *fx, const DinoModel *m, const float *params,
                        const char *tag, int k, int B, int H, int W) {
    printf("-- ViT-S/16 %s: B=%d %dx%d\n", tag, B, H, W);
    const ViTConfig *vc = &m->vit;
    ViTWeights vw;
    model_bind(m, (float *)params, &vw, NULL);
    size_t nimg = (size_t)B * 3 * H * W;
    float *images = mallocCheck(nimg * sizeof(float));
    fixture_fill(images, nimg, ENGINE_IMG_SEED + 16 * (uint64_t)k, -2.0f, 2.0f);
    ViTActs *a = vit_acts_create(vc, B, H, W, 0);
    double t0 = dino_now();
    vit_forward(vc, &vw, a, images, B, NULL);
    printf("   forward %.3f s\n", dino_now() - t0);
    int D = vc->dim, T = vit_tokens(vc, H, W), NH = vc->heads;
    const float *tok = vit_output(a);
    float *cls = mallocCheck((size_t)4 * B * D * sizeof(float));
    float *tok8 = mallocCheck((size_t)B * 8 * D * sizeof(float));
    for (int b = 0; b < B; b++) {
        memcpy(cls + (size_t)b * D, tok + (size_t)b * T * D, (size_t)D * sizeof(float));
        memcpy(tok8 + (size_t)b * 8 * D, tok + (size_t)b * T * D, (size_t)8 * D * sizeof(float));
    }
    cmp_fx(fx, tag, "cls", cls, (size_t)B * D, TOL_FWD);
    cmp_fx(fx, tag, "tokens8", tok8, (size_t)B * 8 * D, TOL_FWD);
    const float *att = vit_last_attention(a);
    float *acls = mallocCheck((size_t)B * NH * T * sizeof(float));
    for (int i = 0; i < B * NH; i++)
        memcpy(acls + (size_t)i * T, att + (size_t)i * T * T, (size_t)T * sizeof(float));
    cmp_fx(fx, tag, "attn_cls", acls, (size_t)B * NH * T, TOL_FWD);
    float *inter = mallocCheck((size_t)4 * B * T * D * sizeof(float));
    vit_intermediate(vc, &vw, a, 4, inter);
    for (int i = 0; i < 4 * B; i++)
        memcpy(cls + (size_t)i * D, inter + (size_t)i * T * D, (size_t)D * sizeof(float));
    cmp_fx(fx, tag, "inter_cls", cls, (size_t)4 * B * D, TOL_FWD);
    free(images), free(cls), free(tok8), free(acls), free(inter);
    vit_acts_free(a);
}

static void test_presets(void) {
    ViTConfig c;
    int64_t want[3][2] = {{5524416, 5526720}, {21665664, 21670272}, {85798656, 85807872}};
    const char *names[3] = {"vit_tiny", "vit_small", "deit_base"};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            int p = j ? 8 : 16;
            CHECK(vit_config_preset(&c, names[i], p) == 0, "preset %s", names[i]);
            ParamTable t;
            param_table_init(&t);
            vit_param_table(&c, &t, "");
            CHECK((int64_t)t.total == want[i][j] && t.n == 4 + 12 * 12 + 2,
                  "%s/%d: %zu parameters in %d tensors (reference %lld in 150)", names[i], p,
                  t.total, t.n, (long long)want[i][j]);
            param_table_free(&t);
        }
    CHECK(vit_config_preset(&c, "vit_huge", 16) == -1, "unknown preset rejected");
    HeadConfig hc;
    head_config_default(&hc, 384, 65536);
    ParamTable t;
    param_table_init(&t);
    head_param_table(&hc, &t, "head.");
    CHECK(t.total == 5509376 + 16842752, "DINOHead(384) has %zu parameters (reference 22352128)",
          t.total);
    int ig = param_table_find(&t, "head.last_layer.weight_g");
    CHECK(ig >= 0 && !t.p[ig].trainable && !t.p[ig].no_decay, "weight_g frozen, in decay group");
    CHECK(param_table_find(&t, "head.mlp.4.bias") >= 0, "head.mlp.4.bias present");
    param_table_free(&t);
}

static void test_init(void) {
    // Statistics of the reference initialisation on ViT-S/16.
    ViTConfig c;
    vit_config_preset(&c, "vit_small", 16);
    ParamTable t;
    param_table_init(&t);
    vit_param_table(&c, &t, "");
    float *p = callocCheck(t.total, sizeof(float));
    ViTWeights w;
    vit_weights_bind(&w, &c, p);
    vit_init(&c, &w, 42);
    double s = 0, ss = 0;
    size_t n = (size_t)3 * 384 * 384;
    for (size_t i = 0; i < n; i++) s += w.blocks[3].qkv_w[i], ss += w.blocks[3].qkv_w[i] * w.blocks[3].qkv_w[i];
    double sd = sqrt(ss / n - (s / n) * (s / n));
    CHECK(fabs(sd - 0.02) < 0.0005 && fabs(s / n) < 0.0005, "qkv weight std %.5f (0.02)", sd);
    float mx = 0;
    for (size_t i = 0; i < (size_t)384 * 768; i++) mx = fmaxf(mx, fabsf(w.patch_w[i]));
    CHECK(mx <= 1.0f / sqrtf(768.0f) && mx > 0.99f / sqrtf(768.0f), "patch weight max %.5f (1/sqrt(768))", mx);
    CHECK(w.blocks[5].ln1_w[7] == 1.0f && w.blocks[5].fc1_b[3] == 0.0f && w.norm_w[0] == 1.0f,
          "LayerNorm (1,0), Linear bias 0");
    free(p);
    param_table_free(&t);
}

int main(void) {
    dino_set_threads(2);
    test_presets();
    test_init();

    Fixture p4 = fixture_load("engine_p4.dfx");
    single_case("engine_p4", &p4, "a", 16, 4, 1, 3, 0, 2, 16, 16);
    single_case("engine_p4", &p4, "b", 16, 4, 0, 3, 1, 2, 24, 16);
    single_case("engine_p4", &p4, "c", 16, 4, 0, 3, 2, 2, 32, 32);
    fixture_free(&p4);

    Fixture p16 = fixture_load("engine_p16.dfx");
    single_case("engine_p16", &p16, "a", 64, 16, 1, 1, 4, 2, 64, 64);
    single_case("engine_p16", &p16, "b", 64, 16, 1, 1, 5, 2, 48, 80);
    fixture_free(&p16);

    Fixture fs = fixture_load("engine_vits16.dfx");
    DinoModel m;
    ViTConfig vc;
    vit_config_preset(&vc, "vit_small", 16);
    model_build(&m, &vc, NULL, 0);
    float *params = mallocCheck(m.table.total * sizeof(float));
    engine_fill_params(&m.table, params);
    vits16_case(&fs, &m, params, "s224", 10, 2, 224, 224);
    vits16_case(&fs, &m, params, "s96", 11, 2, 96, 96);
    vits16_case(&fs, &m, params, "s160x224", 12, 1, 160, 224);
    free(params);
    model_free(&m);
    fixture_free(&fs);
    return test_finish();
}
