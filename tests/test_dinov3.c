// DINOv3 backbones against PyTorch (tools/make_dinov3_fixtures.py): small
// random models (D=64, 2 blocks, 4 heads, patch 16, 4 storage tokens, RoPE)
// with a GELU MLP and with SwiGLU, each as an official-key .pth (checked by
// the script with the official DinoVisionTransformer, strict load) and as
// Hugging Face DINOv3ViTModel safetensors, loaded through model_load. At
// 64x64 and the non-square 48x80 and 80x32: final-norm CLS and patch tokens,
// storage tokens, the last block's attention among CLS and patches, and block
// 0 through the final norm. Then the k-bias mask, features, what model_load
// infers and refuses, saving and reloading, ViT-7B's missing qkv bias, and
// the CLI (info, attention, features, knn, convert).
//
// Tolerance: 1e-5 relative to each tensor's largest magnitude (engine_close),
// as tests/test_vit.c and tests/test_dinov2.c.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "data/augment.h"
#include "bf16_check.h"
#include "engine_fill.h"
#include "eval/features.h"
#include "eval/npy.h"
#include "fixture.h"
#include "image/decode.h"
#include "data/dataset.h"
#include "io/model_io.h"
#include "io/safetensors.h"
#include "model.h"
#include "testlib.h"
#include "vit.h"

#define TOL 1e-5
#define IMG_SEED 9300

static Fixture g_fx;
static const int g_sizes[3][2] = {{64, 64}, {48, 80}, {80, 32}};

static int load_heads(const char *file, int heads, DinoModel *m, float **p) {
    char err[1024];
    ModelLoadOptions opt = {NULL, MODEL_HEAD_NONE, heads};
    if (model_load(file, &opt, m, p, err, sizeof err)) {
        CHECK(0, "load %s: %s", file, err);
        return -1;
    }
    return 0;
}

// The .pth files give the heads through rope_embed.periods; Hugging Face's
// safetensors do not record them (D=64 is not 64 per head): given.
static int load(const char *file, DinoModel *m, float **p) {
    return load_heads(test_fixture_path(file), strstr(file, "_hf") ? 4 : 0, m, p);
}

static void cmp(const char *key, const float *got, size_t n) {
    const FixtureTensor *t = fixture_get(&g_fx, key);
    CHECK(t->numel == n, "%s: %zu values (fixture %zu)", key, n, t->numel);
    if (t->numel == n) engine_close(key, got, t->data, n, TOL);
}

static float *image(int B, int H, int W, int k) {
    float *x = malloc((size_t)B * 3 * H * W * sizeof(float));
    fixture_fill(x, (size_t)B * 3 * H * W, IMG_SEED + (uint64_t)k, -1.0f, 1.0f);
    return x;
}

// Forward at every size; compares with <kind>/<src>/<HxW>/*.
static void run_sizes(const DinoModel *m, float *p, const char *kind, const char *src) {
    ViTWeights w;
    model_bind(m, p, &w, NULL);
    int D = m->vit.dim, NH = m->vit.heads, R = m->vit.n_registers, B = 2;
    for (int k = 0; k < 3; k++) {
        int H = g_sizes[k][0], W = g_sizes[k][1];
        float *x = image(B, H, W, k);
        ViTActs *a = vit_acts_create(&m->vit, B, H, W, 0);
        vit_forward(&m->vit, &w, a, x, B, NULL);
        int T = vit_acts_tokens(a);
        CHECK(T == 1 + (H / 16) * (W / 16), "%s/%s %dx%d: %d tokens out (CLS and patches)", kind, src, H, W, T);
        char key[160];
        snprintf(key, sizeof key, "%s/%s/%dx%d/tokens", kind, src, H, W);
        cmp(key, vit_output(a), (size_t)B * T * D);
        snprintf(key, sizeof key, "%s/%s/%dx%d/attn", kind, src, H, W);
        cmp(key, vit_last_attention(a), (size_t)B * NH * T * T);
        snprintf(key, sizeof key, "%s/%s/%dx%d/regs", kind, src, H, W);
        CHECK(R == 4 && vit_register_tokens(a) != NULL, "%s: the storage tokens are handed out", key);
        if (vit_register_tokens(a)) cmp(key, vit_register_tokens(a), (size_t)B * R * D);
        float *inter = malloc((size_t)2 * B * T * D * sizeof(float));
        vit_intermediate(&m->vit, &w, a, 2, inter);
        snprintf(key, sizeof key, "%s/%s/%dx%d/inter0", kind, src, H, W);
        cmp(key, inter, (size_t)B * T * D);
        free(inter);
        vit_acts_free(a);
        free(x);
    }
}

static const char *const g_files[4] = {"dinov3_mlp.pth", "dinov3_mlp_hf.safetensors", "dinov3_swiglu.pth",
                                       "dinov3_swiglu_hf.safetensors"};

static void test_forward(void) {
    for (int i = 0; i < 4; i++) {
        const char *file = g_files[i];
        int swiglu = i >= 2, hf = i % 2;
        printf("-- %s\n", file);
        DinoModel m;
        float *p;
        if (load(file, &m, &p)) continue;
        const ViTConfig *c = &m.vit;
        CHECK(c->dim == 64 && c->depth == 2 && c->heads == 4 && c->patch == 16 && c->img_size == 224 &&
                  c->n_registers == 4 && c->layerscale == 1 && c->swiglu == swiglu && c->mlp_hidden == 128 &&
                  c->ln_eps == 1e-5f && c->rope_base == 100.0f && !vit_config_is_plain(c),
              "%s: inferred D=%d depth=%d heads=%d patch=%d img=%d storage=%d layerscale=%d swiglu=%d mlp=%d "
              "eps=%g rope_base=%g", file, c->dim, c->depth, c->heads, c->patch, c->img_size, c->n_registers,
              c->layerscale, c->swiglu, c->mlp_hidden, (double)c->ln_eps, (double)c->rope_base);
        CHECK(param_table_find(&m.table, "backbone.storage_tokens") >= 0 &&
                  param_table_find(&m.table, "backbone.rope_embed.periods") >= 0 &&
                  param_table_find(&m.table, "backbone.pos_embed") < 0,
              "%s: the table holds storage tokens and RoPE periods, no pos_embed", file);
        run_sizes(&m, p, swiglu ? "swiglu" : "mlp", hf ? "hf" : "pth");
        free(p);
        model_free(&m);
    }
}

// mask_k_bias: the official file's key bias is random and its bias_mask
// zeroes it; loaded, the key third of qkv.bias is 0 and the query third is
// not. With RoPE a key bias is rotated per position and does change the
// attention: put back, the outputs leave the fixture.
static void test_key_bias(void) {
    DinoModel m;
    float *p;
    if (load("dinov3_mlp.pth", &m, &p)) return;
    int D = m.vit.dim;
    float *b = p + m.table.p[param_table_find(&m.table, "backbone.blocks.1.attn.qkv.bias")].offset;
    int kzero = 1, qzero = 1;
    for (int j = 0; j < D; j++) kzero &= b[D + j] == 0.0f, qzero &= b[j] == 0.0f;
    CHECK(kzero && !qzero, "bias_mask zeroes the key bias (and only it)");
    for (int j = 0; j < D; j++) b[D + j] = 0.5f * (float)((j * 7) % 5 - 2);
    ViTWeights w;
    model_bind(&m, p, &w, NULL);
    float *x = image(2, 48, 80, 1);
    ViTActs *a = vit_acts_create(&m.vit, 2, 48, 80, 0);
    vit_forward(&m.vit, &w, a, x, 2, NULL);
    const FixtureTensor *t = fixture_get(&g_fx, "mlp/pth/48x80/attn");
    double mx = 0;
    for (size_t i = 0; i < t->numel; i++) mx = fmax(mx, fabs(vit_last_attention(a)[i] - t->data[i]));
    CHECK(mx > 100 * TOL, "an unmasked key bias changes the attention by %.2e (more than the tolerance)", mx);
    vit_acts_free(a);
    free(x);
    free(p);
    model_free(&m);
}

// The RoPE tables follow the image: the same model run with the periods of
// base 10 misses the fixture (the comparison sees RoPE).
static void test_rope_matters(void) {
    DinoModel m;
    float *p;
    if (load("dinov3_swiglu_hf.safetensors", &m, &p)) return;
    ViTWeights w;
    model_bind(&m, p, &w, NULL);
    ViTConfig c10 = m.vit;
    c10.rope_base = 10.0f;
    vit_rope_default_periods(&c10, w.rope_periods);
    float *x = image(2, 80, 32, 2);
    ViTActs *a = vit_acts_create(&m.vit, 2, 80, 32, 0);
    vit_forward(&m.vit, &w, a, x, 2, NULL);
    const FixtureTensor *t = fixture_get(&g_fx, "swiglu/hf/80x32/tokens");
    double mx = 0;
    for (size_t i = 0; i < t->numel; i++) mx = fmax(mx, fabs(vit_output(a)[i] - t->data[i]));
    CHECK(mx > 100 * TOL, "other RoPE periods miss the tokens by %.2e (more than the tolerance)", mx);
    vit_acts_free(a);
    free(x);
    free(p);
    model_free(&m);
}

// DINOv2's linear-eval layout works as for DINOv2: the CLS token then the
// mean of the patch tokens (storage tokens excluded), from the fixture's tokens.
static void test_features(void) {
    DinoModel m;
    float *p;
    if (load("dinov3_swiglu.pth", &m, &p)) return;
    ViTWeights w;
    model_bind(&m, p, &w, NULL);
    int B = 2, S = 64, D = m.vit.dim, T = vit_tokens(&m.vit, S, S);
    float *x = image(B, S, S, 0);
    const float *tok = fixture_get(&g_fx, "swiglu/pth/64x64/tokens")->data;
    ViTActs *a = vit_acts_create(&m.vit, B, S, S, 0);
    FeatureConfig fc;
    feature_config_default(&fc);
    fc.crop = S;
    fc.avgpool = 2;
    int64_t dim = features_dim(&m.vit, &fc);
    float *got = malloc((size_t)B * dim * sizeof(float)), *want = malloc((size_t)B * dim * sizeof(float));
    features_from_images(&m.vit, &w, a, x, B, &fc, got);
    const float *blocks[1] = {tok};
    if (dim == 2 * D) engine_avgpool_concat_ref(want, blocks, 1, B, T, D);
    CHECK(dim == 2 * D, "avgpool_concat: 2·D features (%lld)", (long long)dim);
    if (dim == 2 * D) engine_close("CLS after the final norm, then the mean patch token", got, want,
                                   (size_t)B * dim, TOL);
    bf16_check_model("DINOv3 (RoPE, SwiGLU, storage tokens)", &m.vit, &w, p, m.table.total, x, B, S, S);
    free(got);
    free(want);
    vit_acts_free(a);
    free(x);
    free(p);
    model_free(&m);
}

// Saving records the RoPE base and the heads; the reloaded model has the same
// configuration and weights and gives the same outputs.
static void test_round_trip(const char *dir) {
    const char *files[] = {"dinov3_mlp_hf.safetensors", "dinov3_swiglu.pth"};
    const char *kinds[] = {"mlp", "swiglu"}, *srcs[] = {"hf", "pth"};
    const char *outs[] = {"a.dino", "b.safetensors"};
    for (int i = 0; i < 2; i++) {
        DinoModel m, m2;
        float *p, *p2;
        if (load(files[i], &m, &p)) continue;
        char path[512], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, outs[i]);
        int rc = model_save(path, &m, p, err, sizeof err);
        CHECK(rc == 0, "save %s as %s: %s", files[i], outs[i], rc ? err : "ok");
        if (rc || load_heads(path, 0, &m2, &p2)) {
            free(p);
            model_free(&m);
            continue;
        }
        CHECK(!memcmp(&m.vit, &m2.vit, sizeof m.vit) && m.table.total == m2.table.total &&
                  !memcmp(p, p2, m.table.total * sizeof(float)),
              "%s: %s reloads to the same configuration and weights", files[i], outs[i]);
        run_sizes(&m2, p2, kinds[i], srcs[i]);
        free(p);
        free(p2);
        model_free(&m);
        model_free(&m2);
    }
}

// Writes the model's tensors under its table names (without "backbone."),
// leaving out names containing `skip`, and with `extra` (name, 1-d data of
// D values) added when not NULL.
static int write_variant(const DinoModel *m, const float *p, const char *path, const char *skip,
                         const char *extra) {
    SafeWriteTensor *t = calloc((size_t)m->table.n + 1, sizeof *t);
    int n = 0;
    for (int i = 0; i < m->table.n; i++) {
        const ParamInfo *pi = &m->table.p[i];
        if (skip && strstr(pi->name, skip)) continue;
        t[n++] = (SafeWriteTensor){pi->name + 9, pi->ndim, pi->shape, p + pi->offset};
    }
    static int64_t shape[3] = {1, 0, 0};
    if (extra) {
        shape[1] = 1 + 224 / 16 * 224 / 16;
        shape[2] = m->vit.dim;
        float *z = calloc((size_t)shape[1] * shape[2], sizeof(float));
        t[n++] = (SafeWriteTensor){extra, 3, shape, z};
    }
    char err[1024];
    int rc = safetensors_write_f32(path, t, n, NULL, 0, err, sizeof err);
    if (extra) free((void *)t[n - 1].data);
    free(t);
    CHECK(rc == 0, "write %s: %s", path, rc ? err : "ok");
    return rc;
}

static void expect_refused(const char *path, int heads, const char *want, const char *what) {
    DinoModel m;
    float *p;
    char err[1024] = "";
    ModelLoadOptions opt = {NULL, MODEL_HEAD_NONE, heads};
    int rc = model_load(path, &opt, &m, &p, err, sizeof err);
    CHECK(rc != 0 && strstr(err, want) && strstr(err, path) && p == NULL,
          "%s is refused with a reason naming the file: %s", what, rc ? err : "(loaded)");
    if (rc == 0) {
        free(p);
        model_free(&m);
    }
}

// Copies the first `keep` bytes of fixture `name` to dir/out.
static void truncated_copy(const char *name, const char *dir, const char *out, double frac, char *path,
                           size_t n) {
    FILE *f = fopen(test_fixture_path(name), "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)len);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    snprintf(path, n, "%s/%s", dir, out);
    f = fopen(path, "wb");
    fwrite(buf, 1, (size_t)((double)got * frac), f);
    fclose(f);
    free(buf);
}

// ViT-7B has no qkv bias (qkv_bias=False): a file without them loads with
// zeros. Broken and inconsistent files are refused with a reason.
static void test_files(const char *dir) {
    DinoModel m, m2;
    float *p, *p2;
    if (load("dinov3_swiglu.pth", &m, &p)) return;
    char path[512];
    snprintf(path, sizeof path, "%s/no_qkv_bias.safetensors", dir);
    if (!write_variant(&m, p, path, "attn.qkv.bias", NULL) && !load_heads(path, 0, &m2, &p2)) {
        const float *b = p2 + m2.table.p[param_table_find(&m2.table, "backbone.blocks.0.attn.qkv.bias")].offset;
        int zero = 1;
        for (int j = 0; j < 3 * m.vit.dim; j++) zero &= b[j] == 0.0f;
        CHECK(zero && !memcmp(&m.vit, &m2.vit, sizeof m.vit), "a DINOv3 file without qkv bias (ViT-7B) "
              "loads with zero biases");
        free(p2);
        model_free(&m2);
    }
    snprintf(path, sizeof path, "%s/with_pos.safetensors", dir);
    if (!write_variant(&m, p, path, NULL, "pos_embed"))
        expect_refused(path, 0, "also a pos_embed", "storage tokens next to a learned pos_embed");
    float *per = p + m.table.p[param_table_find(&m.table, "backbone.rope_embed.periods")].offset, keep = per[1];
    per[1] = 0.0f;
    snprintf(path, sizeof path, "%s/zero_period.safetensors", dir);
    if (!write_variant(&m, p, path, NULL, NULL))
        expect_refused(path, 0, "not a positive period", "a zero RoPE period");
    per[1] = keep;
    expect_refused(test_fixture_path("dinov3_mlp.pth"), 2, "rope_embed.periods is for head size 16",
                   "--heads 2 against periods made for 4 heads");
    truncated_copy("dinov3_swiglu_hf.safetensors", dir, "cut.safetensors", 0.6, path, sizeof path);
    expect_refused(path, 4, "", "a truncated safetensors file");
    truncated_copy("dinov3_mlp.pth", dir, "cut.pth", 0.6, path, sizeof path);
    expect_refused(path, 0, "", "a truncated .pth");
    // A flipped byte inside the safetensors header.
    truncated_copy("dinov3_mlp_hf.safetensors", dir, "bad.safetensors", 1.0, path, sizeof path);
    FILE *f = fopen(path, "r+b");
    fseek(f, 12, SEEK_SET);
    fputc('{', f);
    fclose(f);
    expect_refused(path, 4, "", "a safetensors file with a corrupted header");
    free(p);
    model_free(&m);
}

static void test_names(void) {
    ViTConfig c;
    char buf[256];
    vit_config_preset(&c, "vit_small", 16);
    c.layerscale = 1;
    c.n_registers = 4;
    c.rope_base = 100.0f;
    c.ln_eps = 1e-5f;
    vit_config_describe(&c, buf, sizeof buf);
    CHECK(!strncmp(buf, "DINOv3 ViT-S/16, 4 storage tokens, RoPE:", 40), "ViT-S/16: %s", buf);
    c.swiglu = 1;
    vit_config_describe(&c, buf, sizeof buf);
    CHECK(!strncmp(buf, "DINOv3 ViT-S+/16,", 17) && strstr(buf, "SwiGLU"), "ViT-S+/16: %s", buf);
    c.dim = 4096;
    c.heads = 32;
    vit_config_describe(&c, buf, sizeof buf);
    CHECK(!strncmp(buf, "DINOv3 ViT-7B/16,", 17), "ViT-7B/16: %s", buf);
    CHECK(vit_eval_crop(&c) == 224, "DINOv3 is evaluated at 224 by default");
    float per[4];
    c.dim = 64;
    c.heads = 4;
    vit_rope_default_periods(&c, per);
    CHECK(per[0] == 1.0f && fabsf(per[1] - 3.16227766f) < 1e-6f && fabsf(per[3] - 31.6227766f) < 1e-5f,
          "periods base^(2j/(head_dim/2)) for head_dim 16: %g %g %g %g", per[0], per[1], per[2], per[3]);

    const char *want[] = {"storage_tokens", "Hugging Face DINOv3", "mlp.w1.weight", "Hugging Face DINOv3"};
    for (int i = 0; i < 4; i++) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        char err[1024];
        ModelLoadOptions opt = {NULL, MODEL_HEAD_AUTO, i % 2 ? 4 : 0};
        int rc = model_describe(test_fixture_path(g_files[i]), &opt, f, 1, err, sizeof err);
        fclose(f);
        CHECK(rc == 0 && strstr(text, want[i]) && strstr(text, "DINOv3-style ViT/16, 4 storage tokens, RoPE") &&
                  !strstr(text, "not loadable"),
              "dino info %s names it (%s): %.300s", g_files[i], want[i], text);
        free(text);
    }
}

// A 40x36 image whose colour says its class.
static void make_image(uint8_t *rgb, int w, int h, int cls, int k) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = rgb + ((size_t)y * w + x) * 3;
            int t = (x * 7 + y * 13 + k * 29) % 40;
            q[0] = (uint8_t)(cls == 0 ? 200 + t / 2 : 30 + t);
            q[1] = (uint8_t)(80 + t);
            q[2] = (uint8_t)(cls == 1 ? 200 + t / 2 : 30 + t);
        }
}

// info, attention, features (against the in-process pipeline), knn and
// convert on the official-key file.
static void test_cli(const char *dir) {
    static char out[65536];
    char args[4096], path[1024], err[1024];
    const char *pth = test_fixture_path("dinov3_mlp.pth");
    snprintf(args, sizeof args, "info %s", pth);
    int rc = test_run_dino(args, out, sizeof out);
    if (rc < 0) {
        printf("     build/dino not found next to the tests: CLI checks not run\n");
        return;
    }
    CHECK(rc == 0 && strstr(out, "4 storage tokens, RoPE") && strstr(out, "rope_embed.periods"),
          "dino info names the model: %.400s", out);
    snprintf(args, sizeof args, "attention %s --pretrained_weights %s --image_size 64 96 --threshold 0 --out %s/att",
             test_fixture_path("data_photo.jpg"), pth, dir);
    rc = test_run_dino(args, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "storage-token columns dropped"), "dino attention: %.400s", out);
    snprintf(path, sizeof path, "%s/att/attn_maps.npy", dir);
    NpyInfo info;
    float *maps = rc == 0 ? npy_read_f32(path, &info, err, sizeof err) : NULL;
    CHECK(maps && info.ndim == 3 && info.shape[0] == 4 && info.shape[1] == 4 && info.shape[2] == 6,
          "attn_maps.npy is (heads 4, 4, 6): one value per patch, none for the storage tokens");
    free(maps);

    // ImageFolder train/{a,b} x 4, val/{a,b} x 2.
    const int iw = 40, ih = 36;
    uint8_t rgb[40 * 36 * 3];
    const char *split[2] = {"train", "val"}, *cls[2] = {"a", "b"};
    snprintf(path, sizeof path, "%s/ds", dir);
    mkdir(path, 0755);
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/ds/%s", dir, split[s]);
        mkdir(path, 0755);
        for (int c = 0; c < 2; c++) {
            snprintf(path, sizeof path, "%s/ds/%s/%s", dir, split[s], cls[c]);
            mkdir(path, 0755);
            for (int k = 0; k < (s ? 2 : 4); k++) {
                make_image(rgb, iw, ih, c, k + 10 * s);
                snprintf(path, sizeof path, "%s/ds/%s/%s/%d.png", dir, split[s], cls[c], k);
                image_write_png(path, rgb, iw, ih, err, sizeof err);
            }
        }
    }
    snprintf(args, sizeof args, "features --threads 2 --pretrained_weights %s --data_path %s/ds --crop 64 "
             "--avgpool_concat --output_dir %s/feat", pth, dir, dir);
    rc = test_run_dino(args, out, sizeof out);
    CHECK(rc == 0, "dino features --avgpool_concat runs: %.300s", out);
    snprintf(path, sizeof path, "%s/feat/train_features.npy", dir);
    float *tf = rc == 0 ? npy_read_f32(path, &info, err, sizeof err) : NULL;
    CHECK(tf && info.ndim == 2 && info.shape[0] == 8 && info.shape[1] == 128, "train_features.npy is (8, 2·64)");
    DinoModel m;
    float *p;
    if (tf && !load("dinov3_mlp.pth", &m, &p)) {
        // Image 5 = train/b/1.png through the eval transform at crop 64.
        Image im;
        snprintf(path, sizeof path, "%s/ds/train/b/1.png", dir);
        CHECK(image_decode_file(path, 0, &im, err, sizeof err) == 0, "decode train/b/1.png");
        float *x = malloc(3 * 64 * 64 * sizeof(float)), f[128];
        eval_transform(&im, 64, x);
        ViTWeights w;
        model_bind(&m, p, &w, NULL);
        ViTActs *a = vit_acts_create(&m.vit, 1, 64, 64, 0);
        FeatureConfig fc;
        feature_config_default(&fc);
        fc.crop = 64;
        fc.avgpool = 2;
        features_from_images(&m.vit, &w, a, x, 1, &fc, f);
        engine_close("dino features row 5 = the in-process CLS and mean patch token", tf + 5 * 128, f, 128, TOL);
        vit_acts_free(a);
        image_free(&im);
        free(x);
        free(p);
        model_free(&m);
    }
    free(tf);
    snprintf(args, sizeof args, "knn --threads 2 --pretrained_weights %s --data_path %s/ds --crop 64 --nb_knn 1",
             pth, dir);
    rc = test_run_dino(args, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "1-NN classifier result"), "dino knn runs on the DINOv3 file: %.300s", out);
    snprintf(args, sizeof args, "convert %s %s/conv.safetensors", pth, dir);
    rc = test_run_dino(args, out, sizeof out);
    snprintf(path, sizeof path, "%s/conv.safetensors", dir);
    DinoModel a1, a2;
    float *q1, *q2;
    CHECK(rc == 0, "dino convert to safetensors: %.300s", out);
    if (rc == 0 && !load("dinov3_mlp.pth", &a1, &q1)) {
        if (!load_heads(path, 0, &a2, &q2)) {
            CHECK(!memcmp(&a1.vit, &a2.vit, sizeof a1.vit) && a1.table.total == a2.table.total &&
                      !memcmp(q1, q2, a1.table.total * sizeof(float)),
                  "the converted file holds the same model");
            free(q2);
            model_free(&a2);
        }
        free(q1);
        model_free(&a1);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    g_fx = fixture_load("dinov3.dfx");
    const char *dir = test_tmpdir("dinov3");
    test_forward();
    test_key_bias();
    test_rope_matters();
    test_features();
    test_round_trip(dir);
    test_files(dir);
    test_names();
    test_cli(dir);
    fixture_free(&g_fx);
    test_tmpdir_remove();
    return test_finish();
}
