// The multi-crop pass (MultiCropWrapper) against PyTorch: a tiny DINO model
// (tools/make_engine_fixtures.py, engine_p4.dfx "mc"), 2 images with 2 crops
// of 32 px and 3 crops of 16 px, drop path in both groups, norm_last_layer
// false; logits and every parameter gradient of sum(logits·R), accumulated
// into the model's flat gradient buffer. Also the model table layout.
// Tolerances relative to each tensor's scale: logits 1e-5, gradients 2e-5.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "engine_fill.h"
#include "fixture.h"
#include "model.h"
#include "testlib.h"

static void test_table(void) {
    ViTConfig vc;
    vit_config_preset(&vc, "vit_small", 16);
    HeadConfig hc;
    head_config_default(&hc, 384, 65536);
    DinoModel m;
    model_build(&m, &vc, &hc, 1);
    CHECK(m.table.total == 21665664 + 5509376 + 16842752, "ViT-S/16 + DINOHead: %zu floats",
          m.table.total);
    CHECK(!strcmp(m.table.p[0].name, "backbone.cls_token") &&
              !strcmp(m.table.p[m.table.n - 1].name, "head.last_layer.weight_v") &&
              !strcmp(m.table.p[m.table.n - 2].name, "head.last_layer.weight_g"),
          "table runs backbone.cls_token .. head.last_layer.weight_v");
    model_free(&m);
}

int main(void) {
    dino_set_threads(2);
    test_table();

    Fixture fx = fixture_load("engine_p4.dfx");
    ViTConfig vc = {.img_size = 16, .patch = 4, .in_chans = 3, .dim = 48, .depth = 2,
                    .heads = 3, .mlp_hidden = 192, .ln_eps = 1e-6f};
    HeadConfig hc;
    head_config_default(&hc, 48, 64);
    hc.hidden = 32;
    hc.bottleneck = 16;
    hc.norm_last_layer = 0;
    DinoModel m;
    model_build(&m, &vc, &hc, 1);
    float *params = callocCheck(m.table.total, sizeof(float));
    float *grads = callocCheck(m.table.total, sizeof(float));
    engine_fill_params(&m.table, params);

    int B = 2;
    Batch b;
    memset(&b, 0, sizeof b);
    b.B = B;
    b.n_groups = 2;
    int sizes[2] = {32, 16}, ncrops[2] = {2, 3}, crop = 0;
    for (int g = 0; g < 2; g++) {
        int s = sizes[g];
        size_t per = (size_t)B * 3 * s * s;
        b.groups[g].size = s;
        b.groups[g].n_crops = ncrops[g];
        b.groups[g].pixels = mallocCheck(ncrops[g] * per * sizeof(float));
        // Crop c of every image, crop-major: the script's fill per crop.
        for (int c = 0; c < ncrops[g]; c++, crop++)
            fixture_fill(b.groups[g].pixels + c * per, per,
                         ENGINE_IMG_SEED + 16 * 3 + (uint64_t)crop, -2.0f, 2.0f);
    }
    float *drops[2] = {fixture_get(&fx, "mc.drop0")->data, fixture_get(&fx, "mc.drop1")->data};

    MultiCropActs *a = multicrop_acts_create(&m, &b, 2, 1);
    const float *logits = multicrop_forward(&m, params, a, &b, drops);
    size_t nl = (size_t)10 * hc.out_dim;
    const FixtureTensor *want = fixture_get(&fx, "mc.logits");
    CHECK(want->numel == nl, "mc.logits has %zu values", want->numel);
    engine_close("mc.logits", logits, want->data, nl, 1e-5);

    float *R = mallocCheck(nl * sizeof(float));
    fixture_fill(R, nl, ENGINE_R_SEED + 3, -1.0f, 1.0f);
    // Accumulates: a second backward over the same pass doubles every gradient.
    multicrop_backward(&m, params, grads, a, R);
    char key[160];
    for (int i = 0; i < m.table.n; i++) {
        const ParamInfo *p = &m.table.p[i];
        snprintf(key, sizeof key, "mc.grad.%s", p->name);
        const FixtureTensor *t = fixture_get(&fx, key);
        engine_close(key, grads + p->offset, t->data, p->numel, 2e-5);
    }
    multicrop_backward(&m, params, grads, a, R);
    const FixtureTensor *tq = fixture_get(&fx, "mc.grad.backbone.blocks.0.attn.qkv.weight");
    int iq = param_table_find(&m.table, "backbone.blocks.0.attn.qkv.weight");
    float *twice = mallocCheck(tq->numel * sizeof(float));
    for (size_t j = 0; j < tq->numel; j++) twice[j] = 2.0f * tq->data[j];
    engine_close("second backward accumulates (qkv.weight x2)", grads + m.table.p[iq].offset,
                 twice, tq->numel, 2e-5);

    // Inference activations give the same logits (no drop path).
    MultiCropActs *ai = multicrop_acts_create(&m, &b, 2, 0);
    MultiCropActs *at = multicrop_acts_create(&m, &b, 2, 1);
    const float *li = multicrop_forward(&m, params, ai, &b, NULL);
    const float *lt = multicrop_forward(&m, params, at, &b, NULL);
    engine_close("inference vs training activations, logits", li, lt, nl, 1e-6);
    // The teacher's pass over the first group only.
    MultiCropActs *a1 = multicrop_acts_create(&m, &b, 1, 0);
    const float *l1 = multicrop_forward(&m, params, a1, &b, NULL);
    CHECK(a1->n_groups == 1, "one-group pass");
    // Rows of the global crops in the two-group pass equal the one-group pass
    // except through the head's per-row arithmetic, which is row-independent.
    engine_close("teacher pass = first 4 rows of the full pass", l1, lt, (size_t)4 * hc.out_dim,
                 1e-6);

    multicrop_acts_free(a);
    multicrop_acts_free(ai);
    multicrop_acts_free(at);
    multicrop_acts_free(a1);
    free(R), free(twice), free(params), free(grads);
    for (int g = 0; g < 2; g++) free(b.groups[g].pixels);
    model_free(&m);
    fixture_free(&fx);
    return test_finish();
}
