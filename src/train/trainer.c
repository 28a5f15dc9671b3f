// The trainer's state and one iteration (see trainer.h). The order of an
// iteration follows main_dino.py's train_one_epoch: schedules by global
// iteration, teacher forward on the global crops, student forward on all
// crops, loss, backward, per-tensor clipping, last-layer freeze, optimizer
// step, teacher EMA, centre update. What every engine shares is decided here
// — the schedule values, the drop-path factors, the frozen tensors, the
// clipping limit, the loss over ranks and whether it is finite — and the
// engine (engine.h) runs the rest. Everything random is keyed by position,
// so the state saved by trainer_save plus (epoch, step) determines the rest
// of the run.
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gemm.h"
#include "train/dist.h"
#include "train/dist_train.h"

// ---------------------------------------------------------------- state

Trainer *trainer_create_with(const TrainConfig *cfg, int64_t niter_per_ep, const EngineOptions *eo,
                             char *err, size_t errlen) {
    if (train_config_check(cfg, err, errlen)) return NULL;
    gemm_set_autocast_bf16(cfg->use_bf16);  // the model's matmuls (src/gemm.h); fp32 elsewhere
    if (niter_per_ep <= 0) {
        snprintf(err, errlen, "the iterations per epoch must be positive");
        return NULL;
    }
    OptimKind kind;
    optim_kind_parse(cfg->optimizer, &kind);
    const int sinkhorn = !strcmp(cfg->centering, "sinkhorn_knopp");
    Trainer *t = callocCheck(1, sizeof *t);
    t->cfg = *cfg;
    if (train_config_build_model(cfg, &t->model, err, errlen)) {  // checked above: cannot fail
        free(t);
        return NULL;
    }
    size_t n = t->model.table.total;
    t->student = alignedAllocCheck(n * sizeof(float));
    t->teacher = alignedAllocCheck(n * sizeof(float));
    t->grads = alignedAllocCheck(n * sizeof(float));
    model_init(&t->model, t->student, (uint64_t)cfg->seed);
    memcpy(t->teacher, t->student, n * sizeof(float));  // teacher.load_state_dict(student)
    memset(t->grads, 0, n * sizeof(float));
    optim_init(&t->opt, kind, &t->model.table);
    t->ncrops = 2 + cfg->local_crops_number;
    dino_loss_init(&t->loss, cfg->out_dim, t->ncrops, cfg->warmup_teacher_temp, cfg->teacher_temp,
                   cfg->warmup_teacher_temp_epochs);
    t->loss.sinkhorn_iters = sinkhorn ? 3 : 0;  // DINOv2's n_iterations
    t->niter_per_ep = niter_per_ep;
    int W = cfg->world_size > 0 ? cfg->world_size : 1;
    // lr = args.lr · (batch_size_per_gpu · world_size) / 256, in Python's order
    double base_lr = cfg->lr * (double)(cfg->batch_size_per_gpu * W) / 256.0;
    cosine_schedule_init(&t->lr_sched, base_lr, cfg->min_lr, cfg->epochs, niter_per_ep,
                         cfg->warmup_epochs, 0.0);
    cosine_schedule_init(&t->wd_sched, cfg->weight_decay, cfg->weight_decay_end, cfg->epochs,
                         niter_per_ep, 0, 0.0);
    cosine_schedule_init(&t->mom_sched, cfg->momentum_teacher, 1.0, cfg->epochs, niter_per_ep, 0,
                         0.0);
    const ParamTable *tab = &t->model.table;
    t->skip = callocCheck((size_t)tab->n, 1);
    t->last_layer = callocCheck((size_t)tab->n, 1);
    for (int i = 0; i < tab->n; i++) t->last_layer[i] = strstr(tab->p[i].name, "last_layer") != NULL;
    t->grad_norms = callocCheck((size_t)tab->n, sizeof(float));
    t->state = (TrainState){&t->model, t->student, t->teacher, t->grads, &t->opt, &t->loss,
                            t->grad_norms, W};
    EngineOptions o = {0};
    if (eo) o = *eo;
    o.quiet = cfg->quiet || cfg->rank != 0;
    o.koleo = cfg->koleo_loss_weight > 0;
    if (!(t->engine = train_engine_create((DeviceKind)cfg->device, &t->state, &o, err, errlen))) {
        trainer_free(t);
        return NULL;
    }
    return t;
}

Trainer *trainer_create(const TrainConfig *cfg, int64_t niter_per_ep, char *err, size_t errlen) {
    return trainer_create_with(cfg, niter_per_ep, NULL, err, errlen);
}

void trainer_free(Trainer *t) {
    if (!t) return;
    train_engine_free(t->engine);
    for (int g = 0; g < BATCH_MAX_GROUPS; g++) free(t->drop[g]);
    free(t->student);
    free(t->teacher);
    free(t->grads);
    free(t->skip);
    free(t->last_layer);
    free(t->grad_norms);
    optim_free(&t->opt);
    dino_loss_free(&t->loss);
    model_free(&t->model);
    free(t);
}

void trainer_advance(Trainer *t, const StepStats *st) {
    // MetricLogger: loss.item() is a float32 value summed in double.
    t->ep_loss += (double)(float)st->loss;
    t->ep_lr += st->lr;
    t->ep_wd += st->wd;
    t->ep_count++;
    t->step++;
}


// ---------------------------------------------------------------- one iteration

// The inputs of iteration `it` that every engine takes the same: schedule
// values (also the step's statistics), drop-path factors keyed by position,
// the frozen tensors, the clipping limit.
static void step_inputs(Trainer *t, const Batch *b, int64_t it, EngineStep *in, StepStats *st) {
    const TrainConfig *c = &t->cfg;
    memset(in, 0, sizeof *in);
    st->lr = cosine_schedule_at(&t->lr_sched, it);
    st->wd = cosine_schedule_at(&t->wd_sched, it);
    st->momentum = cosine_schedule_at(&t->mom_sched, it);
    in->batch = b;
    in->epoch = t->epoch;
    in->lr = st->lr;
    in->wd = st->wd;
    in->momentum = st->momentum;
    // cancel_gradients_last_layer: while epoch < freeze_last_layer the last
    // layer has no gradient, so the optimizer leaves it completely alone.
    for (int i = 0; i < t->model.table.n; i++)
        t->skip[i] = t->epoch < c->freeze_last_layer && t->last_layer[i];
    in->frozen = t->skip;
    in->clip_grad = c->clip_grad > 0 ? (float)c->clip_grad : 0.0f;
    in->koleo_weight = c->koleo_loss_weight > 0 ? c->koleo_loss_weight : 0.0f;
    // A ResNet has no stochastic depth (the reference passes drop_path_rate to ViTs only).
    in->use_drop = c->drop_path_rate > 0 && t->model.backbone == MODEL_BACKBONE_VIT;
    for (int g = 0; in->use_drop && g < b->n_groups; g++) {
        size_t nd = (size_t)t->model.vit.depth * 2 * b->groups[g].n_crops * b->B;
        if (t->drop_cap[g] < nd) {
            free(t->drop[g]);
            t->drop[g] = mallocCheck(nd * sizeof(float));
            t->drop_cap[g] = nd;
        }
        dist_drop_scales(c, &t->model.vit, it, g, b->groups[g].n_crops, b->B, t->drop[g]);
        in->drop[g] = t->drop[g];
    }
}

int trainer_step(Trainer *t, const Batch *b, StepStats *st) {
    const double t0 = dino_now();
    const TrainConfig *c = &t->cfg;
    const int64_t it = (int64_t)t->epoch * t->niter_per_ep + t->step;
    memset(st, 0, sizeof *st);
    EngineStep in;
    step_inputs(t, b, it, &in, st);
    EngineLoss el;
    if (t->engine->ops->forward_backward(t->engine, &in, &el)) {
        snprintf(t->err, sizeof t->err, "%s", t->engine->err);
        return -2;
    }
    LossStats ls = el.ls;
    if (c->koleo_loss_weight > 0) {
        // A rank's KoLeo sees its own batch (DINOv2); the logged value is the ranks' mean.
        double k = el.koleo;
        if (dist_world() > 1) dist_allreduce_f64(&k, 1, DIST_AVG);
        st->koleo = k;
        ls.loss += (double)c->koleo_loss_weight * el.koleo;
    }
    dist_reduce_loss_stats(&ls);  // every rank sees the global loss and stops together
    st->loss = ls.loss;
    st->teacher_temp = ls.teacher_temp;
    st->teacher_entropy = ls.teacher_entropy;
    st->teacher_mean_entropy = ls.teacher_mean_entropy;
    // Nothing the run keeps has changed yet (the gradients are scratch).
    if (!isfinite(ls.loss) || !isfinite((float)ls.loss)) {
        st->seconds = dino_now() - t0;
        return -1;
    }
    t->engine->ops->update(t->engine, &in);
    st->seconds = dino_now() - t0;
    return 0;
}
