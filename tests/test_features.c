// Tests of src/eval/features.c and the model side of attention maps against
// tests/fixtures/eval_attention.bin (tools/make_eval_fixtures.py: a tiny
// reference ViT in PyTorch — img_size 32, patch 8, D 48, 2 blocks, 3 heads —
// with the engine fixtures' fill() weights, on a 43x61 image cropped
// top-left to 40x56, so the 4x4 position grid is interpolated to 5x7):
// - the last block's attention and its CLS maps; the threshold masks;
// - features: final-norm CLS, last-2-blocks CLS concatenated, CLS/mean-patch
//   interleaved (avgpool), all patch tokens; and each equals the model's own
//   forward output (vit_output / vit_intermediate) exactly;
// - features_extract over a small ImageFolder (partial last batch, threaded
//   loader) equals the eval transform + forward one image at a time.
// Tolerance: 5e-6 relative to each tensor's scale (float32 vs PyTorch CPU).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "engine_fill.h"
#include "eval/attnmap.h"
#include "eval/features.h"
#include "fixture.h"
#include "testlib.h"
#include "vit.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "image/decode.h"
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    dino_set_threads(2);
    Fixture fx = fixture_load("eval_attention.bin");
    const float *c = fixture_get(&fx, "config")->data;
    ViTConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.img_size = (int)c[0];
    cfg.patch = (int)c[1];
    cfg.dim = (int)c[2];
    cfg.depth = (int)c[3];
    cfg.heads = (int)c[4];
    cfg.mlp_hidden = (int)c[5];
    cfg.in_chans = 3;
    cfg.ln_eps = 1e-6f;
    int Hr = (int)c[6], Wr = (int)c[7];
    uint64_t img_seed = (uint64_t)c[8];
    ParamTable t;
    param_table_init(&t);
    vit_param_table(&cfg, &t, "");
    float *params = mallocCheck(t.total * sizeof(float));
    engine_fill_params(&t, params);
    ViTWeights w;
    vit_weights_bind(&w, &cfg, params);

    // Image (1,3,Hr,Wr), cropped top-left to multiples of the patch size.
    float *raw = mallocCheck((size_t)3 * Hr * Wr * sizeof(float));
    fixture_fill(raw, (size_t)3 * Hr * Wr, img_seed, -2, 2);
    int H = Hr - Hr % cfg.patch, W = Wr - Wr % cfg.patch;
    float *img = mallocCheck((size_t)3 * H * W * sizeof(float));
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < H; y++)
            memcpy(img + ((size_t)ch * H + y) * W, raw + ((size_t)ch * Hr + y) * Wr, (size_t)W * sizeof(float));

    struct ViTActs *a = vit_acts_create(&cfg, 1, H, W, 0);
    vit_forward(&cfg, &w, a, img, 1, NULL);
    int T = vit_acts_tokens(a), nh = cfg.heads, D = cfg.dim;
    CHECK(T == 1 + (H / 8) * (W / 8), "tokens %d for a %dx%d image", T, H, W);
    const FixtureTensor *fa = fixture_get(&fx, "attn");
    engine_close("last-block attention (non-square, interpolated positions)", vit_last_attention(a),
                 fa->data, fa->numel, 5e-6);
    float *maps = mallocCheck((size_t)nh * (T - 1) * sizeof(float));
    attnmap_cls(vit_last_attention(a), nh, T, maps);
    engine_close("CLS->patch maps", maps, fixture_get(&fx, "maps")->data, (size_t)nh * (T - 1), 5e-6);
    float *mask = mallocCheck((size_t)nh * (T - 1) * sizeof(float));
    attnmap_threshold(maps, nh, T - 1, 0.6, mask);
    test_close("threshold 0.6 masks from our attention", mask, fixture_get(&fx, "mask_0.6")->data,
               (size_t)nh * (T - 1), 0, 0);

    // Features of the same image.
    FeatureConfig fc;
    feature_config_default(&fc);
    fc.crop = H;  // features_dim only uses crop for patch tokens of square crops
    float *feat = mallocCheck((size_t)(T - 1) * D * sizeof(float) * 2);
    features_from_images(&cfg, &w, a, img, 1, &fc, feat);
    engine_close("CLS feature (model(x))", feat, fixture_get(&fx, "feat_cls")->data, D, 5e-6);
    CHECK(memcmp(feat, vit_output(a), D * sizeof(float)) == 0,
          "CLS feature equals the forward pass's final-norm CLS token exactly");
    fc.n_last_blocks = 2;
    features_from_images(&cfg, &w, a, img, 1, &fc, feat);
    engine_close("last-2-blocks CLS features", feat, fixture_get(&fx, "feat_n2")->data, 2 * D, 5e-6);
    float *inter = mallocCheck((size_t)2 * T * D * sizeof(float));
    vit_intermediate(&cfg, &w, a, 2, inter);
    CHECK(memcmp(feat, inter, D * sizeof(float)) == 0 && memcmp(feat + D, inter + (size_t)T * D, D * sizeof(float)) == 0,
          "n_last_blocks features equal vit_intermediate's CLS tokens exactly");
    fc.n_last_blocks = 1;
    fc.avgpool = 1;
    features_from_images(&cfg, &w, a, img, 1, &fc, feat);
    engine_close("avgpool features (CLS and mean patch interleaved)", feat,
                 fixture_get(&fx, "feat_avgpool")->data, 2 * D, 5e-6);
    fc.avgpool = 0;
    fc.tokens = FEATURE_TOKENS_PATCH;
    features_from_images(&cfg, &w, a, img, 1, &fc, feat);
    engine_close("patch tokens", feat, fixture_get(&fx, "tokens")->data + D, (size_t)(T - 1) * D, 5e-6);

    // features_dim
    fc.tokens = FEATURE_TOKENS_NONE;
    fc.n_last_blocks = 4;
    fc.avgpool = 0;
    CHECK(features_dim(&cfg, &fc) == 4 * D, "dim with 4 blocks = 4D");
    fc.n_last_blocks = 1;
    fc.avgpool = 1;
    CHECK(features_dim(&cfg, &fc) == 2 * D, "dim with avgpool = 2D");
    fc.avgpool = 0;
    fc.tokens = FEATURE_TOKENS_PATCH;
    fc.crop = 32;
    CHECK(features_dim(&cfg, &fc) == 16 * D, "dim of patch tokens at crop 32 = 16D");

    // features_extract over a small ImageFolder (5 images, batches of 2: a
    // partial last batch) equals the per-image eval transform + forward.
    {
        char dir[256], path[512], err[512];
        snprintf(dir, sizeof dir, "/tmp/dino_test_features_%d", (int)getpid());
        mkdir(dir, 0755);
        const char *cls[2] = {"cat", "dog"};
        uint8_t rgb[45 * 37 * 3];
        for (int k = 0; k < 5; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, cls[k % 2]);
            mkdir(path, 0755);
            for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)((i * (7 + k) + 31 * k) % 256);
            snprintf(path, sizeof path, "%s/%s/%d.png", dir, cls[k % 2], k);
            CHECK(image_write_png(path, rgb, 45, 37, err, sizeof err) == 0, "write %s", path);
        }
        Dataset *ds = dataset_open(dir, SPLIT_TRAIN, err, sizeof err);
        CHECK(ds && dataset_size(ds) == 5, "ImageFolder of 5 images opened (%s)", ds ? "" : err);
        if (ds) {
            FeatureConfig f2;
            feature_config_default(&f2);
            f2.crop = 32;
            f2.batch_size = 2;
            f2.threads = 2;
            float got[5 * 48];
            int64_t lab[5];
            CHECK(features_extract(&cfg, &w, ds, &f2, got, lab, err, sizeof err) == 0, "features_extract runs (%s)", err);
            CHECK(lab[0] == 0 && lab[1] == 0 && lab[2] == 0 && lab[3] == 1 && lab[4] == 1,
                  "labels in dataset order (cat: 0 2 4, dog: 1 3)");
            struct ViTActs *a1 = vit_acts_create(&cfg, 1, 32, 32, 0);
            float *x = mallocCheck(3 * 32 * 32 * sizeof(float)), want[5 * 48];
            for (int64_t i = 0; i < 5; i++) {
                Image im;
                dataset_load(ds, i, 0, &im, err, sizeof err);
                eval_transform(&im, 32, x);
                features_from_images(&cfg, &w, a1, x, 1, &f2, want + i * 48);
                image_free(&im);
            }
            test_close("features_extract rows vs one image at a time", got, want, 5 * 48, 3e-6, 1e-5);
            free(x);
            vit_acts_free(a1);
            dataset_close(ds);
        }
        // A corrupt file in the folder: a clear error, not a crash or a silent gap.
        snprintf(path, sizeof path, "%s/dog/broken.png", dir);
        FILE *bf = fopen(path, "wb");
        fputs("\x89PNG\r\n\x1a\n truncated", bf);
        fclose(bf);
        ds = dataset_open(dir, SPLIT_TRAIN, err, sizeof err);
        if (ds) {
            FeatureConfig f3;
            feature_config_default(&f3);
            f3.crop = 32;
            f3.batch_size = 4;
            float got[6 * 48];
            int64_t lab[6];
            int rc = features_extract(&cfg, &w, ds, &f3, got, lab, err, sizeof err);
            CHECK(rc == -1 && strstr(err, "unreadable"), "a corrupt image fails features_extract: %s", err);
            dataset_close(ds);
        }
        snprintf(path, sizeof path, "rm -rf %s", dir);
        if (system(path) != 0) printf("     cleanup of %s failed\n", dir);
    }

    vit_acts_free(a);
    free(raw); free(img); free(maps); free(mask); free(feat); free(inter); free(params);
    param_table_free(&t);
    fixture_free(&fx);
    return test_finish();
}
