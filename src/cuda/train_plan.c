// The CUDA engine's host-side decisions (see train_plan.h): device selection,
// the arena layout of one training step, the multi-crop plan and the staging
// ring's state machine. Plain C with no CUDA headers: compiled into every
// build and tested by tests/test_train_plan.c on machines without a GPU.
#include "cuda/train_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// ---------------------------------------------------------------- device of a rank

int device_for_rank(int rank, int ndevices) {
    DINO_ASSERT(ndevices >= 1 && rank >= 0);
    static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                        "SLURM_LOCALID", "LOCAL_RANK"};
    int r = rank;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (v && *v >= '0' && *v <= '9') {
            r = atoi(v);
            break;
        }
    }
    return r % ndevices;
}

// ---------------------------------------------------------------- arena


// ---------------------------------------------------------------- ViT activations

void vit_cuda_layout(VitCudaLayout *l, Arena *a, const ViTConfig *cfg, int B, int H, int W,
                     int train, int fused_attention) {
    DINO_ASSERT(B >= 1 && H >= cfg->patch && W >= cfg->patch);
    memset(l, 0, sizeof *l);
    l->B = B;
    l->H = H;
    l->W = W;
    l->Np = (H / cfg->patch) * (W / cfg->patch);
    l->T = l->Np + 1;
    l->D = cfg->dim;
    l->NH = cfg->heads;
    l->H4 = cfg->mlp_hidden;
    l->CPP = cfg->in_chans * cfg->patch * cfg->patch;
    l->depth = cfg->depth;
    l->train = train;
    l->fused_attention = fused_attention;
    const size_t BT = (size_t)B * l->T, btd = BT * (size_t)l->D;
    l->btd = btd;
    l->att_block = fused_attention ? BT * (size_t)l->NH : BT * (size_t)l->NH * (size_t)l->T;
    // Training keeps one set per block; inference reuses one set and keeps
    // the residual stream in two slots (no get_intermediate_layers here).
    const size_t L = train ? (size_t)cfg->depth : 1;
    const int keep = cfg->depth < VIT_CUDA_KEEP_LAST ? cfg->depth : VIT_CUDA_KEEP_LAST;
    const size_t nslots = train ? (size_t)cfg->depth + 1 : (size_t)keep + 1;
    l->nslots = (int)nslots;
    l->cols = arena_take(a, (size_t)B * l->Np * l->CPP);
    l->pos = arena_take(a, (size_t)l->T * l->D);
    l->tok = arena_take(a, (size_t)B * l->Np * l->D);
    l->res = arena_take(a, nslots * btd);
    l->ln = arena_take(a, btd);
    l->qkv = arena_take(a, L * 3 * btd);
    // Inference keeps no attention state (the twin's scores live in its
    // scratch): for ViT-S/8 at 224 that saves B·NH·T² floats, 1.9 GB for
    // the teacher's 128 global crops.
    l->att = arena_take(a, train ? L * l->att_block : 0);
    l->atty = arena_take(a, L * btd);
    l->fc1 = arena_take(a, L * BT * l->H4);
    l->out = arena_take(a, btd);
    l->statsf = arena_take(a, 2 * BT);
    l->drop = arena_take(a, (size_t)2 * cfg->depth * B);
    if (train) {
        l->mid = arena_take(a, L * btd);
        l->stats1 = arena_take(a, L * 2 * BT);
        l->stats2 = arena_take(a, L * 2 * BT);
        l->hbuf = arena_take(a, BT * l->H4);
    }
}

size_t vit_cuda_res_slot(const VitCudaLayout *l, int k) {
    DINO_ASSERT(k >= 0 && k <= l->depth && l->nslots >= 2);
    return l->res + (size_t)(k % l->nslots) * l->btd;
}

void vit_cuda_scratch_need(VitCudaScratch *s, const VitCudaLayout *l) {
    DINO_ASSERT(l->train);
    size_t bth4 = (size_t)l->B * l->T * l->H4, cols = (size_t)l->B * l->Np * l->D;
    size_t pos = (size_t)l->T * l->D;
    if (l->btd > s->btd_max) s->btd_max = l->btd;
    if (bth4 > s->bth4_max) s->bth4_max = bth4;
    if (cols > s->cols_max) s->cols_max = cols;
    if (pos > s->pos_max) s->pos_max = pos;
}

void vit_cuda_scratch_place(VitCudaScratch *s, Arena *a) {
    DINO_ASSERT(s->btd_max > 0);
    s->dres = arena_take(a, s->btd_max);
    s->dbr = arena_take(a, s->btd_max);
    s->dln = arena_take(a, s->btd_max);
    s->datty = arena_take(a, s->btd_max);
    s->dqkv = arena_take(a, 3 * s->btd_max);
    s->dh = arena_take(a, s->bth4_max);
    s->dtok = arena_take(a, s->cols_max);
    s->dpos = arena_take(a, s->pos_max);
    s->dtokens = arena_take(a, s->btd_max);
}

int vit_pos_interp_plan(const ViTConfig *cfg, int H, int W, int *oh, int *ow, float *sh,
                        float *sw) {
    int g = vit_grid(cfg), p = cfg->patch;
    *oh = *ow = g;
    *sh = *sw = 1.0f;
    if (vit_tokens(cfg, H, W) - 1 == g * g && H == W) return 0;
    // scale_factor = (n + 0.1)/g in double, out = trunc(g·sf), step = (float)(1/sf)
    double sqrtN = sqrt((double)(g * g));
    double sfh = ((double)(H / p) + 0.1) / sqrtN, sfw = ((double)(W / p) + 0.1) / sqrtN;
    *oh = (int)(int64_t)((double)g * sfh);
    *ow = (int)(int64_t)((double)g * sfw);
    DINO_ASSERT(*oh == H / p && *ow == W / p);
    *sh = (float)(1.0 / sfh);
    *sw = (float)(1.0 / sfw);
    return 1;
}

// ---------------------------------------------------------------- head activations

static void head_layer_dims(const HeadConfig *cfg, int i, int *in, int *out) {
    *in = i == 0 ? cfg->in_dim : cfg->hidden;
    *out = i == cfg->nlayers - 1 ? cfg->bottleneck : cfg->hidden;
}

void head_cuda_layout(HeadCudaLayout *l, Arena *a, const HeadConfig *cfg, int N, int train) {
    DINO_ASSERT(N >= 1 && cfg->nlayers >= 1 && cfg->nlayers <= HEAD_MAX_LAYERS);
    memset(l, 0, sizeof *l);
    l->N = N;
    l->nlayers = cfg->nlayers;
    l->train = train;
    size_t wmax = (size_t)(cfg->hidden > cfg->bottleneck ? cfg->hidden : cfg->bottleneck);
    if ((size_t)cfg->in_dim > wmax) wmax = (size_t)cfg->in_dim;
    for (int i = 0; i < cfg->nlayers; i++) {
        int in, out;
        head_layer_dims(cfg, i, &in, &out);
        l->h[i] = arena_take(a, (size_t)N * out);
        if (i < cfg->nlayers - 1) l->gel[i] = arena_take(a, (size_t)N * out);
    }
    l->z = arena_take(a, (size_t)N * cfg->bottleneck);
    l->znorm = arena_take(a, (size_t)N);
    l->W = arena_take(a, (size_t)cfg->out_dim * cfg->bottleneck);
    l->vnorm = arena_take(a, (size_t)cfg->out_dim);
    l->logits = arena_take(a, (size_t)N * cfg->out_dim);
    if (train) {
        l->dW = arena_take(a, (size_t)cfg->out_dim * cfg->bottleneck);
        l->d0 = arena_take(a, (size_t)N * wmax);
        l->d1 = arena_take(a, (size_t)N * wmax);
    }
}

// ---------------------------------------------------------------- multi-crop plan

int multicrop_plan(MultiCropPlan *p, const Batch *b, const ViTConfig *cfg, char *err,
                   size_t errlen) {
    memset(p, 0, sizeof *p);
    if (b->B < 1) return dino_errf(err, errlen, "a batch needs at least one image, got %d", b->B);
    if (b->n_groups < 1 || b->n_groups > BATCH_MAX_GROUPS)
        return dino_errf(err, errlen, "a batch needs 1 to %d crop groups, got %d", BATCH_MAX_GROUPS,
                         b->n_groups);
    if (b->groups[0].n_crops != 2)
        return dino_errf(err, errlen, "the first crop group must hold the 2 global crops the teacher sees, got %d",
                         b->groups[0].n_crops);
    p->B = b->B;
    p->n_groups = b->n_groups;
    int row = 0;
    for (int g = 0; g < b->n_groups; g++) {
        const CropGroup *cg = &b->groups[g];
        if (cg->n_crops < 1 || cg->size < cfg->patch || cg->size % cfg->patch)
            return dino_errf(err, errlen, "crop group %d: %d crops of %d px (the size must be a positive multiple of the patch %d)",
                             g, cg->n_crops, cg->size, cfg->patch);
        p->size[g] = cg->size;
        p->n_crops[g] = cg->n_crops;
        p->rows[g] = cg->n_crops * b->B;
        p->row0[g] = row;
        p->tokens[g] = vit_tokens(cfg, cg->size, cg->size);
        p->pixels[g] = (size_t)p->rows[g] * cfg->in_chans * cg->size * cg->size;
        p->pixels_total += p->pixels[g];
        p->ncrops += cg->n_crops;
        row += p->rows[g];
    }
    p->total_rows = row;
    return 0;
}

int multicrop_plan_matches(const MultiCropPlan *p, const Batch *b) {
    if (p->B != b->B || p->n_groups != b->n_groups) return 0;
    for (int g = 0; g < b->n_groups; g++)
        if (p->size[g] != b->groups[g].size || p->n_crops[g] != b->groups[g].n_crops) return 0;
    return 1;
}

size_t train_arena_layout(TrainArena *ta, const MultiCropPlan *p, const ViTConfig *vit,
                          const HeadConfig *head, int fused_attention) {
    memset(ta, 0, sizeof *ta);
    ta->plan = *p;
    Arena a;
    arena_init(&a, NULL, ARENA_ALIGN_FLOATS);
    const int K = head->out_dim, D = vit->dim, B = p->B;
    vit_cuda_layout(&ta->teacher_vit, &a, vit, p->rows[0], p->size[0], p->size[0], 0,
                    fused_attention);
    for (int g = 0; g < p->n_groups; g++) {
        vit_cuda_layout(&ta->student_vit[g], &a, vit, p->rows[g], p->size[g], p->size[g], 1,
                        fused_attention);
        vit_cuda_scratch_need(&ta->scratch, &ta->student_vit[g]);
    }
    vit_cuda_scratch_place(&ta->scratch, &a);
    head_cuda_layout(&ta->teacher_head, &a, head, p->rows[0], 0);
    head_cuda_layout(&ta->student_head, &a, head, p->total_rows, 1);
    ta->tfeat = arena_take(&a, (size_t)p->rows[0] * D);
    ta->sfeat = arena_take(&a, (size_t)p->total_rows * D);
    ta->dfeat = arena_take(&a, (size_t)p->total_rows * D);
    ta->dlogits = arena_take(&a, (size_t)p->total_rows * K);
    ta->center_sum = arena_take(&a, (size_t)K);
    (void)B;
    for (int g = 0; g < p->n_groups; g++) {
        ta->drop[g] = ta->drop_total;
        ta->drop_total += (size_t)2 * vit->depth * p->rows[g];
    }
    ta->images[0] = arena_take(&a, p->pixels_total);
    ta->images[1] = arena_take(&a, p->pixels_total);
    ta->total = a.total;
    return a.total;
}

// ---------------------------------------------------------------- staging ring

void staging_init(StagingRing *r) { memset(r, 0, sizeof *r); }

void staging_copy_batch(float *dst, const Batch *b, const MultiCropPlan *p) {
    DINO_ASSERT(multicrop_plan_matches(p, b));
    // 1 MiB pieces over every group, so all threads share the big groups.
    const size_t piece = (size_t)1 << 18;
    size_t npieces[BATCH_MAX_GROUPS], first[BATCH_MAX_GROUPS + 1], off[BATCH_MAX_GROUPS];
    first[0] = 0;
    size_t o = 0;
    for (int g = 0; g < p->n_groups; g++) {
        npieces[g] = (p->pixels[g] + piece - 1) / piece;
        first[g + 1] = first[g] + npieces[g];
        off[g] = o;
        o += p->pixels[g];
    }
    const long long total = (long long)first[p->n_groups];
#pragma omp parallel for schedule(static)
    for (long long k = 0; k < total; k++) {
        int g = 0;
        while ((size_t)k >= first[g + 1]) g++;
        size_t i0 = ((size_t)k - first[g]) * piece;
        size_t n = p->pixels[g] - i0 < piece ? p->pixels[g] - i0 : piece;
        memcpy(dst + off[g] + i0, b->groups[g].pixels + i0, n * sizeof(float));
    }
}

StagingAcquire staging_acquire(StagingRing *r) {
    StagingAcquire q;
    q.slot = (int)(r->batches % 2);
    // The slot's previous batch must have had its reader enqueued: a third
    // batch in flight would overwrite images the GPU has not read.
    DINO_ASSERT(r->state[q.slot] != SLOT_UPLOADING);
    q.wait_upload = r->used[q.slot];
    q.wait_consume = r->used[q.slot];
    r->state[q.slot] = SLOT_FREE;
    r->batches++;
    return q;
}

void staging_uploaded(StagingRing *r, int slot) {
    DINO_ASSERT(slot == 0 || slot == 1);
    DINO_ASSERT(r->state[slot] == SLOT_FREE);
    DINO_ASSERT(r->batches > 0 && (int)((r->batches - 1) % 2) == slot);  // the slot just acquired
    r->state[slot] = SLOT_UPLOADING;
    r->used[slot] = 1;
}

void staging_consumed(StagingRing *r, int slot) {
    DINO_ASSERT(slot == 0 || slot == 1);
    DINO_ASSERT(r->state[slot] == SLOT_UPLOADING);
    r->state[slot] = SLOT_CONSUMING;
}
