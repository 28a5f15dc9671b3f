// MultiCropWrapper over a ResNet backbone (model_resnet.h): each resolution
// group goes through the backbone as one batch, in training mode (batch
// statistics, synchronised over ranks; running statistics updated in the
// parameter buffer), and the head runs over the pooled features in
// crop-major order, as the reference's MultiCropWrapper does.
#include "model_resnet.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

MultiCropActs *resnet_multicrop_acts_create(const DinoModel *m, const Batch *b, int n_groups,
                                            int train, int rows_mode) {
    DINO_ASSERT(n_groups >= 1 && n_groups <= b->n_groups && n_groups <= BATCH_MAX_GROUPS);
    MultiCropActs *a = callocCheck(1, sizeof *a);
    a->n_groups = n_groups;
    a->B = b->B;
    a->train = train;
    int rows = 0, rows_max = 0, D = model_feature_dim(m);
    for (int g = 0; g < n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        a->sizes[g] = cg->size;
        a->n_crops[g] = cg->n_crops;
        int Bg = cg->n_crops * b->B;
        a->chunk_rows[g] = Bg;
        a->rn[g] = resnet_acts_create(&m->resnet, Bg, cg->size, cg->size, train);
        // SyncBatchNorm, as the reference converts every BatchNorm when
        // distributed (a world of one returns from the all-reduce at once).
        resnet_acts_set_sync(a->rn[g], 1);
        rows += Bg;
        if (Bg > rows_max) rows_max = Bg;
    }
    // A head with BatchNorm runs over every crop at once (its batch statistics).
    int bn_head = m->has_head && m->head.use_bn;
    int n = rows_mode && !bn_head ? rows_max : rows;
    a->features = callocCheck((size_t)n * D, sizeof(float));
    if (train) a->dfeatures = callocCheck((size_t)n * D, sizeof(float));
    if (m->has_head) {
        if (rows_mode && bn_head) {
            a->head = head_acts_create(&m->head, rows, 1);
            a->dlogits = alignedAllocCheck((size_t)rows * m->head.out_dim * sizeof(float));
        } else if (rows_mode) {
            // Weight gradients summed over up to 32 MiB of logit gradients, as for a ViT.
            int sum_rows = (int)(((size_t)32 << 20) / ((size_t)m->head.out_dim * sizeof(float)));
            if (sum_rows > rows) sum_rows = rows;
            if (sum_rows < rows_max) sum_rows = rows_max;
            a->head = head_acts_create_rows(&m->head, rows_max, 1, sum_rows);
            a->dlogits = alignedAllocCheck((size_t)rows_max * m->head.out_dim * sizeof(float));
        } else {
            a->head = head_acts_create(&m->head, rows, train);
        }
    }
    return a;
}

const float *resnet_multicrop_forward(const DinoModel *m, float *params, MultiCropActs *a,
                                      const Batch *b) {
    ResNetWeights rw;
    HeadWeights hw;
    model_bind_resnet(m, params, &rw);
    model_bind(m, params, NULL, &hw);
    int D = model_feature_dim(m), row = 0;
    for (int g = 0; g < a->n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        DINO_ASSERT(cg->size == a->sizes[g] && cg->n_crops == a->n_crops[g]);
        int Bg = cg->n_crops * b->B;
        resnet_forward(&m->resnet, &rw, a->rn[g], cg->pixels, Bg, 1);
        memcpy(a->features + (size_t)row * D, resnet_output(a->rn[g]), (size_t)Bg * D * sizeof(float));
        row += Bg;
    }
    if (!m->has_head) return a->features;
    head_forward(&m->head, &hw, a->head, a->features, row);
    return head_output(a->head);
}

void resnet_multicrop_backward(const DinoModel *m, const float *params, float *grads,
                               MultiCropActs *a, const float *dlogits) {
    ResNetWeights rw, gw;
    HeadWeights hw, ghw;
    model_bind_resnet(m, (float *)params, &rw);
    model_bind_resnet(m, grads, &gw);
    model_bind(m, (float *)params, NULL, &hw);
    model_bind(m, grads, NULL, &ghw);
    int D = model_feature_dim(m), rows = 0;
    for (int g = 0; g < a->n_groups; g++) rows += a->n_crops[g] * a->B;
    if (m->has_head) head_backward(&m->head, &hw, &ghw, a->head, dlogits, a->dfeatures);
    else memcpy(a->dfeatures, dlogits, (size_t)rows * D * sizeof(float));
    int row = 0;
    for (int g = 0; g < a->n_groups; g++) {
        resnet_backward(&m->resnet, &rw, &gw, a->rn[g], a->dfeatures + (size_t)row * D);
        row += a->n_crops[g] * a->B;
    }
}

// The training pass with BatchNorm in the head: every group forward (each
// keeps its activations), the head forward and backward once over all
// crops, then every group backward.
static void train_pass_bn_head(const DinoModel *m, float *params, float *grads, MultiCropActs *a,
                               const Batch *b, MultiCropLossFn loss_fn, MultiCropFeatureFn feature_fn,
                               void *ctx) {
    ResNetWeights rw, gw;
    model_bind_resnet(m, grads, &gw);
    model_bind_resnet(m, params, &rw);
    const float *logits = resnet_multicrop_forward(m, params, a, b);
    size_t O = (size_t)m->head.out_dim;
    int D = model_feature_dim(m), row0 = 0;
    for (int g = 0; g < a->n_groups; row0 += a->n_crops[g] * b->B, g++)
        loss_fn(ctx, a->dlogits + row0 * O, logits + row0 * O, row0, a->n_crops[g] * b->B);
    HeadWeights hw, ghw;
    model_bind(m, params, NULL, &hw);
    model_bind(m, grads, NULL, &ghw);
    head_backward(&m->head, &hw, &ghw, a->head, a->dlogits, a->dfeatures);
    row0 = 0;
    for (int g = 0; g < a->n_groups; g++) {
        int n = a->n_crops[g] * b->B;
        float *df = a->dfeatures + (size_t)row0 * D;
        if (feature_fn) feature_fn(ctx, df, a->features + (size_t)row0 * D, row0, n);
        resnet_backward(&m->resnet, &rw, &gw, a->rn[g], df);
        row0 += n;
    }
}

void resnet_multicrop_train_pass(const DinoModel *m, float *params, float *grads, MultiCropActs *a,
                                 const Batch *b, MultiCropLossFn loss_fn,
                                 MultiCropFeatureFn feature_fn, void *ctx) {
    DINO_ASSERT(m->has_head && a->train && b->B == a->B && b->n_groups == a->n_groups);
    if (m->head.use_bn) {
        train_pass_bn_head(m, params, grads, a, b, loss_fn, feature_fn, ctx);
        return;
    }
    ResNetWeights rw, gw;
    HeadWeights hw, ghw;
    model_bind_resnet(m, params, &rw);
    model_bind_resnet(m, grads, &gw);
    model_bind(m, params, NULL, &hw);
    model_bind(m, grads, NULL, &ghw);
    int D = model_feature_dim(m), row0 = 0, first = 1;
    head_prepare(&m->head, &hw, a->head);
    for (int g = 0; g < a->n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        DINO_ASSERT(cg->size == a->sizes[g] && cg->n_crops == a->n_crops[g]);
        int n = cg->n_crops * b->B;
        resnet_forward(&m->resnet, &rw, a->rn[g], cg->pixels, n, 1);
        memcpy(a->features, resnet_output(a->rn[g]), (size_t)n * D * sizeof(float));
        head_forward_rows(&m->head, &hw, a->head, a->features, n);
        loss_fn(ctx, a->dlogits, head_output(a->head), row0, n);
        head_backward_rows(&m->head, &hw, &ghw, a->head, a->dlogits, a->dfeatures, first);
        first = 0;
        if (feature_fn) feature_fn(ctx, a->dfeatures, a->features, row0, n);
        resnet_backward(&m->resnet, &rw, &gw, a->rn[g], a->dfeatures);
        row0 += n;
    }
    head_backward_finish(&m->head, &hw, &ghw, a->head);
}
