// DINO training of a ResNet (`dino train --arch resnet_tiny`) against PyTorch
// (tools/make_resnet_train_fixtures.py): three iterations of the reference's
// main_dino.py on a small torchvision ResNet + DINOHead, student and teacher
// with BatchNorm in train mode (batch statistics per resolution group,
// running statistics updated by each one's own forwards), the reference's
// centring, per-tensor clipping, the last layer frozen in epoch 0, SGD with
// momentum (the reference's ResNet recipe) or DINO's LARS over the
// reference's parameter groups, and the teacher EMA over parameters only.
// Once more with --use_bn_in_head (resnet_train_sgd_bnhead.bin): BatchNorm1d
// in the head with batch statistics over all crops of each head call.
// Per step: loss, schedules, gradients after clipping, student and teacher
// (parameters and running statistics), centre, as test_train_step.c does for
// the ViT at its tolerances: each step once from the reference's state before
// it, then the three chained from our own results.
//
// Also: a checkpoint taken between two steps resumes bit for bit (running
// statistics and momentum buffers included); the parameter groups of the
// ResNet's names; the EMA leaves buffers alone; the configuration checks
// (a ResNet refuses --device cuda in one line; the reference's recipe flags
// are accepted by `dino train`).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_fill.h"
#include "fixture.h"
#include "testlib.h"
#include "train/trainer.h"

#define IMG_SEED 9700
// test_train_step.c's tolerances.
#define STEP_GRAD_TOL 2e-5
#define CHAIN_GRAD_TOL 1e-4

// Parameters and running statistics: within atol (a small fraction of the
// learning rates' sum) + 1e-6 of the tensor's scale.
static int close_abs(const char *what, const float *got, const float *want, size_t n, double atol,
                     double *worst) {
    double mx = 0, e = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + 1e-6 * mx)) ok = 0;
        e = fmax(e, d);
    }
    if (e > *worst) *worst = e;
    if (!ok) printf("  %s: max abs error %.3g (atol %.3g)\n", what, e, atol);
    return ok;
}

static TrainConfig fixture_config(const Fixture *fx, const char *optimizer, int use_bn) {
    const float *cf = fixture_get(fx, "cfg")->data;
    TrainConfig c;
    train_config_default(&c);
    c.arch = "resnet_tiny";
    c.optimizer = optimizer;
    c.global_crop_size = (int)cf[0];
    c.local_crop_size = (int)cf[1];
    c.head_hidden_dim = (int)cf[2];
    c.head_bottleneck_dim = (int)cf[3];
    c.out_dim = (int)cf[4];
    c.head_nlayers = 3;
    c.norm_last_layer = 1;
    c.use_bn_in_head = use_bn;
    c.batch_size_per_gpu = (int)cf[5];
    c.local_crops_number = (int)cf[6];
    c.epochs = (int)cf[8];
    c.warmup_epochs = (int)cf[9];
    c.warmup_teacher_temp_epochs = (int)cf[10];
    c.freeze_last_layer = (int)cf[11];
    engine_fixture_schedules(&c, fx);
    c.koleo_loss_weight = 0;
    c.drop_path_rate = 0.1f;  // the default: a ResNet has no stochastic depth, so it must change nothing
    return c;
}

typedef struct {
    float *g0, *g1;
    Batch b;
    size_t n0, n1;
} Crops;

static void crops_init(Crops *cr, const TrainConfig *c) {
    int B = c->batch_size_per_gpu, G = c->global_crop_size, L = c->local_crop_size;
    cr->n0 = (size_t)2 * B * 3 * G * G;
    cr->n1 = (size_t)c->local_crops_number * B * 3 * L * L;
    cr->g0 = malloc(cr->n0 * sizeof(float));
    cr->g1 = malloc(cr->n1 * sizeof(float));
    cr->b = (Batch){.B = B, .n_groups = 2};
    cr->b.groups[0] = (CropGroup){.size = G, .n_crops = 2, .pixels = cr->g0};
    cr->b.groups[1] = (CropGroup){.size = L, .n_crops = c->local_crops_number, .pixels = cr->g1};
}

static void crops_fill(Crops *cr, int s) {
    fixture_fill(cr->g0, cr->n0, IMG_SEED + 16 * (uint64_t)s, -2.0f, 2.0f);
    fixture_fill(cr->g1, cr->n1, IMG_SEED + 16 * (uint64_t)s + 1, -2.0f, 2.0f);
}

static void crops_free(Crops *cr) {
    free(cr->g0);
    free(cr->g1);
}

// The reference's state after step s−1: student, teacher (running statistics
// included), momentum buffers (present once a tensor has had a gradient),
// centre, position.
static void load_reference_state(Trainer *t, const Fixture *fx, int s, int niter) {
    const ParamTable *tab = &t->model.table;
    char k[160];
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->p[i];
        size_t bytes = p->numel * sizeof(float);
        snprintf(k, sizeof k, "%d.student.%s", s - 1, p->name);
        memcpy(t->student + p->offset, fixture_get(fx, k)->data, bytes);
        snprintf(k, sizeof k, "%d.teacher.%s", s - 1, p->name);
        memcpy(t->teacher + p->offset, fixture_get(fx, k)->data, bytes);
        snprintf(k, sizeof k, "%d.mom.%s", s - 1, p->name);
        const FixtureTensor *m = fixture_find(fx, k);
        if (m) memcpy(t->opt.m + p->offset, m->data, bytes);
        else memset(t->opt.m + p->offset, 0, bytes);
        t->opt.step[i] = m != NULL;
    }
    snprintf(k, sizeof k, "%d.center", s - 1);
    memcpy(t->loss.center, fixture_get(fx, k)->data, (size_t)t->cfg.out_dim * sizeof(float));
    t->epoch = s / niter;
    t->step = s % niter;
}

static void run_steps(const Fixture *fx, const char *optimizer, int use_bn, int from_reference) {
    printf("-- %s%s: %s\n", optimizer, use_bn ? " with BatchNorm in the head" : "",
           from_reference ? "single steps from the reference's state" : "chained steps");
    TrainConfig c = fixture_config(fx, optimizer, use_bn);
    const float *cf = fixture_get(fx, "cfg")->data;
    int niter = (int)cf[7], steps = (int)cf[12];
    char err[256];
    Trainer *t = trainer_create(&c, niter, err, sizeof err);
    CHECK(t != NULL, "trainer_create --arch resnet_tiny --optimizer %s: %s", optimizer, t ? "ok" : err);
    if (!t) return;
    const ParamTable *tab = &t->model.table;
    engine_fill_resnet_params(tab, t->student, 1);
    memcpy(t->teacher, t->student, tab->total * sizeof(float));
    Crops cr;
    crops_init(&cr, &c);
    double lr_sum = 0;
    for (int s = 0; s < steps; s++) {
        if (from_reference && s > 0) {
            load_reference_state(t, fx, s, niter);
            lr_sum = 0;
        }
        crops_fill(&cr, s);
        StepStats st;
        CHECK(trainer_step(t, &cr.b, &st) == 0, "step %d ran", s);
        char k[160], k2[160], what[64];
        snprintf(k, sizeof k, "%d.sched", s);
        const FixtureTensor *sc = fixture_get(fx, k);
        CHECK(st.lr == engine_fixture_double(sc, 0) && st.wd == engine_fixture_double(sc, 1) && st.momentum == engine_fixture_double(sc, 2),
              "step %d: lr %.17g wd %.17g momentum %.17g equal to the reference's", s, st.lr, st.wd, st.momentum);
        snprintf(k, sizeof k, "%d.temp", s);
        CHECK((float)st.teacher_temp == fixture_scalar(fx, k), "step %d: teacher temperature %g", s, st.teacher_temp);
        snprintf(k, sizeof k, "%d.loss", s);
        float loss = (float)st.loss;
        snprintf(what, sizeof what, "step %d loss", s);
        test_close(what, &loss, fixture_get(fx, k)->data, 1, 0, 2e-5);

        int nclipped = 0, frozen_ok = 1;
        for (int i = 0; i < tab->n; i++) {
            const ParamInfo *p = &tab->p[i];
            snprintf(k, sizeof k, "%d.grad.%s", s, p->name);
            int has = fixture_find(fx, k) != NULL;
            // the reference has a gradient exactly for the trainable, unfrozen parameters
            if (has != (p->trainable && !t->skip[i])) frozen_ok = 0;
            if (has && (float)c.clip_grad / (t->grad_norms[i] + 1e-6f) < 1.0f) nclipped++;
        }
        CHECK(frozen_ok, "step %d: gradients for exactly the reference's tensors (no running statistic, "
                         "no weight_g, the last layer %s)", s, s < niter ? "frozen" : "trained");
        snprintf(k, sizeof k, "%d.nclipped", s);
        if (from_reference || s == 0)
            CHECK(nclipped == (int)fixture_scalar(fx, k), "step %d: %d tensors clipped (torch: %g)", s, nclipped,
                  fixture_scalar(fx, k));

        const double gtol = from_reference || s == 0 ? STEP_GRAD_TOL : CHAIN_GRAD_TOL;
        lr_sum += st.lr;
        const double atol = 1e-3 * lr_sum;
        double wg = 0, ws = 0, wt = 0, wr = 0;
        int okg = 1, oks = 1, okt = 1, okr = 1;
        for (int i = 0; i < tab->n; i++) {
            const ParamInfo *p = &tab->p[i];
            snprintf(k, sizeof k, "%d.grad.%s", s, p->name);
            const FixtureTensor *g = fixture_find(fx, k);
            int wi = g ? engine_bias_before_bn(tab, p) : -1;
            if (wi >= 0) {
                snprintf(k2, sizeof k2, "%d.grad.%s", s, tab->p[wi].name);
                const FixtureTensor *gw = fixture_get(fx, k2);
                okg &= engine_zero_close(k, t->grads + p->offset, g->data, p->numel, gw->data, gw->numel, gtol, &wg);
            } else if (g) {
                okg &= engine_close_worst(k, t->grads + p->offset, g->data, p->numel, gtol, &wg);
            }
            snprintf(k, sizeof k, "%d.student.%s", s, p->name);
            const float *ws_ = fixture_get(fx, k)->data;
            snprintf(k, sizeof k, "%d.teacher.%s", s, p->name);
            const float *wt_ = fixture_get(fx, k)->data;
            if (p->buffer) {
                // Running statistics: the batch statistics' rounding, relative to their scale.
                okr &= engine_close_worst(k, t->student + p->offset, ws_, p->numel, gtol, &wr);
                okr &= engine_close_worst(k, t->teacher + p->offset, wt_, p->numel, gtol, &wr);
            } else {
                oks &= close_abs(k, t->student + p->offset, ws_, p->numel, atol, &ws);
                okt &= close_abs(k, t->teacher + p->offset, wt_, p->numel, atol, &wt);
            }
        }
        CHECK(okg, "step %d: gradients after clipping, max error %.3g of each tensor's scale (tol %g)", s, wg, gtol);
        CHECK(oks, "step %d: student parameters after %s, max abs error %.3g (atol %.3g = 0.1%% of Σlr, + 1e-6·scale)",
              s, optimizer, ws, atol);
        CHECK(okt, "step %d: teacher parameters after the EMA, max abs error %.3g (same tolerance)", s, wt);
        CHECK(okr, "step %d: running statistics of student and teacher, max error %.3g of their scale (tol %g)", s, wr,
              gtol);
        snprintf(k, sizeof k, "%d.center", s);
        snprintf(what, sizeof what, "step %d centre", s);
        engine_close(what, t->loss.center, fixture_get(fx, k)->data, (size_t)c.out_dim, 1e-5);
        if (!from_reference) {
            trainer_advance(t, &st);
            if (t->step == niter) t->epoch++, t->step = 0;
        }
    }
    crops_free(&cr);
    trainer_free(t);
}

// Save after step 0, load into a fresh trainer, run step 1 in both: the
// states agree bit for bit (BatchNorm running statistics are part of the
// student and teacher buffers the checkpoint holds).
static void checkpoint_resume(const Fixture *fx, int use_bn) {
    TrainConfig c = fixture_config(fx, "sgd", use_bn);
    char dir[128], path[200], err[256];
    snprintf(dir, sizeof dir, "/tmp/dino_test_resnet_train_%d", (int)getpid());
    snprintf(path, sizeof path, "%s.ckpt", dir);
    c.output_dir = dir;
    Trainer *a = trainer_create(&c, 2, err, sizeof err), *b = trainer_create(&c, 2, err, sizeof err);
    if (!a || !b) return;
    const ParamTable *tab = &a->model.table;
    engine_fill_resnet_params(tab, a->student, 1);
    memcpy(a->teacher, a->student, tab->total * sizeof(float));
    float *init = malloc(tab->total * sizeof(float));
    memcpy(init, a->teacher, tab->total * sizeof(float));
    Crops cr;
    crops_init(&cr, &c);
    crops_fill(&cr, 0);
    StepStats st;
    trainer_step(a, &cr.b, &st);
    trainer_advance(a, &st);
    CHECK(trainer_save(a, path, err, sizeof err) == 0, "checkpoint written: %s", err);
    CHECK(trainer_load(b, path, err, sizeof err) == 0, "checkpoint loaded: %s", err);
    size_t bytes = tab->total * sizeof(float);
    int running_differ = 0;  // the step changed the running statistics (so the check below means something)
    for (int i = 0; i < tab->n; i++)
        if (tab->p[i].buffer)
            running_differ |= memcmp(init + tab->p[i].offset, b->teacher + tab->p[i].offset,
                                     tab->p[i].numel * sizeof(float)) != 0;
    CHECK(running_differ && !memcmp(a->student, b->student, bytes) && !memcmp(a->teacher, b->teacher, bytes) &&
              !memcmp(a->opt.m, b->opt.m, bytes) && !memcmp(a->loss.center, b->loss.center, (size_t)c.out_dim * 4),
          "the loaded state is the saved one bit for bit (running statistics moved by the step: %s)",
          running_differ ? "yes" : "no");
    crops_fill(&cr, 1);
    StepStats sa, sb;
    trainer_step(a, &cr.b, &sa);
    trainer_step(b, &cr.b, &sb);
    CHECK(sa.loss == sb.loss && !memcmp(a->student, b->student, bytes) && !memcmp(a->teacher, b->teacher, bytes) &&
              !memcmp(a->opt.m, b->opt.m, bytes),
          "the next step after resuming equals the uninterrupted one bit for bit (loss %.9g)", sa.loss);
    crops_free(&cr);
    free(init);
    trainer_free(a);
    trainer_free(b);
    unlink(path);
}

// The reference's parameter groups on the ResNet's names, and the EMA over parameters only.
static void groups_and_ema(void) {
    TrainConfig c;
    train_config_default(&c);
    c.arch = "resnet50";
    c.out_dim = 256;
    char err[256];
    DinoModel m;
    CHECK(train_config_build_model(&c, &m, err, sizeof err) == 0 && m.backbone == MODEL_BACKBONE_RESNET &&
              model_feature_dim(&m) == 2048,
          "--arch resnet50 builds a ResNet with 2048-d features under the head");
    int ok = 1, nbuf = 0, nconv = 0, nbn = 0;
    for (int i = 0; i < m.table.n; i++) {
        const ParamInfo *p = &m.table.p[i];
        int run = engine_ends_with(p->name, "running_mean") || engine_ends_with(p->name, "running_var");
        int bn = !run && (strstr(p->name, ".bn") || strstr(p->name, "downsample.1")) && p->ndim == 1;
        int conv = p->ndim == 4;
        if (run) ok &= p->buffer && !p->trainable, nbuf++;
        else ok &= !p->buffer && (p->trainable || engine_ends_with(p->name, "weight_g"));
        if (bn) ok &= p->no_decay, nbn++;
        if (conv) ok &= !p->no_decay, nconv++;
    }
    CHECK(ok && nbuf == 2 * 53 && nbn == 2 * 53 && nconv == 53,
          "resnet50 groups: 53 convolutions decayed, 106 BatchNorm weights and biases without decay, "
          "106 running statistics as buffers (%d, %d, %d)", nconv, nbn, nbuf);
    // ema_update_params: parameters move, buffers do not.
    size_t n = m.table.total;
    float *te = malloc(n * sizeof(float)), *st = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) te[i] = 1.0f, st[i] = 3.0f;
    ema_update_params(&m.table, te, st, 0.5);
    int moved = 1, kept = 1;
    for (int i = 0; i < m.table.n; i++) {
        const ParamInfo *p = &m.table.p[i];
        for (size_t e = 0; e < p->numel; e++) {
            if (p->buffer) kept &= te[p->offset + e] == 1.0f;
            else moved &= te[p->offset + e] == 2.0f;
        }
    }
    CHECK(moved && kept, "teacher EMA: every parameter moves, no running statistic does");
    free(te);
    free(st);
    model_free(&m);

    c.device = DEVICE_CUDA;
    int rc = train_config_check(&c, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "ViTs only") && !strchr(err, '\n'), "--arch resnet50 --device cuda refused: %s", err);
    c.arch = "vit_small";
    c.use_bn_in_head = 1;
    rc = train_config_check(&c, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "--use_bn_in_head") && !strchr(err, '\n'),
          "--use_bn_in_head true --device cuda refused: %s", err);
    c.device = DEVICE_CPU;
    rc = train_config_check(&c, err, sizeof err);
    CHECK(rc == 0, "--use_bn_in_head true on the CPU passes the checks (%s)", rc ? err : "ok");
}

// The reference's ResNet recipe through `dino train`: its flags accepted, the
// model line names resnet50 and the ignored ViT flags do not matter. A
// reduced run (tiny images, two crops, one iteration) keeps it short.
static void recipe_flags(void) {
    if (!test_dino_path() || access("/usr/share/datasets/fashion-mnist", R_OK)) {
        printf("  recipe run skipped (no dino binary or no Fashion-MNIST)\n");
        return;
    }
    char out[8192], args[1024];
    snprintf(args, sizeof args,
             "train --arch resnet50 --optimizer sgd --lr 0.03 --weight_decay 1e-4 --weight_decay_end 1e-4 "
             "--global_crops_scale 0.14 1 --local_crops_scale 0.05 0.14 --data_path /usr/share/datasets/fashion-mnist "
             "--batch_size_per_gpu 2 --global_crop_size 32 --local_crop_size 16 --local_crops_number 2 "
             "--out_dim 256 --stop_after_steps 1 --num_workers 0 --threads 2 --output_dir /tmp/dino_test_resnet_recipe_%d",
             (int)getpid());
    int rc = test_run_dino(args, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "model: resnet50: 2048-d") && strstr(out, "optimizer sgd"),
          "dino train with the reference's resnet50 recipe flags runs an iteration (exit %d)", rc);
    if (rc) printf("%s\n", out);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/dino_test_resnet_recipe_%d", (int)getpid());
    if (system(cmd)) {}
    rc = test_run_dino("train --arch resnet_tiny --device cuda --stop_after_steps 1 --output_dir /tmp/unused", out,
                       sizeof out);
    // A CUDA build names the ResNet; a CPU-only build refuses the device itself.
    CHECK(rc != 0 && (strstr(out, "trains ViTs only") || strstr(out, "no CUDA")) && !strchr(out, '\n'),
          "dino train --arch resnet_tiny --device cuda refuses in one line: %s", out);
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    groups_and_ema();
    const struct {
        const char *opt, *file;
        int use_bn;
    } runs[] = {{"sgd", "resnet_train_sgd.bin", 0},
                {"lars", "resnet_train_lars.bin", 0},
                {"sgd", "resnet_train_sgd_bnhead.bin", 1}};
    for (int o = 0; o < 3; o++) {
        Fixture fx = fixture_load(runs[o].file);
        run_steps(&fx, runs[o].opt, runs[o].use_bn, 1);
        run_steps(&fx, runs[o].opt, runs[o].use_bn, 0);
        if (runs[o].opt[0] == 's') checkpoint_resume(&fx, runs[o].use_bn);
        fixture_free(&fx);
    }
    recipe_flags();
    return test_finish();
}
