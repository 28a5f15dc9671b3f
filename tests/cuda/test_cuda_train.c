// One full DINO training step on the GPU against the CPU engine, tensor by
// tensor, at tiny dims and at ViT-S/16 dims (make CUDA=1 cuda-test; exit 77
// without a device). Both trainers start from the same seed; after each step
// the test compares the loss and entropies, the teacher and student logits,
// the logit gradient, every parameter gradient (after clipping), the updated
// student, the EMA teacher and the centre, with normalised errors
// ||gpu − cpu||₂ / ||cpu||₂ under the bounds stated in BOUNDS below (GEMMs in
// fp32 mode; a TF32 run gets the looser TF32 bounds; a bf16 run at ViT-S
// dims only sanity bounds, its errors are printed as a measurement). Then: a rerun from the
// same state is bit-identical (determinism), and a batch with a NaN pixel is
// refused with nothing changed.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "common.h"
#include "cuda/ops_cuda.h"
#include "cuda/train_cuda.h"
#include "device.h"
#include "../testlib.h"
#include "cuda_testutil.h"
#include "train/drop_path.h"
#include "train/trainer.h"

// Normalised error bounds (||Δ||/||ref||) for fp32 GEMMs and for TF32.
typedef struct {
    double logits, dlogits, grads, update, center, loss;
} Bounds;
static const Bounds BOUNDS_FP32 = {1e-4, 1e-3, 2e-3, 2e-2, 1e-4, 1e-5};
static const Bounds BOUNDS_TF32 = {5e-3, 3e-2, 5e-2, 1e-1, 5e-3, 1e-3};
// bf16 operands (8-bit mantissa) through 12 blocks: sanity bounds that catch
// a wrong layout or a missing term, not rounding; the printed errors are the
// measurement.
static const Bounds BOUNDS_BF16 = {1e-1, 5e-1, 1.0, 1.0, 1e-1, 5e-2};

static int check_rel(const char *what, const float *got, const float *want, size_t n, double bound) {
    double e = rel_l2(got, want, n);
    CHECK(e <= bound, "%-34s normalised error %.3e (bound %.0e, %zu values)", what, e, bound, n);
    return e <= bound;
}

// The updates of two runs from the same start: (new − old) compared.
static void check_update(const char *what, const float *gpu_new, const float *cpu_new,
                         const float *old, size_t n, double bound) {
    float *dg = mallocCheck(n * sizeof(float)), *dc = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        dg[i] = gpu_new[i] - old[i];
        dc[i] = cpu_new[i] - old[i];
    }
    check_rel(what, dg, dc, n, bound);
    free(dg);
    free(dc);
}

static Trainer *make_trainer(const TrainConfig *c, DeviceKind dev, const char *gemm) {
    TrainConfig x = *c;
    x.device = (int)dev;
    EngineOptions eo = {.cuda_gemm = gemm};
    char err[512];
    Trainer *t = trainer_create_with(&x, 10, &eo, err, sizeof err);
    if (!t) dino_die("trainer_create (%s): %s", device_name(dev), err);
    return t;
}

// Per-tensor gradient comparison; reports the worst tensor.
static void check_grads(const Trainer *cpu, const float *ggpu, double bound, const char *tag) {
    const ParamTable *tab = &cpu->model.table;
    double worst = 0;
    int wi = -1, bad = 0;
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->p[i];
        if (!p->trainable) continue;
        double e = rel_l2(ggpu + p->offset, cpu->grads + p->offset, p->numel);
        if (e > worst || wi < 0) worst = e, wi = i;
        if (e > bound) bad++;
    }
    CHECK(bad == 0, "%s: every parameter gradient within %.0e (worst %.3e: %s; %d over)", tag, bound, worst,
          wi >= 0 ? tab->p[wi].name : "-", bad);
    CHECK(rel_l2(ggpu, cpu->grads, tab->total) <= bound, "%s: the whole gradient buffer within %.0e", tag,
          bound);
}

// The CPU side's student logits, CLS features and dL/dlogits for the whole
// batch, computed before its step from the same weights, drop-path factors
// and centre (the CPU trainer runs the student a chunk of images at a time
// and keeps none of these for the whole batch).
typedef struct {
    float *logits, *features, *dlogits;
} RefRows;

static RefRows reference_rows(Trainer *cpu, const Batch *b) {
    const TrainConfig *c = &cpu->cfg;
    const int K = c->out_dim, rows = b->B * cpu->ncrops, D = cpu->model.vit.dim;
    const int64_t it = (int64_t)cpu->epoch * cpu->niter_per_ep + cpu->step;
    RefRows r;
    r.logits = mallocCheck((size_t)rows * K * sizeof(float));
    r.features = mallocCheck((size_t)rows * D * sizeof(float));
    r.dlogits = mallocCheck((size_t)rows * K * sizeof(float));
    MultiCropActs *ta = multicrop_acts_create(&cpu->model, b, 1, 0);
    float *tl = mallocCheck((size_t)2 * b->B * K * sizeof(float));
    memcpy(tl, multicrop_forward(&cpu->model, cpu->teacher, ta, b, NULL), (size_t)2 * b->B * K * sizeof(float));
    float *drop[BATCH_MAX_GROUPS] = {0};
    for (int g = 0; g < b->n_groups && c->drop_path_rate > 0; g++) {
        int Bg = b->groups[g].n_crops * b->B;
        drop[g] = mallocCheck((size_t)2 * cpu->model.vit.depth * Bg * sizeof(float));
        drop_path_scales(c->drop_path_rate, (uint64_t)c->seed, cpu->model.vit.depth, it, g, Bg, drop[g]);
    }
    MultiCropActs *sa = multicrop_acts_create(&cpu->model, b, b->n_groups, 0);
    memcpy(r.logits, multicrop_forward(&cpu->model, cpu->student, sa, b, drop), (size_t)rows * K * sizeof(float));
    memcpy(r.features, sa->features, (size_t)rows * D * sizeof(float));
    // Uses the current centre and changes no state the step reads.
    dino_loss_forward_backward(&cpu->loss, r.dlogits, r.logits, tl, b->B, cpu->epoch);
    for (int g = 0; g < BATCH_MAX_GROUPS; g++) free(drop[g]);
    multicrop_acts_free(sa);
    multicrop_acts_free(ta);
    free(tl);
    return r;
}

// One step on both engines from identical states, compared tensor by tensor.
static void compare_step(Trainer *cpu, Trainer *gpu, const Batch *b, const Bounds *bd,
                         const char *tag) {
    const size_t n = cpu->model.table.total;
    const int K = cpu->cfg.out_dim, rows = b->B * cpu->ncrops;
    float *old = mallocCheck(n * sizeof(float)), *told = mallocCheck(n * sizeof(float));
    memcpy(old, cpu->student, n * sizeof(float));
    memcpy(told, cpu->teacher, n * sizeof(float));
    StepStats sc, sg;
    RefRows ref = reference_rows(cpu, b);
    double t0 = dino_now();
    CHECK(trainer_step(cpu, b, &sc) == 0, "%s: CPU step", tag);
    double t1 = dino_now();
    CHECK(trainer_step(gpu, b, &sg) == 0, "%s: GPU step", tag);
    gpu->engine->ops->sync(gpu->engine);
    double t2 = dino_now();
    printf("%s: CPU step %.3f s, GPU step %.3f s (first steps include set-up)\n", tag, t1 - t0, t2 - t1);
    char what[96];
    double le = fabs(sg.loss - sc.loss) / fabs(sc.loss);
    CHECK(le <= bd->loss, "%s: loss gpu %.9g cpu %.9g, normalised error %.2e (bound %.0e)", tag, sg.loss, sc.loss,
          le, bd->loss);
    // Entropies: 1e-3 relative, or the loss's bound where that is looser
    // (the bf16 sanity run, whose errors are a measurement).
    const double he = bd->loss > 1e-3 ? bd->loss : 1e-3;
    CHECK(fabs(sg.teacher_entropy - sc.teacher_entropy) <= he * fabs(sc.teacher_entropy) + 1e-6 &&
              fabs(sg.teacher_mean_entropy - sc.teacher_mean_entropy) <= he * fabs(sc.teacher_mean_entropy) + 1e-6,
          "%s: teacher entropies %.6f/%.6f vs %.6f/%.6f (bound %.0e relative)", tag, sg.teacher_entropy,
          sg.teacher_mean_entropy, sc.teacher_entropy, sc.teacher_mean_entropy, he);
    CHECK(sg.lr == sc.lr && sg.wd == sc.wd && sg.momentum == sc.momentum, "%s: schedules identical", tag);

    float *buf = mallocCheck((size_t)rows * K * sizeof(float));
    cuda_engine_fetch(gpu->engine, CUDA_TENSOR_TEACHER_LOGITS, buf, (size_t)2 * b->B * K);
    snprintf(what, sizeof what, "%s: teacher logits", tag);
    check_rel(what, buf, train_engine_cpu_teacher_logits(cpu->engine), (size_t)2 * b->B * K, bd->logits);  // teacher: one pass
    cuda_engine_fetch(gpu->engine, CUDA_TENSOR_STUDENT_LOGITS, buf, (size_t)rows * K);
    snprintf(what, sizeof what, "%s: student logits", tag);
    check_rel(what, buf, ref.logits, (size_t)rows * K, bd->logits);
    cuda_engine_fetch(gpu->engine, CUDA_TENSOR_STUDENT_FEATURES, buf, (size_t)rows * cpu->model.vit.dim);
    snprintf(what, sizeof what, "%s: student CLS features", tag);
    check_rel(what, buf, ref.features, (size_t)rows * cpu->model.vit.dim, bd->logits);
    cuda_engine_fetch(gpu->engine, CUDA_TENSOR_DLOGITS, buf, (size_t)rows * K);
    snprintf(what, sizeof what, "%s: dloss/dstudent logits", tag);
    check_rel(what, buf, ref.dlogits, (size_t)rows * K, bd->dlogits);
    free(buf);
    free(ref.logits);
    free(ref.features);
    free(ref.dlogits);

    float *g = mallocCheck(n * sizeof(float));
    cuda_engine_fetch(gpu->engine, CUDA_TENSOR_GRADS, g, n);
    check_grads(cpu, g, bd->grads, tag);
    free(g);

    gpu->engine->ops->download(gpu->engine);
    snprintf(what, sizeof what, "%s: student update (AdamW)", tag);
    check_update(what, gpu->student, cpu->student, old, n, bd->update);
    snprintf(what, sizeof what, "%s: teacher update (EMA)", tag);
    check_update(what, gpu->teacher, cpu->teacher, told, n, bd->update);
    snprintf(what, sizeof what, "%s: centre", tag);
    check_rel(what, gpu->loss.center, cpu->loss.center, (size_t)K, bd->center);
    CHECK(!memcmp(gpu->opt.step, cpu->opt.step, (size_t)cpu->model.table.n * sizeof(int64_t)),
          "%s: AdamW step counts equal", tag);
    free(old);
    free(told);
    trainer_advance(cpu, &sc);
    trainer_advance(gpu, &sg);
    // Keep the two runs on the same trajectory: the next step starts from
    // the CPU's state on both engines, so each comparison is of one step.
    memcpy(gpu->student, cpu->student, n * sizeof(float));
    memcpy(gpu->teacher, cpu->teacher, n * sizeof(float));
    memcpy(gpu->opt.m, cpu->opt.m, n * sizeof(float));
    memcpy(gpu->opt.v, cpu->opt.v, n * sizeof(float));
    memcpy(gpu->loss.center, cpu->loss.center, (size_t)K * sizeof(float));
    gpu->engine->ops->upload(gpu->engine);
}

// Fresh CPU and GPU trainers (GEMMs in `gemm`) compared over one step on b.
static void compare_fresh(const TrainConfig *c, const char *gemm, const Batch *b, const Bounds *bd,
                          const char *tag) {
    Trainer *cpu = make_trainer(c, DEVICE_CPU, NULL), *gpu = make_trainer(c, DEVICE_CUDA, gemm);
    compare_step(cpu, gpu, b, bd, tag);
    trainer_free(cpu);
    trainer_free(gpu);
}

// Two GPU trainers from the same state give bit-identical results.
static void check_determinism(const TrainConfig *c, const Batch *b, const char *gemm, const char *tag) {
    Trainer *a = make_trainer(c, DEVICE_CUDA, gemm), *z = make_trainer(c, DEVICE_CUDA, gemm);
    StepStats sa, sz;
    int ok = 1;
    for (int s = 0; s < 3; s++) {
        CHECK(trainer_step(a, b, &sa) == 0 && trainer_step(z, b, &sz) == 0, "%s: determinism step %d", tag, s);
        ok &= sa.loss == sz.loss;
        trainer_advance(a, &sa);
        trainer_advance(z, &sz);
    }
    const size_t n = a->model.table.total;
    float *ga = mallocCheck(n * sizeof(float)), *gz = mallocCheck(n * sizeof(float));
    cuda_engine_fetch(a->engine, CUDA_TENSOR_GRADS, ga, n);
    cuda_engine_fetch(z->engine, CUDA_TENSOR_GRADS, gz, n);
    int grads_same = !memcmp(ga, gz, n * sizeof(float));
    a->engine->ops->download(a->engine);
    z->engine->ops->download(z->engine);
    CHECK(ok && grads_same && !memcmp(a->student, z->student, n * sizeof(float)) &&
              !memcmp(a->teacher, z->teacher, n * sizeof(float)) &&
              !memcmp(a->opt.v, z->opt.v, n * sizeof(float)) &&
              !memcmp(a->loss.center, z->loss.center, (size_t)c->out_dim * sizeof(float)),
          "%s: rerun after 3 steps is bit-identical (loss, gradients, student, teacher, moments, centre)", tag);
    free(ga);
    free(gz);
    trainer_free(a);
    trainer_free(z);
}

// A non-finite loss: -1, and no state changed.
static void check_nan_refusal(const TrainConfig *c, Batch *b) {
    Trainer *t = make_trainer(c, DEVICE_CUDA, "fp32");
    const size_t n = t->model.table.total;
    float *before = mallocCheck(n * sizeof(float)), *tbefore = mallocCheck(n * sizeof(float));
    memcpy(before, t->student, n * sizeof(float));
    memcpy(tbefore, t->teacher, n * sizeof(float));
    float saved = b->groups[0].pixels[0];
    b->groups[0].pixels[0] = NAN;
    StepStats st;
    int rc = trainer_step(t, b, &st);
    b->groups[0].pixels[0] = saved;
    t->engine->ops->download(t->engine);
    int64_t steps = 0;
    for (int i = 0; i < t->model.table.n; i++) steps += t->opt.step[i];
    CHECK(rc == -1 && !memcmp(before, t->student, n * sizeof(float)) &&
              !memcmp(tbefore, t->teacher, n * sizeof(float)) && steps == 0,
          "a NaN pixel: step refused (rc %d, loss %g), student, teacher and step counts unchanged", rc, st.loss);
    CHECK(trainer_step(t, b, &st) == 0 && isfinite(st.loss), "the next finite batch trains (loss %.4f)", st.loss);
    free(before);
    free(tbefore);
    trainer_free(t);
}

static void tiny_config(TrainConfig *c) {
    train_config_default(c);
    c->arch = "vit_tiny";
    c->patch_size = 4;
    c->img_size = 16;
    c->embed_dim = 64;
    c->depth = 2;
    c->num_heads = 2;
    c->out_dim = 512;
    c->head_hidden_dim = 96;
    c->head_bottleneck_dim = 32;
    c->global_crop_size = 16;
    c->local_crop_size = 8;
    c->local_crops_number = 3;
    c->batch_size_per_gpu = 4;
    c->epochs = 4;
    c->warmup_epochs = 0;  // a non-zero learning rate at step 0
    c->freeze_last_layer = 0;
    c->drop_path_rate = 0.1f;
    c->quiet = 1;
}

static void vits_config(TrainConfig *c) {
    train_config_default(c);  // ViT-S/16, 224/96 crops, out_dim 65536
    c->local_crops_number = 8;
    c->batch_size_per_gpu = 2;
    c->epochs = 4;
    c->warmup_epochs = 0;
    c->freeze_last_layer = 0;
    c->quiet = 1;
}

int main(void) {
    int ndev = cuda_device_count();
    if (ndev <= 0) {
        printf("test_cuda_train: no CUDA device found; skipped (exit 77)\n");
        return 77;
    }
    dino_set_threads(0);
    TrainConfig c;
    tiny_config(&c);
    Batch b = batch_synthetic(c.batch_size_per_gpu, c.global_crop_size, c.local_crops_number, c.local_crop_size, 100);
    {
        Trainer *cpu = make_trainer(&c, DEVICE_CPU, NULL), *gpu = make_trainer(&c, DEVICE_CUDA, "fp32");
        printf("device: %s\n", gpu->engine->ops->describe(gpu->engine));
        for (int s = 0; s < 3; s++) {
            char tag[64];
            snprintf(tag, sizeof tag, "tiny fp32 step %d", s);
            Batch bs = batch_synthetic(c.batch_size_per_gpu, c.global_crop_size, c.local_crops_number,
                                  c.local_crop_size, 200 + 10 * (uint64_t)s);
            compare_step(cpu, gpu, &bs, &BOUNDS_FP32, tag);
            batch_free(&bs);
        }
        trainer_free(cpu);
        trainer_free(gpu);
    }
    compare_fresh(&c, "tf32", &b, &BOUNDS_TF32, "tiny tf32");
    check_determinism(&c, &b, "fp32", "tiny fp32");
    check_nan_refusal(&c, &b);
    batch_free(&b);

    vits_config(&c);
    b = batch_synthetic(c.batch_size_per_gpu, c.global_crop_size, c.local_crops_number, c.local_crop_size, 300);
    compare_fresh(&c, "fp32", &b, &BOUNDS_FP32, "ViT-S/16 fp32");
    compare_fresh(&c, "bf16", &b, &BOUNDS_BF16, "ViT-S/16 bf16 (sanity bounds)");
    check_determinism(&c, &b, "bf16", "ViT-S/16 bf16");
    batch_free(&b);
    return test_finish();
}
