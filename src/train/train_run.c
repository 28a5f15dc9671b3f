// The run loop (see trainer.h's train_run): data, resume, the epochs with
// logging (train_log.h), the collapse monitor, the ETA, checkpoints, signals
// and the non-finite-loss stop. Evaluation and fault injection come in
// through TrainHooks; errors go back to the caller, which alone exits.
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "gemm.h"
#include "train/dist.h"
#include "train/dist_train.h"
#include "train/trainer.h"

void train_hooks_default(TrainHooks *h) {
    memset(h, 0, sizeof *h);
    h->inject_nan_at = -1;
    dist_faults_none(&h->faults);
}

static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig) {
    if (g_stop_signal) {  // second signal: stop now
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop_signal = sig;
}

static void fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) s = 0;
    long v = (long)(s + 0.5);
    if (v >= 3600) snprintf(buf, n, "%ldh%02ldm", v / 3600, (v / 60) % 60);
    else if (v >= 60) snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
    else snprintf(buf, n, "%lds", v);
}

typedef struct {
    double h, hbar;  // exponential moving averages of the two entropies
    int64_t n;
    int warned_epoch;
} CollapseMonitor;

// Warns when the teacher output collapses: to the uniform distribution (each
// row's entropy near ln K) or to one dimension (the batch mean's entropy near 0).
// Early in training the teacher is close to uniform in every healthy run (the
// reference's first-epoch loss is near ln K while the centre catches up with
// the random network's nearly identical outputs), so the uniform warning
// waits until the learning-rate warm-up and the first epoch are over.
static void collapse_check(CollapseMonitor *m, const StepStats *st, int K, int epoch,
                           int warmup_epochs) {
    const double a = 0.9;
    m->h = m->n ? a * m->h + (1 - a) * st->teacher_entropy : st->teacher_entropy;
    m->hbar = m->n ? a * m->hbar + (1 - a) * st->teacher_mean_entropy : st->teacher_mean_entropy;
    m->n++;
    // At most one warning per ten epochs: the state is in the log anyway.
    if (m->n < 20 || (m->warned_epoch >= 0 && epoch < m->warned_epoch + 10)) return;
    double lnK = log((double)K);
    if (epoch >= (warmup_epochs > 1 ? warmup_epochs : 1) && m->h > 0.97 * lnK) {
        dino_warn("collapse: after the warm-up the teacher output is still close to uniform (mean entropy %.3f, "
                  "ln %d = %.3f), so the loss sits near ln K. Try a lower --lr, more --warmup_epochs, a lower "
                  "--teacher_temp or a higher --momentum_teacher",
                  m->h, K, lnK);
        m->warned_epoch = epoch;
    } else if (m->hbar < 0.05 * lnK) {
        dino_warn("collapse: the teacher puts every image on the same output dimension (entropy of the "
                  "batch mean %.3f, ln K = %.3f). Try a lower --lr or a higher --teacher_temp", m->hbar, lnK);
        m->warned_epoch = epoch;
    }
}

static int save_or_warn(const Trainer *t, const char *path) {
    char err[512];
    if (t->cfg.rank != 0) return 0;  // rank 0 writes for everyone
    if (trainer_save(t, path, err, sizeof err)) {
        dino_warn("could not write the checkpoint: %s", err);
        return -1;
    }
    return 0;
}

// A second CPU-bound job on a small machine slows training far more than by
// the share of cores it takes: threads that wait at a barrier for a partner
// that is descheduled spin away their time slice (docs/PERFORMANCE.md, "Two
// threads on a loaded machine"). Say so at the start, where the user can
// still choose. The minimum of three looks ignores a process that runs for a
// moment; the run's own other ranks are assumed to share this host.
static void warn_if_machine_busy(int world_size, int threads, int wait_policy_set) {
    int others = -1;
    for (int i = 0; i < 3; i++) {
        if (i) usleep(50000);
        int n = dino_other_running_tasks();
        if (n >= 0 && (others < 0 || n < others)) others = n;
    }
    others -= world_size - 1;
    int cores = omp_get_num_procs();
    if (others <= 0 || others + threads <= cores) return;
    const char *hint = threads > 1 && !wait_policy_set
                           ? " (--threads 1 or OMP_WAIT_POLICY=passive helps: docs/PERFORMANCE.md)"
                           : "";
    dino_warn("%d other task%s running on this machine's %d cores; sharing them, this run may train "
              "several times slower than alone%s",
              others, others == 1 ? " is" : "s are", cores, hint);
}


// A run in progress: what its pieces below share.
typedef struct {
    TrainConfig c;
    const TrainHooks *hooks;
    Dataset *ds;
    Loader *loader;
    LoaderConfig lc;
    Trainer *t;
    int lead;     // rank 0: writes output_dir and talks
    int resumed;  // rank 0 found a checkpoint
    int64_t niter, total, first_it;
    char ckpt_path[4200], log_path[4200];
    TrainLog log;
    CollapseMonitor mon;
    int ckpt_failed;  // the latest write of checkpoint.dino failed (the previous one is kept)
    double t_start, win_t, win_img, win_wait, win_steps;
} Run;

// The multi-crop loader of the settings, this rank's share of each batch.
static void loader_config_of(const TrainConfig *c, LoaderConfig *lc) {
    loader_config_default(lc);
    lc->mode = LOADER_MULTICROP;
    lc->aug.global_size = c->global_crop_size;
    lc->aug.local_size = c->local_crop_size;
    lc->aug.n_local = c->local_crops_number;
    lc->aug.global_scale[0] = c->global_crops_scale[0];
    lc->aug.global_scale[1] = c->global_crops_scale[1];
    lc->aug.local_scale[0] = c->local_crops_scale[0];
    lc->aug.local_scale[1] = c->local_crops_scale[1];
    lc->aug.blur_sigma[0] = c->blur_sigma[0];
    lc->aug.blur_sigma[1] = c->blur_sigma[1];
    lc->aug.solarize_p = c->solarization_prob;
    lc->jpeg_min_side = c->jpeg_min_side;
    lc->batch_size = c->batch_size_per_gpu;
    lc->seed = (uint64_t)c->seed;
    lc->shuffle = 1;
    lc->drop_last = 1;
    lc->rank = c->rank;
    lc->world_size = c->world_size;
    int cores = omp_get_num_procs();
    lc->threads = c->num_workers < cores ? c->num_workers : cores;
    if (lc->threads < 0) lc->threads = 0;
}

// Data, loader, trainer, and the resumed state. 0, or -1 with err filled.
static int run_open(Run *r, char *err, size_t errlen) {
    TrainConfig *c = &r->c;
    char e[1024];
    if (r->lead && dino_make_dirs(c->output_dir, e, sizeof e))
        return dino_errf(err, errlen, "--output_dir: %s", e);
    if (!(r->ds = dataset_open(c->data_path, SPLIT_TRAIN, e, sizeof e)))
        return dino_errf(err, errlen, "--data_path: %s", e);
    loader_config_of(c, &r->lc);
    if (!(r->loader = loader_create(r->ds, &r->lc, err, errlen))) return -1;
    r->niter = loader_steps_per_epoch(r->loader);
    if (r->niter <= 0)
        return dino_errf(err, errlen, "--data_path %s has %lld images, fewer than one batch of --batch_size_per_gpu %d",
                         c->data_path, (long long)dataset_size(r->ds), c->batch_size_per_gpu);
    if (dist_check_config(c, dataset_size(r->ds), r->niter, err, errlen)) return -1;
    if (!(r->t = trainer_create_with(c, r->niter, &r->hooks->engine, err, errlen))) return -1;
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/checkpoint.dino", c->output_dir);
    snprintf(r->log_path, sizeof r->log_path, "%s/log.txt", c->output_dir);
    const int resumed = r->resumed = r->lead && access(r->ckpt_path, F_OK) == 0;
    if (resumed && trainer_load(r->t, r->ckpt_path, e, sizeof e))
        return dino_errf(err, errlen, "cannot resume: %s", e);
    dist_sync_trainer(r->t);  // every rank starts from rank 0's weights and position
    r->total = (int64_t)c->epochs * r->niter;
    r->first_it = (int64_t)r->t->epoch * r->niter + r->t->step;
    if (resumed && r->first_it < r->total && !(c->stop_after_steps > 0 && r->first_it >= c->stop_after_steps)) {
        dino_info("resuming from %s at epoch %d, step %lld", r->ckpt_path, r->t->epoch, (long long)r->t->step);
        train_log_trim(r->log_path, r->t->epoch, r->first_it);
    }
    return 0;
}

// The start-up lines: model, data, optimizer.
static void run_describe(const Run *r) {
    const Trainer *t = r->t;
    const TrainConfig *c = &r->c;
    char desc[256];
    model_describe_backbone(&t->model, desc, sizeof desc);
    size_t ntrain = 0;
    for (int i = 0; i < t->model.table.n; i++)
        if (t->model.table.p[i].trainable) ntrain += t->model.table.p[i].numel;
    dino_info("model: %s; head %d -> %d -> %d -> %d (norm_last_layer %s%s); %.2fM trainable parameters",
              desc, t->model.head.in_dim, t->model.head.hidden, t->model.head.bottleneck,
              t->model.head.out_dim, c->norm_last_layer ? "true" : "false",
              t->model.head.use_bn ? ", BatchNorm" : "", ntrain / 1e6);
    dino_info("data: %s; %d global %d px + %d local %d px crops; %lld iterations per epoch of %d images",
              dataset_describe(r->ds), 2, c->global_crop_size, c->local_crops_number, c->local_crop_size,
              (long long)r->niter, c->batch_size_per_gpu);
    char prec[180] = "";  // the CUDA engine names its own GEMMs
    if (c->device != DEVICE_CUDA) {
        memcpy(prec, "; matmuls ", 11);
        gemm_describe_precision(prec + 10, sizeof prec - 10);
    }
    dino_info("optimizer %s, peak lr %.3g after %d warm-up epochs, %d epochs, %d threads%s", c->optimizer,
              t->lr_sched.base, c->warmup_epochs, c->epochs, dino_get_threads(), prec);
}

// Every --log_every_steps iterations and at the epoch's end: a step record,
// and the progress line with throughput, data wait and ETA.
static void run_log_step(Run *r, int epoch, int64_t step, int64_t it, const StepStats *st) {
    const TrainConfig *c = &r->c;
    int every = c->log_every_steps > 0 ? c->log_every_steps : 0;
    if (!every || !(it % every == 0 || r->t->step == r->niter)) return;
    double ips = r->win_img / (r->win_t > 0 ? r->win_t : 1e-9);
    train_log_step(&r->log, epoch, step, it, st, ips);
    if (!c->quiet) {
        double elapsed = dino_now() - r->t_start;
        double per = elapsed / (double)(it + 1 - r->first_it);
        char eta[32];
        fmt_duration(per * (double)(r->total - it - 1), eta, sizeof eta);
        fprintf(stderr,
                "epoch %d/%d step %lld/%lld | %.1f img/s | data wait %.3f s | loss %.4f | "
                "lr %.3e wd %.4f | H %.3f Hmean %.3f | ETA %s\n",
                epoch, c->epochs, (long long)step + 1, (long long)r->niter, ips,
                r->win_steps > 0 ? r->win_wait / r->win_steps : 0.0, st->loss, st->lr, st->wd,
                st->teacher_entropy, st->teacher_mean_entropy, eta);
    }
    r->win_t = r->win_img = r->win_wait = r->win_steps = 0;
}

// The end of `epoch`: evaluation, the reference's log line, the position
// moved to the next epoch, then the checkpoints.
static void run_end_epoch(Run *r, int epoch) {
    Trainer *t = r->t;
    const TrainConfig *c = &r->c;
    const TrainHooks *h = r->hooks;
    double n = t->ep_count > 0 ? (double)t->ep_count : 1.0;
    char extra[512] = "";
    if (r->lead && c->eval_knn_every > 0 && h->eval && (epoch + 1) % c->eval_knn_every == 0) {
        t->engine->ops->download(t->engine);
        char frag[480];
        if (h->eval(h->eval_ctx, c, &t->model, t->teacher, epoch, frag, sizeof frag) == 0)
            snprintf(extra, sizeof extra, ", %s", frag);
    }
    train_log_epoch(&r->log, t->ep_loss / n, t->ep_lr / n, t->ep_wd / n, epoch, extra);
    t->epoch++;
    t->step = 0;
    t->ep_loss = t->ep_lr = t->ep_wd = 0;
    t->ep_count = 0;
    r->ckpt_failed = save_or_warn(t, r->ckpt_path) != 0;
    if (c->saveckp_freq > 0 && epoch % c->saveckp_freq == 0) {
        char p[4300];
        snprintf(p, sizeof p, "%s/checkpoint%04d.dino", c->output_dir, epoch);
        save_or_warn(t, p);
    }
}

enum { RUN_GO_ON = -100 };

// One iteration: batch, step, statistics, records, checkpoints, and whether
// to stop. RUN_GO_ON, an exit status, or -1 with err filled.
static int run_iteration(Run *r, char *err, size_t errlen) {
    Trainer *t = r->t;
    const TrainConfig *c = &r->c;
    const double t_wait = dino_now();
    const Batch *b = loader_next(r->loader);
    // Time blocked on the data loader: ~0 when augmentation keeps up
    // (with --device cuda the GPU meanwhile runs the previous step's tail).
    r->win_wait += dino_now() - t_wait;
    if (!b && loader_error(r->loader)) return dino_errf(err, errlen, "%s", loader_error(r->loader));
    if (!b) return dino_errf(err, errlen, "the data loader ended epoch %d early at step %lld", t->epoch, (long long)t->step);
    const int epoch = t->epoch;
    const int64_t step = t->step, it = (int64_t)epoch * r->niter + step;
    dist_fault_hook(&r->hooks->faults, it);
    if (r->hooks->inject_nan_at >= 0 && it == r->hooks->inject_nan_at)
        b->groups[0].pixels[0] = NAN;  // fault injection (TrainHooks.inject_nan_at)
    StepStats st;
    int rc = trainer_step(t, b, &st);
    if (rc == -2) return dino_errf(err, errlen, "%s", t->err);
    if (rc) {
        fprintf(stderr,
                "dino train: error: the loss is %g at epoch %d step %lld (lr %.3g); stopping. "
                "The last good checkpoint is %s. Try a lower --lr, a smaller --clip_grad or a higher --teacher_temp.\n",
                st.loss, t->epoch, (long long)t->step, st.lr, r->ckpt_path);
        return 1;
    }
    collapse_check(&r->mon, &st, c->out_dim, t->epoch, c->warmup_epochs);
    trainer_advance(t, &st);
    r->win_t += st.seconds;
    r->win_img += (double)b->B * c->world_size;  // images of all ranks
    r->win_steps += 1;
    run_log_step(r, epoch, step, it, &st);
    int saved = 0;
    if (t->step == r->niter) {
        run_end_epoch(r, epoch);
        saved = 1;
    }
    const int64_t done_it = (int64_t)t->epoch * r->niter + t->step;
    if (!saved && c->checkpoint_every_steps > 0 && done_it % c->checkpoint_every_steps == 0) {
        r->ckpt_failed = save_or_warn(t, r->ckpt_path) != 0;
        saved = 1;
    }
    // A signal may reach the ranks at different iterations: they stop together.
    g_stop_signal = dist_max_i32(g_stop_signal);
    if (!g_stop_signal && !(c->stop_after_steps > 0 && done_it >= c->stop_after_steps)) return RUN_GO_ON;
    if (!saved || r->ckpt_failed) r->ckpt_failed = save_or_warn(t, r->ckpt_path) != 0;
    if (r->ckpt_failed) return 1;
    if (g_stop_signal) {
        dino_info("interrupted (signal %d): checkpoint written at epoch %d step %lld; "
                  "run the same command to resume", (int)g_stop_signal, t->epoch, (long long)t->step);
        return 128 + (int)g_stop_signal;
    }
    if (!c->quiet)
        dino_info("stopped after %lld iterations as asked; checkpoint at epoch %d step %lld",
                  (long long)done_it, t->epoch, (long long)t->step);
    return 0;
}

// The epochs from the trainer's position. An exit status, or -1 with err filled.
static int run_epochs(Run *r, char *err, size_t errlen) {
    Trainer *t = r->t;
    while (t->epoch < r->c.epochs) {
        loader_start(r->loader, t->epoch, t->step);
        while (t->step < r->niter) {
            int rc = run_iteration(r, err, errlen);
            if (rc != RUN_GO_ON) return rc;
            if (t->step == 0) break;  // the epoch rolled over
        }
    }
    return 0;
}

static void run_close(Run *r) {
    train_log_close(&r->log);
    trainer_free(r->t);
    loader_free(r->loader);
    dataset_close(r->ds);
}

int train_run(const TrainConfig *cfg, const TrainHooks *hooks, char *err, size_t errlen) {
    TrainHooks none;
    if (!hooks) train_hooks_default(&none), hooks = &none;
    Run run = {.c = *cfg, .hooks = hooks, .mon = {.warned_epoch = -1}};
    Run *r = &run;
    TrainConfig *c = &r->c;
    // Data parallel (dist.h): rank 0 alone writes output_dir and talks.
    if ((c->world_size = dist_init(hooks->dist_timeout, err, errlen)) < 0) return -1;
    c->rank = dist_rank();
    r->lead = c->rank == 0;
    if (!r->lead) c->quiet = 1;
    if (r->lead) warn_if_machine_busy(c->world_size, dino_get_threads(), hooks->wait_policy_set);
    // On an error the caller exits without finalizing MPI, so that the
    // launcher ends the other ranks.
    if (run_open(r, err, errlen)) return run_close(r), -1;
    // Running a finished run again changes nothing, not even log.txt, so a
    // script may simply re-run the command until it succeeds.
    if (r->first_it >= r->total || (c->stop_after_steps > 0 && r->first_it >= c->stop_after_steps)) {
        if (r->lead && r->first_it >= r->total)
            dino_info("nothing to do: %s has finished all %d epochs", r->ckpt_path, c->epochs);
        else if (r->lead)
            dino_info("nothing to do: %s is at iteration %lld, at or past --stop_after_steps %lld",
                      r->ckpt_path, (long long)r->first_it, (long long)c->stop_after_steps);
        run_close(r);
        dist_finalize();
        return 0;
    }
    // A run killed before its first checkpoint left records of iterations
    // that run again now (found by tests/test_faults.c).
    if (r->lead && !r->resumed) train_log_trim(r->log_path, 0, 0);
    r->t->engine->ops->upload(r->t->engine);
    dist_report(c, r->lc.threads, c->dist_report);
    if (!c->quiet) run_describe(r);
    if (c->eval_knn_every > 0 && !hooks->eval)
        dino_warn("--eval_knn_every: k-NN evaluation during training is not part of this build; ignored");
    if (train_log_open(&r->log, r->log_path, r->lead, c->koleo_loss_weight > 0, err, errlen))
        return run_close(r), -1;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_stop_signal = 0;
    r->t_start = dino_now();
    int status = run_epochs(r, err, errlen);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (status < 0) return run_close(r), -1;
    // A run whose last checkpoint could not be written must not look successful.
    if (r->ckpt_failed) {
        fprintf(stderr, "dino train: error: the last checkpoint could not be written; %s holds the previous one\n",
                r->ckpt_path);
        if (status == 0) status = 1;
    }
    run_close(r);
    dist_finalize();
    return status;
}
