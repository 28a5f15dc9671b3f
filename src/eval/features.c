// Feature extraction (see features.h). The loader (LOADER_EVAL, dataset
// order, no dropping) prepares the next batches on its threads while this
// thread runs the forward pass; rows go to out[batch index].
#include "eval/features.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cuda/features_cuda.h"
#include "device.h"
#include "data/loader.h"

// An inference pass keeps the outputs of the last 4 blocks (VIT_KEEP_LAST in vit.c).
#define FEATURES_MAX_BLOCKS 4

void feature_config_default(FeatureConfig *c) {
    memset(c, 0, sizeof *c);
    c->crop = 224;
    c->batch_size = 128;
    c->n_last_blocks = 1;
    c->avgpool = 0;
    c->tokens = FEATURE_TOKENS_NONE;
    c->threads = 2;
}

// Blocks whose outputs a pass keeps: token rows come from the last block only.
static int blocks_read(const FeatureConfig *fc) {
    return fc->tokens != FEATURE_TOKENS_NONE ? 1 : fc->n_last_blocks;
}

int64_t features_dim(const ViTConfig *cfg, const FeatureConfig *fc) {
    int64_t D = cfg->dim;
    if (fc->tokens == FEATURE_TOKENS_PATCH) {
        int64_t g = fc->crop / cfg->patch;
        return g * g * D;
    }
    if (fc->tokens == FEATURE_TOKENS_REGISTER) return (int64_t)cfg->n_registers * D;
    return D * (fc->n_last_blocks + (fc->avgpool ? 1 : 0));
}

int features_check(const ViTConfig *cfg, const FeatureConfig *fc, int batch, char *err,
                   size_t errlen) {
    if (fc->crop < cfg->patch)
        return dino_errf(err, errlen, "crop %d is smaller than the patch size %d", fc->crop, cfg->patch);
    if (fc->n_last_blocks < 1 || fc->n_last_blocks > cfg->depth)
        return dino_errf(err, errlen, "n_last_blocks must lie in [1, %d], got %d", cfg->depth,
                    fc->n_last_blocks);
    if (fc->n_last_blocks > FEATURES_MAX_BLOCKS)
        return dino_errf(err, errlen, "n_last_blocks can be at most %d", FEATURES_MAX_BLOCKS);
    if (batch < 1) return dino_errf(err, errlen, "batch_size must be >= 1");
    if (fc->tokens == FEATURE_TOKENS_REGISTER && cfg->n_registers == 0)
        return dino_errf(err, errlen, "the model has no register or storage tokens");
    if (fc->tokens == FEATURE_TOKENS_REGISTER && fc->device == DEVICE_CUDA)
        return dino_errf(err, errlen, "register tokens are extracted on the CPU only");
    // The attention probabilities (batch, heads, T, T) first, in double: the
    // exact count below multiplies sizes that could overflow for a huge crop.
    double grid = (double)(fc->crop / cfg->patch), tokens = grid * grid + 1;
    double bytes = 4.0 * batch * cfg->heads * tokens * tokens;
    if (bytes <= FEATURES_MAX_PASS_BYTES) {
        int nblk = blocks_read(fc);
        bytes = (double)vit_acts_bytes(cfg, batch, fc->crop, fc->crop, VIT_ACTS_INFER) +
                4.0 * batch * (double)features_dim(cfg, fc) +
                (nblk > 1 ? 4.0 * nblk * batch * tokens * cfg->dim : 0);
    }
    if (bytes > FEATURES_MAX_PASS_BYTES)
        return dino_errf(err, errlen,
                    "crop %d at a batch of %d images needs %.3g GiB for one forward pass (%.0f "
                    "tokens per image), above the limit of %.0f GiB; use a smaller crop or batch",
                    fc->crop, batch, bytes / (1 << 30), tokens, FEATURES_MAX_PASS_BYTES / (1 << 30));
    return 0;
}

// Rows from final-norm tokens: last (B, T, D) of the last block, inter
// (n, B, T, D) of the last n blocks (for n = 1 the same as last).
static void rows_from_tokens(const ViTConfig *cfg, const FeatureConfig *fc, const float *last,
                             const float *inter, int B, int T, float *out) {
    int D = cfg->dim;
    if (fc->tokens == FEATURE_TOKENS_PATCH) {
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * (T - 1) * D, last + ((size_t)b * T + 1) * D,
                   (size_t)(T - 1) * D * sizeof(float));
        return;
    }
    int n = fc->n_last_blocks;
    int64_t dim = features_dim(cfg, fc);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * dim;
        if (n == 1 && fc->avgpool != 2) {
            const float *cls = last + (size_t)b * T * D;
            if (!fc->avgpool) {
                memcpy(o, cls, (size_t)D * sizeof(float));
                continue;
            }
            // torch.cat((cls.unsqueeze(-1), mean.unsqueeze(-1)), -1).reshape(B, -1)
            for (int j = 0; j < D; j++) {
                double s = 0;
                for (int t = 1; t < T; t++) s += last[((size_t)b * T + t) * D + j];
                o[2 * j] = cls[j];
                o[2 * j + 1] = (float)(s / (T - 1));
            }
            continue;
        }
        for (int k = 0; k < n; k++)
            memcpy(o + (size_t)k * D, inter + ((size_t)k * B + b) * T * D, (size_t)D * sizeof(float));
        if (fc->avgpool)
            for (int j = 0; j < D; j++) {
                double s = 0;
                for (int t = 1; t < T; t++) s += last[((size_t)b * T + t) * D + j];
                o[(size_t)n * D + j] = (float)(s / (T - 1));
            }
    }
}

void features_from_images(const ViTConfig *cfg, const ViTWeights *w, struct ViTActs *acts,
                          const float *images, int B, const FeatureConfig *fc, float *out) {
    vit_forward(cfg, w, acts, images, B, NULL);
    if (fc->tokens == FEATURE_TOKENS_REGISTER) {
        memcpy(out, vit_register_tokens(acts), (size_t)B * cfg->n_registers * cfg->dim * sizeof(float));
        return;
    }
    int D = cfg->dim, T = vit_acts_tokens(acts), n = blocks_read(fc);
    if (n == 1) {
        rows_from_tokens(cfg, fc, vit_output(acts), vit_output(acts), B, T, out);
        return;
    }
    float *inter = mallocCheck((size_t)n * B * T * D * sizeof(float));
    vit_intermediate(cfg, w, acts, n, inter);
    rows_from_tokens(cfg, fc, inter + (size_t)(n - 1) * B * T * D, inter, B, T, out);
    free(inter);
}

int features_extract(const ViTConfig *cfg, const ViTWeights *w, const Dataset *ds,
                     const FeatureConfig *fc, float *out, int64_t *labels, char *err,
                     size_t errlen) {
    return features_extract_skipping(cfg, w, ds, fc, out, labels, NULL, err, errlen);
}

// One batch of transformed images (B, 3, crop, crop) to rows (B, dim).
typedef void (*FeatureRowsFn)(void *ctx, const float *pixels, int B, float *rows);

// The loader loop shared by every backbone: rows of batch B go to out[index].
static int extract_loop(FeatureRowsFn fn, void *ctx, int64_t dim, int B, const Dataset *ds,
                        const FeatureConfig *fc, float *out, int64_t *labels, uint8_t *kept,
                        char *err, size_t errlen) {
    int64_t N = dataset_size(ds);
    LoaderConfig lc;
    loader_config_default(&lc);
    lc.mode = LOADER_EVAL;
    lc.eval_crop = fc->crop;
    lc.batch_size = B;
    lc.shuffle = 0;
    lc.drop_last = 0;
    lc.threads = fc->threads;
    lc.prefetch = 2;
    Loader *ld = loader_create(ds, &lc, err, errlen);
    if (!ld) return -1;
    int64_t *seen = callocCheck((size_t)N, sizeof(int64_t));
    float *rows = mallocCheck((size_t)B * dim * sizeof(float));
    double t0 = dino_now(), last_report = t0;
    int64_t done = 0;
    int rc = 0;
    loader_start(ld, 0, 0);
    const Batch *b;
    while ((b = loader_next(ld)) != NULL) {
        if (!kept && loader_bad_count(ld) > 0) {
            rc = dino_errf(err, errlen,
                      "%lld unreadable image(s) in the dataset (named above); fix or remove them",
                      (long long)loader_bad_count(ld));
            break;
        }
        fn(ctx, b->groups[0].pixels, b->B, rows);
        for (int i = 0; i < b->B; i++) {
            int64_t idx = b->indices[i];
            DINO_ASSERT(idx >= 0 && idx < N);
            memcpy(out + (size_t)idx * dim, rows + (size_t)i * dim, (size_t)dim * sizeof(float));
            labels[idx] = b->labels[i];
            seen[idx] = 1;
        }
        done += b->B;
        double now = dino_now();
        if (fc->verbose && (now - last_report > 10 || done == N)) {
            dino_info("features: %lld/%lld images, %.1f img/s", (long long)done, (long long)N,
                      done / (now - t0));
            last_report = now;
        }
    }
    if (rc == 0 && !kept && loader_bad_count(ld) > 0)
        rc = dino_errf(err, errlen,
                  "%lld unreadable image(s) in the dataset (named above); fix or remove them",
                  (long long)loader_bad_count(ld));
    if (rc == 0 && loader_error(ld)) rc = dino_errf(err, errlen, "%s", loader_error(ld));
    if (rc == 0 && kept) {
        // The loader stands the next readable image in for an unreadable one,
        // so a row never produced under its own index is an unreadable image.
        for (int64_t i = 0; i < N; i++) {
            kept[i] = seen[i] != 0;
            if (!seen[i]) {
                memset(out + (size_t)i * dim, 0, (size_t)dim * sizeof(float));
                labels[i] = 0;
            }
        }
    } else if (rc == 0)
        for (int64_t i = 0; i < N; i++)
            if (!seen[i]) {
                rc = dino_errf(err, errlen, "sample %lld of the dataset was never produced", (long long)i);
                break;
            }
    free(seen);
    free(rows);
    loader_free(ld);
    return rc;
}

typedef struct {
    const ViTConfig *cfg;
    const ViTWeights *w;
    const FeatureConfig *fc;
    struct ViTActs *acts;
    CudaFeatures *gpu;
    float *gtok;
} VitRows;

static void vit_rows(void *ctx, const float *pixels, int B, float *rows) {
    VitRows *v = ctx;
    const FeatureConfig *fc = v->fc;
    if (v->gpu) {
        // --device cuda: the forward on the GPU, the rows from its tokens here.
        int T = vit_tokens(v->cfg, fc->crop, fc->crop), nblk = blocks_read(fc);
        size_t per = (size_t)B * T * v->cfg->dim;
        cuda_features_tokens(v->gpu, pixels, B, v->gtok);
        rows_from_tokens(v->cfg, fc, v->gtok + (size_t)(nblk - 1) * per, v->gtok, B, T, rows);
    } else {
        features_from_images(v->cfg, v->w, v->acts, pixels, B, fc, rows);
    }
}

// A batch larger than the dataset needs no more room than the dataset.
static int batch_for(const Dataset *ds, const FeatureConfig *fc, char *err, size_t errlen) {
    if (fc->batch_size < 1) return dino_errf(err, errlen, "batch_size must be >= 1");
    int64_t N = dataset_size(ds);
    if (N < 1) return dino_errf(err, errlen, "the dataset is empty");
    return N < fc->batch_size ? (int)N : fc->batch_size;
}

int features_extract_skipping(const ViTConfig *cfg, const ViTWeights *w, const Dataset *ds,
                              const FeatureConfig *fc, float *out, int64_t *labels,
                              uint8_t *kept, char *err, size_t errlen) {
    int B = batch_for(ds, fc, err, errlen);
    if (B < 0 || features_check(cfg, fc, B, err, errlen)) return -1;
    VitRows v = {cfg, w, fc, NULL, NULL, NULL};
    const int nblk = blocks_read(fc);
    if (fc->device == DEVICE_CUDA) {
        v.gpu = cuda_features_create(cfg, w, B, fc->crop, nblk, fc->cuda_gemm, err, errlen);
        if (!v.gpu) return -1;
        size_t T = (size_t)vit_tokens(cfg, fc->crop, fc->crop);
        v.gtok = mallocCheck((size_t)nblk * B * T * cfg->dim * sizeof(float));
    } else {
        v.acts = vit_acts_create(cfg, B, fc->crop, fc->crop, 0);
    }
    int rc = extract_loop(vit_rows, &v, features_dim(cfg, fc), B, ds, fc, out, labels, kept, err, errlen);
    free(v.gtok);
    cuda_features_free(v.gpu);
    vit_acts_free(v.acts);
    return rc;
}

// ---------------------------------------------------------------- ResNet

int features_check_resnet(const ResNetConfig *cfg, const FeatureConfig *fc, int batch, char *err,
                          size_t errlen) {
    if (fc->n_last_blocks != 1 || fc->avgpool || fc->tokens != FEATURE_TOKENS_NONE)
        return dino_errf(err, errlen, "a ResNet gives its %d-d pooled features only (no n_last_blocks, "
                         "avgpool_patchtokens or patch tokens)", resnet_out_dim(cfg));
    if (fc->device != DEVICE_CPU) return dino_errf(err, errlen, "ResNet features run on the CPU only");
    if (batch < 1) return dino_errf(err, errlen, "batch_size must be >= 1");
    int min = cfg->stem_pool ? 2 * cfg->stem_stride : cfg->stem_stride;
    if (fc->crop < min) return dino_errf(err, errlen, "crop %d is too small for a ResNet", fc->crop);
    double bytes = (double)batch * 3.0 * fc->crop * fc->crop * 4 * 40;  // a bound before the exact count
    if (bytes <= FEATURES_MAX_PASS_BYTES)
        bytes = (double)resnet_acts_bytes(cfg, batch, fc->crop, fc->crop, 0);
    if (bytes > FEATURES_MAX_PASS_BYTES)
        return dino_errf(err, errlen, "crop %d at a batch of %d images needs %.3g GiB for one forward "
                         "pass, above the limit of %.0f GiB; use a smaller crop or batch", fc->crop,
                         batch, bytes / (1 << 30), FEATURES_MAX_PASS_BYTES / (1 << 30));
    return 0;
}

typedef struct {
    const ResNetConfig *cfg;
    ResNetWeights *w;
    ResNetActs *acts;
} ResNetRows;

static void resnet_rows(void *ctx, const float *pixels, int B, float *rows) {
    ResNetRows *r = ctx;
    resnet_forward(r->cfg, r->w, r->acts, pixels, B, 0);
    memcpy(rows, resnet_output(r->acts), (size_t)B * resnet_out_dim(r->cfg) * sizeof(float));
}

int features_extract_resnet(const ResNetConfig *cfg, ResNetWeights *w, const Dataset *ds,
                            const FeatureConfig *fc, float *out, int64_t *labels, uint8_t *kept,
                            char *err, size_t errlen) {
    int B = batch_for(ds, fc, err, errlen);
    if (B < 0 || features_check_resnet(cfg, fc, B, err, errlen)) return -1;
    ResNetRows r = {cfg, w, resnet_acts_create(cfg, B, fc->crop, fc->crop, 0)};
    int rc = extract_loop(resnet_rows, &r, resnet_out_dim(cfg), B, ds, fc, out, labels, kept, err, errlen);
    resnet_acts_free(r.acts);
    return rc;
}
