// A DINO network (model.h): the parameter table over backbone and head, and
// the reference's MultiCropWrapper pass: each resolution group of the batch
// goes through the backbone in one pass, the CLS features are concatenated in
// crop-major order and the head runs once over all of them. The training
// pass (multicrop_train_pass) computes the same thing a chunk of images at a
// time, forward, loss and backward, so only one chunk's activations exist.
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model_resnet.h"

void model_build(DinoModel *m, const ViTConfig *vit, const HeadConfig *head, int has_head) {
    memset(m, 0, sizeof *m);
    m->vit = *vit;
    if (head) m->head = *head;
    m->has_head = has_head;
    param_table_init(&m->table);
    vit_param_table(vit, &m->table, "backbone.");
    if (has_head) {
        DINO_ASSERT(head && head->in_dim == vit->dim);
        head_param_table(head, &m->table, "head.");
    }
}

void model_build_resnet(DinoModel *m, const ResNetConfig *rn, const HeadConfig *head, int has_head) {
    memset(m, 0, sizeof *m);
    m->backbone = MODEL_BACKBONE_RESNET;
    m->resnet = *rn;
    if (head) m->head = *head;
    m->has_head = has_head;
    param_table_init(&m->table);
    resnet_param_table(rn, &m->table, "backbone.");
    if (has_head) {
        DINO_ASSERT(head && head->in_dim == resnet_out_dim(rn));
        head_param_table(head, &m->table, "head.");
    }
}

void model_free(DinoModel *m) { param_table_free(&m->table); }

int model_feature_dim(const DinoModel *m) {
    return m->backbone == MODEL_BACKBONE_RESNET ? resnet_out_dim(&m->resnet) : m->vit.dim;
}

void model_describe_backbone(const DinoModel *m, char *buf, size_t n) {
    if (m->backbone == MODEL_BACKBONE_RESNET) resnet_config_describe(&m->resnet, buf, n);
    else vit_config_describe(&m->vit, buf, n);
}

void model_bind_resnet(const DinoModel *m, float *base, ResNetWeights *rw) {
    DINO_ASSERT(m->backbone == MODEL_BACKBONE_RESNET);
    resnet_weights_bind(rw, &m->resnet, base);
}

// Offset of the head's first parameter: the backbone's size.
static size_t head_offset(const DinoModel *m) {
    for (int i = 0; i < m->table.n; i++)
        if (!strncmp(m->table.p[i].name, "head.", 5)) return m->table.p[i].offset;
    return m->table.total;
}

void model_bind(const DinoModel *m, float *base, ViTWeights *vw, HeadWeights *hw) {
    if (vw && m->backbone == MODEL_BACKBONE_RESNET) memset(vw, 0, sizeof *vw);
    else if (vw) vit_weights_bind(vw, &m->vit, base);
    if (hw) {
        memset(hw, 0, sizeof *hw);
        if (m->has_head) head_weights_bind(hw, &m->head, base + head_offset(m));
    }
}

void model_init(const DinoModel *m, float *params, uint64_t seed) {
    ViTWeights vw;
    HeadWeights hw;
    model_bind(m, params, &vw, &hw);
    if (m->backbone == MODEL_BACKBONE_RESNET) {
        ResNetWeights rw;
        model_bind_resnet(m, params, &rw);
        resnet_init(&m->resnet, &rw, seed);
    } else {
        vit_init(&m->vit, &vw, seed);
    }
    if (m->has_head) head_init(&m->head, &hw, seed);
}

MultiCropActs *multicrop_acts_create(const DinoModel *m, const Batch *b, int n_groups, int train) {
    if (m->backbone == MODEL_BACKBONE_RESNET) return resnet_multicrop_acts_create(m, b, n_groups, train, 0);
    DINO_ASSERT(n_groups >= 1 && n_groups <= b->n_groups && n_groups <= BATCH_MAX_GROUPS);
    MultiCropActs *a = callocCheck(1, sizeof *a);
    a->n_groups = n_groups;
    a->B = b->B;
    a->train = train;
    int rows = 0, D = m->vit.dim;
    for (int g = 0; g < n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        a->sizes[g] = cg->size;
        a->n_crops[g] = cg->n_crops;
        int Bg = cg->n_crops * b->B;
        a->vit[g] = vit_acts_create(&m->vit, Bg, cg->size, cg->size, train);
        if (train)
            a->dtokens[g] = callocCheck((size_t)Bg * vit_acts_tokens(a->vit[g]) * D, sizeof(float));
        rows += Bg;
    }
    a->features = callocCheck((size_t)rows * D, sizeof(float));
    if (train) a->dfeatures = callocCheck((size_t)rows * D, sizeof(float));
    if (m->has_head) a->head = head_acts_create(&m->head, rows, train);
    return a;
}

void multicrop_acts_free(MultiCropActs *a) {
    if (!a) return;
    for (int g = 0; g < a->n_groups; g++) {
        vit_acts_free(a->vit[g]);
        resnet_acts_free(a->rn[g]);
        free(a->dtokens[g]);
    }
    head_acts_free(a->head);
    free(a->features);
    free(a->dfeatures);
    free(a->arena);
    free(a->dlogits);
    free(a->drop_chunk);
    free(a);
}

const float *multicrop_forward(const DinoModel *m, const float *params, MultiCropActs *a,
                               const Batch *b, float *const *drop_scale) {
    DINO_ASSERT(b->B == a->B);
    if (m->backbone == MODEL_BACKBONE_RESNET) return resnet_multicrop_forward(m, (float *)params, a, b);
    ViTWeights vw;
    HeadWeights hw;
    model_bind(m, (float *)params, &vw, &hw);
    int D = m->vit.dim, row = 0;
    for (int g = 0; g < a->n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        DINO_ASSERT(cg->size == a->sizes[g] && cg->n_crops == a->n_crops[g]);
        int Bg = cg->n_crops * b->B;
        vit_forward(&m->vit, &vw, a->vit[g], cg->pixels, Bg, drop_scale ? drop_scale[g] : NULL);
        // The CLS token of every crop, in the group's crop-major order.
        const float *tok = vit_output(a->vit[g]);
        int T = vit_acts_tokens(a->vit[g]);
        for (int i = 0; i < Bg; i++)
            memcpy(a->features + (size_t)(row + i) * D, tok + (size_t)i * T * D,
                   (size_t)D * sizeof(float));
        row += Bg;
    }
    if (!m->has_head) return a->features;
    head_forward(&m->head, &hw, a->head, a->features, row);
    return head_output(a->head);
}

void multicrop_backward(const DinoModel *m, const float *params, float *grads, MultiCropActs *a,
                        const float *dlogits) {
    DINO_ASSERT(a->train);
    if (m->backbone == MODEL_BACKBONE_RESNET) {
        resnet_multicrop_backward(m, params, grads, a, dlogits);
        return;
    }
    ViTWeights vw, gw;
    HeadWeights hw, ghw;
    model_bind(m, (float *)params, &vw, &hw);
    model_bind(m, grads, &gw, &ghw);
    int D = m->vit.dim, rows = 0;
    for (int g = 0; g < a->n_groups; g++) rows += a->n_crops[g] * a->B;
    if (m->has_head) head_backward(&m->head, &hw, &ghw, a->head, dlogits, a->dfeatures);
    else memcpy(a->dfeatures, dlogits, (size_t)rows * D * sizeof(float));
    int row = 0;
    for (int g = 0; g < a->n_groups; g++) {
        int Bg = a->n_crops[g] * a->B, T = vit_acts_tokens(a->vit[g]);
        float *dt = a->dtokens[g];
        // Only the CLS rows carry gradient; the patch rows stay zero.
        for (int i = 0; i < Bg; i++)
            memcpy(dt + (size_t)i * T * D, a->dfeatures + (size_t)(row + i) * D,
                   (size_t)D * sizeof(float));
        vit_backward(&m->vit, &vw, &gw, a->vit[g], dt, NULL);
        row += Bg;
    }
}

// ---------------------------------------------------------------- chunked training pass

MultiCropActs *multicrop_train_acts_create(const DinoModel *m, const Batch *b, size_t max_bytes,
                                           int whole_first_group) {
    if (m->backbone == MODEL_BACKBONE_RESNET) return resnet_multicrop_acts_create(m, b, b->n_groups, 1, 1);
    DINO_ASSERT(m->has_head && b->n_groups >= 1 && b->n_groups <= BATCH_MAX_GROUPS);
    MultiCropActs *a = callocCheck(1, sizeof *a);
    a->n_groups = b->n_groups;
    a->B = b->B;
    a->train = 1;
    const ViTConfig *vc = &m->vit;
    int D = vc->dim, rows_max = 0;
    size_t arena = 0, dtok = 0;
    for (int g = 0; g < b->n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        a->sizes[g] = cg->size;
        a->n_crops[g] = cg->n_crops;
        int Bg = cg->n_crops * b->B, s = cg->size;
        // As few chunks as the budget allows, of nearly equal size.
        size_t all = vit_acts_bytes(vc, Bg, s, s, VIT_ACTS_TRAIN);
        int n = (int)((all + max_bytes - 1) / max_bytes);
        if (n < 1) n = 1;
        if (n > Bg) n = Bg;
        int rows = (Bg + n - 1) / n;
        while (rows > 1 && vit_acts_bytes(vc, rows, s, s, VIT_ACTS_TRAIN) > max_bytes) rows--;
        if (g == 0 && whole_first_group) rows = Bg;
        a->chunk_rows[g] = rows;
        size_t need = vit_acts_bytes(vc, rows, s, s, VIT_ACTS_TRAIN);
        if (need > arena) arena = need;
        size_t nt = (size_t)rows * vit_tokens(vc, s, s) * D;
        if (nt > dtok) dtok = nt;
        if (rows > rows_max) rows_max = rows;
    }
    a->arena = alignedAllocCheck(arena);
    for (int g = 0; g < b->n_groups; g++)
        a->vit[g] = vit_acts_create_in(vc, a->chunk_rows[g], a->sizes[g], a->sizes[g], VIT_ACTS_TRAIN, a->arena);
    // One gradient buffer for every group: only the CLS rows are ever non-zero.
    a->dtokens[0] = callocCheck(dtok, sizeof(float));
    int rows_all = 0;
    for (int g = 0; g < b->n_groups; g++) rows_all += b->groups[g].n_crops * b->B;
    // A head with BatchNorm runs once over every crop (its batch statistics).
    int head_rows = m->head.use_bn ? rows_all : rows_max;
    a->features = callocCheck((size_t)head_rows * D, sizeof(float));
    a->dfeatures = callocCheck((size_t)head_rows * D, sizeof(float));
    // The head's weight gradients are summed over up to 32 MiB of logit
    // gradients (every row of a ViT-S batch of 8, 80 x 65536): one GEMM per
    // layer for all chunks.
    int sum_rows = (int)(((size_t)32 << 20) / ((size_t)m->head.out_dim * sizeof(float)));
    if (sum_rows > rows_all) sum_rows = rows_all;
    a->head = head_acts_create_rows(&m->head, head_rows, 1, sum_rows);
    a->dlogits = alignedAllocCheck((size_t)head_rows * m->head.out_dim * sizeof(float));
    a->drop_chunk = mallocCheck((size_t)2 * vc->depth * rows_max * sizeof(float));
    return a;
}

// The drop-path factors of rows r0..r0+n of a group of Bg rows (NULL: none).
static const float *chunk_drop(const ViTConfig *vc, MultiCropActs *a, const float *drop, int Bg, int r0, int n) {
    if (!drop) return NULL;
    for (int k = 0; k < 2 * vc->depth; k++)
        memcpy(a->drop_chunk + (size_t)k * n, drop + (size_t)k * Bg + r0, (size_t)n * sizeof(float));
    return a->drop_chunk;
}

// The CLS rows of the last vit_forward (n images) into feat (n, D).
static void copy_cls(float *feat, const struct ViTActs *va, int n, int D) {
    const float *tok = vit_output(va);
    int T = vit_acts_tokens(va);
    for (int i = 0; i < n; i++) memcpy(feat + (size_t)i * D, tok + (size_t)i * T * D, (size_t)D * sizeof(float));
}

// The training pass with BatchNorm in the head, whose statistics are over
// every crop: the backbone runs forward chunk by chunk keeping only the CLS
// features, the head runs forward and backward once over all of them, then
// each chunk runs forward again (the one chunk whose activations are still
// in the arena excepted) and backward from its features' gradient. The
// recomputed forward is the same function of the same inputs.
static void train_pass_bn_head(const DinoModel *m, const ViTWeights *vw, ViTWeights *gw, const HeadWeights *hw,
                               HeadWeights *ghw, MultiCropActs *a, const Batch *b, float *const *drop_scale,
                               MultiCropLossFn loss_fn, MultiCropFeatureFn feature_fn, void *ctx) {
    const ViTConfig *vc = &m->vit;
    int D = vc->dim, rows = 0, last_g = -1, last_r0 = -1;
    for (int g = 0; g < a->n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        DINO_ASSERT(cg->size == a->sizes[g] && cg->n_crops == a->n_crops[g]);
        int Bg = cg->n_crops * b->B;
        size_t img = (size_t)vc->in_chans * cg->size * cg->size;
        for (int r0 = 0; r0 < Bg; r0 += a->chunk_rows[g]) {
            int n = Bg - r0 < a->chunk_rows[g] ? Bg - r0 : a->chunk_rows[g];
            const float *drop = chunk_drop(vc, a, drop_scale ? drop_scale[g] : NULL, Bg, r0, n);
            vit_forward(vc, vw, a->vit[g], cg->pixels + (size_t)r0 * img, n, drop);
            copy_cls(a->features + (size_t)(rows + r0) * D, a->vit[g], n, D);
            last_g = g, last_r0 = r0;
        }
        rows += Bg;
    }
    head_forward(&m->head, hw, a->head, a->features, rows);
    const float *logits = head_output(a->head);
    size_t O = (size_t)m->head.out_dim;
    for (int g = 0, row0 = 0; g < a->n_groups; row0 += a->n_crops[g] * b->B, g++)
        for (int r0 = 0, Bg = a->n_crops[g] * b->B; r0 < Bg; r0 += a->chunk_rows[g]) {
            int n = Bg - r0 < a->chunk_rows[g] ? Bg - r0 : a->chunk_rows[g];
            loss_fn(ctx, a->dlogits + (row0 + r0) * O, logits + (row0 + r0) * O, row0 + r0, n);
        }
    head_backward(&m->head, hw, ghw, a->head, a->dlogits, a->dfeatures);
    // Backward from the last chunk run, whose activations need no recomputing.
    float *dt = a->dtokens[0];
    for (int g = a->n_groups - 1; g >= 0; g--) {
        const CropGroup *cg = &b->groups[g];
        int Bg = cg->n_crops * b->B, T = vit_acts_tokens(a->vit[g]);
        size_t img = (size_t)vc->in_chans * cg->size * cg->size;
        rows -= Bg;
        for (int r0 = (Bg - 1) / a->chunk_rows[g] * a->chunk_rows[g]; r0 >= 0; r0 -= a->chunk_rows[g]) {
            int n = Bg - r0 < a->chunk_rows[g] ? Bg - r0 : a->chunk_rows[g];
            const float *drop = chunk_drop(vc, a, drop_scale ? drop_scale[g] : NULL, Bg, r0, n);
            if (g != last_g || r0 != last_r0) vit_forward(vc, vw, a->vit[g], cg->pixels + (size_t)r0 * img, n, drop);
            float *df = a->dfeatures + (size_t)(rows + r0) * D;
            if (feature_fn) feature_fn(ctx, df, a->features + (size_t)(rows + r0) * D, rows + r0, n);
            for (int i = 0; i < n; i++) memcpy(dt + (size_t)i * T * D, df + (size_t)i * D, (size_t)D * sizeof(float));
            vit_backward(vc, vw, gw, a->vit[g], dt, NULL);
            for (int i = 0; i < n; i++) memset(dt + (size_t)i * T * D, 0, (size_t)D * sizeof(float));
        }
    }
}

void multicrop_train_pass(const DinoModel *m, const float *params, float *grads, MultiCropActs *a,
                          const Batch *b, float *const *drop_scale, MultiCropLossFn loss_fn,
                          MultiCropFeatureFn feature_fn, void *ctx) {
    if (m->backbone == MODEL_BACKBONE_RESNET) {
        resnet_multicrop_train_pass(m, (float *)params, grads, a, b, loss_fn, feature_fn, ctx);
        return;
    }
    DINO_ASSERT(a->arena && b->B == a->B && b->n_groups == a->n_groups);
    ViTWeights vw, gw;
    HeadWeights hw, ghw;
    model_bind(m, (float *)params, &vw, &hw);
    model_bind(m, grads, &gw, &ghw);
    if (m->head.use_bn) {
        train_pass_bn_head(m, &vw, &gw, &hw, &ghw, a, b, drop_scale, loss_fn, feature_fn, ctx);
        return;
    }
    const ViTConfig *vc = &m->vit;
    int D = vc->dim, first = 1, row0 = 0;
    float *dt = a->dtokens[0];
    head_prepare(&m->head, &hw, a->head);
    for (int g = 0; g < a->n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        DINO_ASSERT(cg->size == a->sizes[g] && cg->n_crops == a->n_crops[g]);
        int Bg = cg->n_crops * b->B, T = vit_acts_tokens(a->vit[g]);
        size_t img = (size_t)vc->in_chans * cg->size * cg->size;
        for (int r0 = 0; r0 < Bg; r0 += a->chunk_rows[g]) {
            int n = Bg - r0 < a->chunk_rows[g] ? Bg - r0 : a->chunk_rows[g];
            const float *drop = chunk_drop(vc, a, drop_scale ? drop_scale[g] : NULL, Bg, r0, n);
            vit_forward(vc, &vw, a->vit[g], cg->pixels + (size_t)r0 * img, n, drop);
            copy_cls(a->features, a->vit[g], n, D);
            head_forward_rows(&m->head, &hw, a->head, a->features, n);
            loss_fn(ctx, a->dlogits, head_output(a->head), row0 + r0, n);
            head_backward_rows(&m->head, &hw, &ghw, a->head, a->dlogits, a->dfeatures, first);
            first = 0;
            if (feature_fn) feature_fn(ctx, a->dfeatures, a->features, row0 + r0, n);
            for (int i = 0; i < n; i++)
                memcpy(dt + (size_t)i * T * D, a->dfeatures + (size_t)i * D, (size_t)D * sizeof(float));
            vit_backward(vc, &vw, &gw, a->vit[g], dt, NULL);
            for (int i = 0; i < n; i++) memset(dt + (size_t)i * T * D, 0, (size_t)D * sizeof(float));
        }
        row0 += Bg;
    }
    head_backward_finish(&m->head, &hw, &ghw, a->head);
}
