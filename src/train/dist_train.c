// Data-parallel training glue (see dist_train.h): configuration agreement,
// the start-up report, state broadcast, global-batch drop-path masks, loss
// statistics.
#include "train/dist_train.h"
#include "train/drop_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "train/dist.h"

// ---------------------------------------------------------------- configuration agreement

int dist_config_items(const TrainConfig *c, int64_t images, int64_t niter, DistItem *it) {
    int n = 0;
    for (int i = 0; i < train_settings_count; i++) {
        const TrainSetting *s = &train_settings[i];
        if (s->may_differ) continue;
        snprintf(it[n].key, sizeof it[n].key, "%s", s->name);
        train_setting_format(s, c, it[n].value, sizeof it[n].value);
        n++;
    }
#define ADD(k, ...) (snprintf(it[n].key, sizeof it[n].key, "%s", k), \
                     snprintf(it[n].value, sizeof it[n].value, __VA_ARGS__), n++)
    ADD("dataset images", "%lld", (long long)images);  // --data_path may differ per host; its content may not
    ADD("iterations per epoch", "%lld", (long long)niter);
#undef ADD
    DINO_ASSERT(n <= DIST_MAX_ITEMS);
    return n;
}

typedef struct {
    int index;  // first item that differs from rank 0's, -1 if none
    char value[96];
} DistMismatch;

int dist_check_config(const TrainConfig *c, int64_t dataset_images, int64_t niter_per_ep, char *err,
                      size_t errlen) {
    const int W = dist_world(), rank = dist_rank();
    if (W <= 1) return 0;
    DistItem mine[DIST_MAX_ITEMS], root[DIST_MAX_ITEMS];
    memset(mine, 0, sizeof mine);
    int n = dist_config_items(c, dataset_images, niter_per_ep, mine);
    memcpy(root, mine, sizeof root);
    dist_broadcast(root, sizeof root, 0);
    DistMismatch me = {.index = -1};
    for (int i = 0; i < n && me.index < 0; i++)
        if (strcmp(mine[i].key, root[i].key) || strcmp(mine[i].value, root[i].value)) {
            me.index = i;
            snprintf(me.value, sizeof me.value, "%s", mine[i].value);
        }
    DistMismatch *all = mallocCheck((size_t)W * sizeof *all);
    dist_allgather(&me, all, sizeof me);
    int bad = 0;
    for (int r = 0; r < W; r++) bad += all[r].index >= 0;
    if (bad && rank == 0) {
        for (int r = 0; r < W; r++) {
            if (all[r].index < 0) continue;
            const DistItem *x = &root[all[r].index];
            fprintf(stderr, "dino: error: ranks disagree on the configuration: rank %d has %s%s %s, rank 0 has %s\n", r,
                    strchr(x->key, ' ') ? "" : "--", x->key, all[r].value, x->value);
        }
        fflush(stderr);
    }
    free(all);
    if (!bad) return 0;
    dist_barrier();  // let rank 0 print before anyone stops
    dist_finalize();
    return dino_errf(err, errlen, "every rank must be started with the same flags and the same data "
                                  "(%d of %d ranks differ); stopping", bad, W);
}

// ---------------------------------------------------------------- report

typedef struct {
    char host[64];
    int pid, threads, loader_threads;
} DistRankInfo;

void dist_report(const TrainConfig *c, int loader_threads, int full) {
    const int W = dist_world();
    if (W <= 1 && !full) return;
    DistRankInfo me;
    memset(&me, 0, sizeof me);
    if (gethostname(me.host, sizeof me.host - 1)) snprintf(me.host, sizeof me.host, "?");
    me.pid = (int)getpid();
    me.threads = dino_get_threads();
    me.loader_threads = loader_threads;
    DistRankInfo *all = mallocCheck((size_t)W * sizeof *all);
    dist_allgather(&me, all, sizeof me);
    if (dist_rank() == 0 && (full || !c->quiet)) {  // (other ranks are always quiet)
        int hosts = 0;
        for (int r = 0; r < W; r++) {
            int seen = 0;
            for (int q = 0; q < r && !seen; q++) seen = !strcmp(all[q].host, all[r].host);
            hosts += !seen;
        }
        if (W > 1)
            dino_info("distributed: %d ranks on %d host%s (MPI); global batch %d = %d x %d per rank; "
                      "gradients and the centre all-reduced every iteration",
                      W, hosts, hosts > 1 ? "s" : "", c->batch_size_per_gpu * W, W, c->batch_size_per_gpu);
        else
            dino_info("distributed: one process (%s)",
                      dist_compiled() ? "MPI build, not started by mpirun" : "built without MPI");
        if (full)
            for (int r = 0; r < W; r++)
                dino_info("  rank %d: host %s pid %d, %d compute thread%s, %d loader thread%s", r, all[r].host,
                          all[r].pid, all[r].threads, all[r].threads == 1 ? "" : "s", all[r].loader_threads,
                          all[r].loader_threads == 1 ? "" : "s");
    }
    free(all);
}

// ---------------------------------------------------------------- state

void dist_sync_trainer(Trainer *t) {
    if (dist_world() <= 1) return;
    const size_t total = t->model.table.total;
    dist_broadcast(t->student, total * sizeof(float), 0);
    dist_broadcast(t->teacher, total * sizeof(float), 0);
    dist_broadcast(t->opt.m, total * sizeof(float), 0);
    if (t->opt.v) dist_broadcast(t->opt.v, total * sizeof(float), 0);
    dist_broadcast(t->opt.step, (size_t)t->model.table.n * sizeof(int64_t), 0);
    dist_broadcast(t->loss.center, (size_t)t->cfg.out_dim * sizeof(float), 0);
    struct {
        int64_t epoch, step, count;
        double loss, lr, wd;
    } pos = {t->epoch, t->step, t->ep_count, t->ep_loss, t->ep_lr, t->ep_wd};
    dist_broadcast(&pos, sizeof pos, 0);
    t->epoch = (int)pos.epoch;
    t->step = pos.step;
    t->ep_count = pos.count;
    t->ep_loss = pos.loss;
    t->ep_lr = pos.lr;
    t->ep_wd = pos.wd;
}

// ---------------------------------------------------------------- drop path

void dist_drop_scales(const TrainConfig *c, const ViTConfig *vit, int64_t it, int group,
                      int n_crops, int B, float *out) {
    const int W = c->world_size > 0 ? c->world_size : 1, r = c->rank;
    if (W == 1) {
        drop_path_scales(c->drop_path_rate, (uint64_t)c->seed, vit->depth, it, group, n_crops * B, out);
        return;
    }
    DINO_ASSERT(r >= 0 && r < W);
    const size_t Bg = (size_t)n_crops * B, BgW = Bg * W;
    float *all = mallocCheck((size_t)vit->depth * 2 * BgW * sizeof(float));
    drop_path_scales(c->drop_path_rate, (uint64_t)c->seed, vit->depth, it, group, (int)BgW, all);
    for (int lb = 0; lb < vit->depth * 2; lb++)
        for (int k = 0; k < n_crops; k++)
            for (int i = 0; i < B; i++)
                out[(size_t)lb * Bg + (size_t)k * B + i] =
                    all[(size_t)lb * BgW + (size_t)k * B * W + (size_t)W * i + r];
    free(all);
}

// ---------------------------------------------------------------- statistics

void dist_reduce_loss_stats(LossStats *ls) {
    if (dist_world() <= 1) return;
    double v[3] = {ls->loss, ls->teacher_entropy, ls->teacher_mean_entropy};
    dist_allreduce_f64(v, 3, DIST_AVG);
    ls->loss = v[0];
    ls->teacher_entropy = v[1];
    ls->teacher_mean_entropy = v[2];
}
