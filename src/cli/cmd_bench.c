// `dino bench <what>`: timings on this machine. `forward` times the ViT
// backbone's inference pass (eval, no activations kept for backward), or with
// --backward the training forward plus backward, on random weights and images, and reports images/s and the achieved GFLOP/s
// next to the machine's plain sgemm rate measured in the same run, so the
// numbers can be compared with bench/bench_forward.py (PyTorch, same shapes).
// `attention` times the attention core both ways (our per-head kernel,
// oneDNN batched matmuls) at ViT-S/16's 197 and 37 tokens.
// `gemm` times the GEMM backends of src/gemm.h side by side on the shapes
// that decide the fp32 backend (docs/ENGINE.md, "GEMM backends").
// `train` builds a Trainer (src/train/trainer.h) and times trainer_step on a
// synthetic multi-crop batch (bench/bench_train.py is PyTorch's side). Both
// report the median step, the analytic GFLOP/s, the peak RSS, and with
// DINO_PROFILE=1 where the time of a step goes by layer kind.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "args.h"
#include "commands.h"
#include "eval_common.h"
#include "common.h"
#include "device.h"
#include "gemm.h"
#include "head.h"
#include "ops.h"
#include "profile.h"
#include "rng.h"
#include "train/trainer.h"
#include "train_env.h"
#include "vit.h"

int bench_resnet(int argc, char **argv);  // cmd_bench_resnet.c
double sgemm_gflops(int n);               // an n³ sgemm's GFLOP/s, measured now

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Peak resident set of this process in MiB (Linux reports ru_maxrss in KiB).
static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

// CPU seconds this process has used (all threads).
static double process_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Multiply-adds of one forward image: patch GEMM, per block 12·N·D² (qkv,
// proj, fc1, fc2 at MLP ratio 4) + 2·N²·D (scores and weighted sum).
static double vit_forward_macs(const ViTConfig *c, int H, int W) {
    double N = vit_tokens(c, H, W), D = c->dim, Np = N - 1, H4 = c->mlp_hidden;
    double patch = Np * D * c->in_chans * c->patch * c->patch;
    double block = N * D * 3 * D + N * D * D + 2 * N * D * H4 + 2 * N * N * D;
    return patch + c->depth * block;
}

double sgemm_gflops(int n) {
    float *a = alignedAllocCheck((size_t)n * n * sizeof(float));
    float *b = alignedAllocCheck((size_t)n * n * sizeof(float));
    float *c = alignedAllocCheck((size_t)n * n * sizeof(float));
    fixture_fill(a, (size_t)n * n, 1, -1, 1);
    fixture_fill(b, (size_t)n * n, 2, -1, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    int reps = 3;
    double t0 = dino_now();
    for (int r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double dt = dino_now() - t0;
    free(a), free(b), free(c);
    return 2.0 * n * n * (double)n * reps / dt / 1e9;
}

// Which GEMMs a run uses: the precision, the backend and, for oneDNN, its
// implementation for the qkv Linear of this run (rows x 3D x D).
static void print_precision(int bf16, int rows, int dim) {
    char impl[200];
    if (bf16 && gemm_autocast_bf16()) {
        if (gemm_bf16_backend() == GEMM_BF16_ONEDNN) {
            gemm_onednn_impl(1, rows, 3 * dim, dim, impl, sizeof impl);
            printf("precision: bf16 (oneDNN %s, ISA %s)\n", impl, gemm_onednn_isa_name());
        } else {
            printf("precision: bf16 emulated (DINO_BF16=emulate: bf16-rounded inputs, OpenBLAS fp32 sgemm)\n");
        }
        return;
    }
    GemmF32Backend be = gemm_f32_backend();
    if (be == GEMM_ONEDNN) gemm_onednn_impl(0, rows, 3 * dim, dim, impl, sizeof impl);
    printf("precision: fp32 (%s%s%s, oneDNN ISA %s)\n", gemm_f32_backend_name(be), be == GEMM_ONEDNN ? " " : "",
           be == GEMM_ONEDNN ? impl : "", gemm_onednn_isa_name());
}

static double gemm_rate(int which, int M, int N, int K, int reps);

// The bf16 GEMM roofline: oneDNN bf16 at 1024^3, or why there is none.
static void print_bf16_roofline(void) {
    char why[200];
    if (!gemm_bf16_native_available(why, sizeof why)) printf("bf16 gemm 1024^3: n/a: %s\n", why);
    else printf("bf16 gemm 1024^3 on this machine (oneDNN): %.1f GFLOP/s\n", gemm_rate(2, 1024, 1024, 1024, 3));
}

// Timed passes or steps: one time each is kept; a million ViT-S passes take
// days already.
#define BENCH_MAX_ITERS 1000000

// An environment switch: set to anything but "" or "0".
static int env_flag(const char *name) {
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
}

static int bench_forward(int argc, char **argv) {
    const char *arch = "vit_small";
    int patch = 16, batch = 8, size = 224, height = 0, iters = 10, warmup = 1, backward = 0, use_bf16 = 0;
    ArgSpec specs[] = {
        {"arch", ARG_STRING, &arch, "vit_tiny, vit_small, vit_base (deit_* aliases), or dinov2_vits14 (LayerScale, patch 14)"},
        {"patch_size", ARG_INT, &patch, "patch size", ARG_RANGE(1, ARG_MAX_PATCH)},
        {"batch", ARG_INT, &batch, "images per forward pass", ARG_RANGE(1, ARG_MAX_BATCH)},
        {"size", ARG_INT, &size, "image width (and height unless --height)", ARG_RANGE(1, ARG_MAX_IMAGE_SIDE)},
        {"height", ARG_INT, &height, "image height (0: same as --size)", ARG_RANGE(0, ARG_MAX_IMAGE_SIDE)},
        {"iters", ARG_INT, &iters, "timed passes", ARG_RANGE(1, BENCH_MAX_ITERS)},
        {"warmup", ARG_INT, &warmup, "untimed passes first", ARG_RANGE(0, BENCH_MAX_ITERS)},
        {"backward", ARG_BOOL, &backward,
         "also run the backward pass (training activations, gradients of sum(tokens·R))"},
        EVAL_USE_BF16_ARG_SPEC(use_bf16),
        {NULL, 0, NULL, NULL},
    };
    args_parse("bench forward", "[flags]", specs, argc - 1, argv + 1, NULL, 0);
    profile_set(env_flag("DINO_PROFILE"));
    if (!height) height = size;
    ViTConfig cfg;
    // DINOv2's ViT-S/14 with its position grid made for the benchmark's size
    // (as timm's vit_small_patch14_dinov2 at img_size=size): no resize per pass.
    int dinov2 = !strcmp(arch, "dinov2_vits14");
    if (dinov2) arch = "vit_small", patch = 14;
    if (vit_config_preset(&cfg, arch, patch) != 0)
        dino_die("dino bench forward: unknown --arch '%s' or bad --patch_size %d", arch, patch);
    if (dinov2) cfg.layerscale = 1, cfg.img_size = size / patch * patch;
    if (size < patch || height < patch)
        dino_die("dino bench forward: the image (%dx%d) is smaller than one patch (%d)", height,
                 size, patch);
    char desc[256];
    vit_config_describe(&cfg, desc, sizeof desc);

    ParamTable t;
    param_table_init(&t);
    vit_param_table(&cfg, &t, "");
    float *params = alignedAllocCheck(t.total * sizeof(float));
    ViTWeights w;
    vit_weights_bind(&w, &cfg, params);
    vit_init(&cfg, &w, 0);
    eval_use_bf16(use_bf16, params, t.total);
    size_t nimg = (size_t)batch * cfg.in_chans * height * size;
    float *images = alignedAllocCheck(nimg * sizeof(float));
    fixture_fill(images, nimg, 3, -2.0f, 2.0f);
    ViTActs *a = vit_acts_create(&cfg, batch, height, size, backward);
    float *grads = NULL, *dout = NULL;
    ViTWeights gw;
    if (backward) {
        grads = callocCheck(t.total, sizeof(float));
        vit_weights_bind(&gw, &cfg, grads);
        size_t nt = (size_t)batch * vit_acts_tokens(a) * cfg.dim;
        dout = alignedAllocCheck(nt * sizeof(float));
        fixture_fill(dout, nt, 4, -1.0f, 1.0f);
    }

    printf("model: %s\n", desc);
    printf("input: batch %d, %dx%d, threads %d\n", batch, height, size, dino_get_threads());
    print_precision(use_bf16, batch * vit_tokens(&cfg, height, size), cfg.dim);
    for (int i = 0; i < warmup; i++) {
        vit_forward(&cfg, &w, a, images, batch, NULL);
        if (backward) vit_backward(&cfg, &w, &gw, a, dout, NULL);
    }
    double best = 1e30, total = 0;
    double *times = mallocCheck((size_t)iters * sizeof(double));
    for (int i = 0; i < iters; i++) {
        double t0 = dino_now();
        vit_forward(&cfg, &w, a, images, batch, NULL);
        if (backward) vit_backward(&cfg, &w, &gw, a, dout, NULL);
        double dt = dino_now() - t0;
        times[i] = dt;
        total += dt;
        if (dt < best) best = dt;
    }
    double med = median(times, iters);
    free(times);
    // Backward: twice the forward's GEMM work (input and weight gradients).
    double mean = total / iters,
           flops = (backward ? 3.0 : 1.0) * 2.0 * vit_forward_macs(&cfg, height, size) * batch;
    printf("%s: mean %.4f s, best %.4f s per batch over %d iters\n",
           backward ? "forward+backward" : "forward", mean, best, iters);
    printf("images/s: %.2f (mean), %.2f (best)\n", batch / mean, batch / best);
    printf("GFLOP/s: %.1f (mean), %.1f (best); %.2f GFLOP per image\n", flops / mean / 1e9,
           flops / best / 1e9, flops / batch / 1e9);
    printf("median: %.4f s per batch, %.2f images/s, %.1f GFLOP/s\n", med, batch / med,
           flops / med / 1e9);
    printf("peak RSS: %.1f MiB\n", peak_rss_mib());
    printf("sgemm 1024^3 on this machine: %.1f GFLOP/s\n", sgemm_gflops(1024));
    if (use_bf16) print_bf16_roofline();
    vit_acts_free(a);
    free(grads);
    free(dout);
    free(images);
    free(params);
    param_table_free(&t);
    return 0;
}

// One GEMM shape as a Linear: C (M,N) = A (M,K) · Bᵀ, B stored (N,K).
typedef struct {
    int M, N, K;
} GemmShape;

// Median GFLOP/s of `reps` timed calls after one untimed one. which: 0
// OpenBLAS, 1 oneDNN fp32, 2 oneDNN bf16 on operands packed beforehand (-1
// when the CPU has no bf16).
static double gemm_rate(int which, int M, int N, int K, int reps) {
    GemmShape s = {M, N, K};
    size_t na = (size_t)s.M * s.K, nb = (size_t)s.N * s.K;
    float *a = alignedAllocCheck(na * sizeof(float)), *b = alignedAllocCheck(nb * sizeof(float));
    float *c = alignedAllocCheck((size_t)s.M * s.N * sizeof(float));
    uint16_t *ah = alignedAllocCheck(na * sizeof(uint16_t)), *bh = alignedAllocCheck(nb * sizeof(uint16_t));
    fixture_fill(a, na, 1, -1, 1);
    fixture_fill(b, nb, 2, -1, 1);
    bf16_pack(ah, a, na);
    bf16_pack(bh, b, nb);
    double *t = mallocCheck((size_t)reps * sizeof(double)), rate = -1;
    if (which < 2) gemm_set_f32_backend(which ? GEMM_ONEDNN : GEMM_OPENBLAS, NULL, 0);
    for (int r = -1; r < reps; r++) {
        double t0 = dino_now();
        if (which < 2) gemm_f32(GEMM_N, GEMM_T, s.M, s.N, s.K, 1.0f, a, s.K, b, s.K, 0.0f, c, s.N);
        else if (gemm_bf16_native(GEMM_N, GEMM_T, s.M, s.N, s.K, 1.0f, ah, s.K, bh, s.K, 0.0f, c, s.N))
            goto out;
        if (r >= 0) t[r] = dino_now() - t0;
    }
    rate = 2.0 * s.M * s.N * (double)s.K / median(t, reps) / 1e9;
out:
    free(a), free(b), free(c), free(ah), free(bh), free(t);
    return rate;
}

static int bench_gemm(int argc, char **argv) {
    int reps = 5;
    ArgSpec specs[] = {
        {"reps", ARG_INT, &reps, "timed calls per shape and backend (the median is printed)",
         ARG_RANGE(1, 10000)},
        {NULL, 0, NULL, NULL},
    };
    args_parse("bench gemm", "[flags]", specs, argc - 1, argv + 1, NULL, 0);
    // 1024³, then ViT-S/16 at 224, batch 8 (1576 tokens): qkv, fc1, fc2.
    static const GemmShape shapes[] = {
        {1024, 1024, 1024}, {1576, 1152, 384}, {1576, 1536, 384}, {1576, 384, 1536}};
    GemmF32Backend chosen = gemm_f32_backend();
    char why[200], impl[160];
    int bf16 = gemm_bf16_native_available(why, sizeof why);
    printf("threads %d; oneDNN ISA: %s; fp32 backend chosen here: %s (rule: %s)\n",
           dino_get_threads(), gemm_onednn_isa_name(), gemm_f32_backend_name(chosen),
           gemm_f32_backend_name(gemm_f32_auto_backend()));
    if (!bf16) printf("bf16: n/a: %s\n", why);
    printf("%-16s %10s %10s %10s  %s\n", "M x N x K", "OpenBLAS", "oneDNN", "oneDNN", "oneDNN implementation");
    printf("%-16s %10s %10s %10s\n", "", "fp32", "fp32", "bf16");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        GemmShape s = shapes[i];
        char dims[32], hb[16] = "n/a";
        snprintf(dims, sizeof dims, "%dx%dx%d", s.M, s.N, s.K);
        double ob = gemm_rate(0, s.M, s.N, s.K, reps), od = gemm_rate(1, s.M, s.N, s.K, reps),
               oh = gemm_rate(2, s.M, s.N, s.K, reps);
        if (oh > 0) snprintf(hb, sizeof hb, "%.1f", oh);
        gemm_onednn_impl(0, s.M, s.N, s.K, impl, sizeof impl);
        printf("%-16s %10.1f %10.1f %10s  fp32 %s", dims, ob, od, hb, impl);
        gemm_onednn_impl(1, s.M, s.N, s.K, impl, sizeof impl);
        printf("; bf16 %s\n", bf16 ? impl : "n/a");
    }
    printf("GFLOP/s, median of %d calls each; C = A·Bᵀ as a Linear\n", reps);
    gemm_set_f32_backend(chosen, NULL, 0);
    return 0;
}

// Medians of `reps` calls of each method, the two alternated call by call
// (a shared machine's load then weighs on both alike), after one untimed
// call each; t[1] < 0 where oneDNN cannot run it.
static void attention_times(double t[2], float *o1, float *o2, float *S, const float *qkv, int B,
                            int T, int D, int NH, int reps) {
    double *v = mallocCheck((size_t)2 * reps * sizeof(double));
    int ok = 1;
    for (int r = -1; r < reps; r++) {
        double t0 = dino_now();
        attention_forward(o1, NULL, qkv, B, T, D, NH);
        double t1 = dino_now();
        if (ok) ok = attention_forward_batched(o2, S, qkv, B, T, D, NH) == 0;
        double t2 = dino_now();
        if (r >= 0) v[r] = t1 - t0, v[reps + r] = t2 - t1;
    }
    t[0] = median(v, reps);
    t[1] = ok ? median(v + reps, reps) : -1;
    free(v);
}

static int bench_attention(int argc, char **argv) {
    int reps = 10;
    ArgSpec specs[] = {
        {"reps", ARG_INT, &reps, "timed calls per case and method (the median is printed)", ARG_RANGE(1, 10000)},
        {NULL, 0, NULL, NULL},
    };
    args_parse("bench attention", "[flags]", specs, argc - 1, argv + 1, NULL, 0);
    // ViT-S/16: 6 heads of 64; 8 images at 224 (197 tokens), 16 crops at 96 (37).
    static const struct {
        int B, T;
    } cases[] = {{8, 197}, {16, 37}};
    const int D = 384, NH = 6;
    printf("threads %d; ViT-S/16 attention core (D %d, %d heads), forward only, fp32\n", dino_get_threads(), D, NH);
    printf("%-18s %14s %14s %12s\n", "case", "ours ms", "oneDNN ms", "max |diff|");
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int B = cases[c].B, T = cases[c].T;
        size_t nq = (size_t)B * T * 3 * D, no = (size_t)B * T * D;
        float *qkv = alignedAllocCheck(nq * sizeof(float)), *o1 = alignedAllocCheck(no * sizeof(float));
        float *o2 = alignedAllocCheck(no * sizeof(float));
        float *S = alignedAllocCheck((size_t)B * NH * T * T * sizeof(float));
        fixture_fill(qkv, nq, 5, -2.0f, 2.0f);
        double t[2];
        attention_times(t, o1, o2, S, qkv, B, T, D, NH, reps);
        double a = t[0], b = t[1];
        double diff = 0;
        for (size_t i = 0; b >= 0 && i < no; i++) diff = fmax(diff, fabs((double)o1[i] - o2[i]));
        char name[32], bs[32] = "n/a", ds[32] = "n/a";
        snprintf(name, sizeof name, "%d x %d tokens", B, T);
        if (b >= 0) snprintf(bs, sizeof bs, "%.3f", b * 1e3), snprintf(ds, sizeof ds, "%.2e", diff);
        printf("%-18s %14.3f %14s %12s\n", name, a * 1e3, bs, ds);
        free(qkv), free(o1), free(o2), free(S);
    }
    printf("median of %d calls each, alternated; oneDNN: S = scale·Q·Kᵀ and out = softmax(S)·V as one batched matmul each\n", reps);
    return 0;
}

// Multiply-adds of the DINO head on one row (MLP, then the last layer).
static double head_macs(const HeadConfig *h) {
    double m = 0, in = h->in_dim;
    for (int i = 0; i < h->nlayers; i++) {
        double out = i == h->nlayers - 1 ? h->bottleneck : h->hidden;
        m += in * out;
        in = out;
    }
    return m + (double)h->bottleneck * h->out_dim;
}

// DINO_PROFILE=1: the model's layer kinds per step, then (profile_parts) the
// trainer's own passes timed once each on its buffers, outside the step.
static void print_train_profile(Trainer *t, const TrainConfig *tc, double total, int iters,
                                int profile_parts) {
    double prof = 0;
    printf("profile (DINO_PROFILE=1, wall seconds per step, of mean step %.4f s):\n", total / iters);
    for (int k = 0; k < PROF_NKINDS; k++) {
        double sec = profile_seconds((ProfKind)k) / iters;
        prof += sec;
        printf("  %-22s %8.4f s %5.1f%%\n", profile_name((ProfKind)k), sec, 100 * sec * iters / total);
    }
    printf("  %-22s %8.4f s %5.1f%%\n", "(model total)", prof, 100 * prof * iters / total);
    if (profile_parts) {
        // The trainer's own passes, timed once each on its buffers (outside the step).
        const ParamTable *tab = &t->model.table;
        double a0 = dino_now(), a1 = a0;  // (the loss is a profile kind inside the step)
        clip_gradients(tab, t->grads, (float)tc->clip_grad, t->skip, t->grad_norms);
        double a2 = dino_now();
        optim_step(&t->opt, t->student, t->grads, 1e-4, 0.04, t->skip);
        double a3 = dino_now();
        ema_update(t->teacher, t->student, tab->total, 0.996);
        double a4 = dino_now();
        memset(t->grads, 0, tab->total * sizeof(float));
        double a5 = dino_now();
        double parts = (a5 - a0), step = total / iters;
        printf("  %-22s %8.4f s %5.1f%%\n", "clip_gradients", a2 - a1, 100 * (a2 - a1) / step);
        printf("  %-22s %8.4f s %5.1f%%\n", "AdamW", a3 - a2, 100 * (a3 - a2) / step);
        printf("  %-22s %8.4f s %5.1f%%\n", "EMA", a4 - a3, 100 * (a4 - a3) / step);
        printf("  %-22s %8.4f s %5.1f%%\n", "zero grads", a5 - a4, 100 * (a5 - a4) / step);
        printf("  %-22s %8.4f s %5.1f%%\n", "(unaccounted)", step - prof - parts,
               100 * (step - prof - parts) / step);
    }
}

static int bench_train(int argc, char **argv) {
    const char *preset = "default", *device = "cpu";
    int batch = 0, iters = 3, warmup = 1, print_config = 0, profile_parts = 1, use_bf16 = 0;
    ArgSpec specs[] = {
        {"preset", ARG_STRING, &preset, "default (ViT-S/16, 2x224 + 8x96, out_dim 65536) or fmnist"},
        {"batch", ARG_INT, &batch, "images per step (0: 8 for default, the preset's for fmnist)", ARG_RANGE(0, ARG_MAX_BATCH)},
        {"iters", ARG_INT, &iters, "timed steps", ARG_RANGE(1, BENCH_MAX_ITERS)},
        {"warmup", ARG_INT, &warmup, "untimed steps first", ARG_RANGE(0, BENCH_MAX_ITERS)},
        {"print_config", ARG_BOOL, &print_config,
         "print the configuration as flags for bench/bench_train.py and exit"},
        {"profile_parts", ARG_BOOL, &profile_parts,
         "with DINO_PROFILE=1, also time clipping, AdamW and EMA once each"},
        {"device", ARG_STRING, &device, "cpu, or cuda (make CUDA=1): time the step on the GPU"},
        EVAL_USE_BF16_ARG_SPEC(use_bf16),
        {NULL, 0, NULL, NULL},
    };
    args_parse("bench train", "[flags]", specs, argc - 1, argv + 1, NULL, 0);
    DeviceKind dk;
    char derr[256];
    if (device_parse(device, &dk, derr, sizeof derr)) dino_die("dino bench train: %s", derr);
    TrainConfig tc;
    train_config_default(&tc);
    tc.device = (int)dk;
    if (!strcmp(preset, "fmnist")) train_config_preset_fmnist(&tc);
    else if (strcmp(preset, "default") != 0)
        dino_die("dino bench train: unknown --preset '%s' (default, fmnist)", preset);
    tc.use_bf16 = use_bf16;
    if (use_bf16 && dk == DEVICE_CUDA) dino_die("dino bench train: --use_bf16 runs on the CPU only");
    tc.batch_size_per_gpu = batch ? batch : (!strcmp(preset, "fmnist") ? tc.batch_size_per_gpu : 8);
    tc.freeze_last_layer = 0;  // time the full step: the last layer is updated too
    // bench/bench_train.py has the reference's loss, so both sides centre
    // and leave KoLeo out (the fmnist preset itself trains with the
    // Sinkhorn-Knopp teacher and KoLeo).
    tc.centering = "centering";
    tc.koleo_loss_weight = 0;
    tc.quiet = 1;
    ViTConfig vc;
    HeadConfig hc;
    char err[512];
    if (train_config_model(&tc, &vc, &hc, err, sizeof err)) dino_die("dino bench train: %s", err);
    const int B = tc.batch_size_per_gpu, G = tc.global_crop_size, Lc = tc.local_crop_size,
              NL = tc.local_crops_number;
    if (print_config) {
        printf("--embed_dim %d --depth %d --num_heads %d --patch_size %d --img_size %d "
               "--global_crop_size %d --local_crop_size %d --local_crops_number %d --batch %d "
               "--out_dim %d --head_hidden_dim %d --head_bottleneck_dim %d --drop_path_rate %g "
               "--clip_grad %g --momentum_teacher %g --teacher_temp %g\n",
               vc.dim, vc.depth, vc.heads, vc.patch, vc.img_size, G, Lc, NL, B, hc.out_dim,
               hc.hidden, hc.bottleneck, (double)vc.drop_path_rate, tc.clip_grad,
               tc.momentum_teacher, tc.warmup_teacher_temp);
        return 0;
    }
    profile_set(env_flag("DINO_PROFILE"));
    TrainHooks hooks;
    train_hooks_from_env(&hooks);  // DINO_TRAIN_CHUNK_KIB, DINO_CUDA_DEBUG_SYNC
    Trainer *t = trainer_create_with(&tc, 1000, &hooks.engine, err, sizeof err);
    if (!t) dino_die("dino bench train: %s", err);

    Batch b = batch_synthetic(B, G, NL, Lc, 10);

    char desc[256];
    vit_config_describe(&vc, desc, sizeof desc);
    printf("model: %s; head %d-%d-%d -> %d\n", desc, hc.hidden, hc.hidden, hc.bottleneck, hc.out_dim);
    printf("batch %d: 2x%d + %dx%d crops, threads %d\n", B, G, NL, Lc, dino_get_threads());
    if (t->engine->kind == DEVICE_CUDA) printf("device: %s\n", t->engine->ops->describe(t->engine));
    else print_precision(use_bf16, B * 2 * vit_tokens(&vc, G, G), vc.dim);
    StepStats st;
    for (int i = 0; i < warmup; i++) {
        if (trainer_step(t, &b, &st)) dino_die("dino bench train: non-finite loss");
        trainer_advance(t, &st);
    }
    t->engine->ops->sync(t->engine);
    profile_reset();
    double *times = mallocCheck((size_t)iters * sizeof(double)), total = 0;
    double cpu0 = process_cpu_seconds();
    for (int i = 0; i < iters; i++) {
        double t0 = dino_now();
        if (trainer_step(t, &b, &st)) dino_die("dino bench train: non-finite loss");
        // On the GPU a step returns with its optimizer tail still queued (the
        // next upload overlaps it): steady-state steps are timed back to
        // back, and the last one also waits for the device to finish.
        if (i == iters - 1) t->engine->ops->sync(t->engine);
        times[i] = dino_now() - t0;
        total += times[i];
        trainer_advance(t, &st);
    }
    double cpu = (process_cpu_seconds() - cpu0) / iters;
    double med = median(times, iters);
    // FLOPs: student forward + backward (3x forward) over all crops, teacher
    // forward over the global crops; backbone and head.
    double hm = head_macs(&hc);
    double fg = vit_forward_macs(&vc, G, G) + hm, fl = vit_forward_macs(&vc, Lc, Lc) + hm;
    double flops = 2.0 * B * (3.0 * (2 * fg + NL * fl) + 2 * fg);
    printf("loss %.4f\n", st.loss);
    printf("train step: median %.4f s, mean %.4f s over %d steps\n", med, total / iters, iters);
    printf("images/s: %.3f (median)\n", B / med);
    printf("GFLOP/s: %.1f (median); %.2f GFLOP per image\n", flops / med / 1e9, flops / B / 1e9);
    printf("peak RSS: %.1f MiB\n", peak_rss_mib());
    // On a shared machine the CPU time is steadier than the wall time (it
    // still counts the threads' spinning at barriers).
    printf("CPU time per step: %.4f s (all threads, mean)\n", cpu);
    if (dino_prof_on && t->engine->kind != DEVICE_CUDA) print_train_profile(t, &tc, total, iters, profile_parts);
    printf("params: %zu floats (student, teacher, grads, 2 AdamW moments)\n", t->model.table.total);
    printf("sgemm 1024^3 on this machine: %.1f GFLOP/s\n", sgemm_gflops(1024));
    if (use_bf16) print_bf16_roofline();
    free(times);
    batch_free(&b);
    trainer_free(t);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: dino bench forward|train|gemm|attention [flags]   (dino bench forward --help)\n"
               "  forward   ViT inference pass: images/s and GFLOP/s\n"
               "  gemm      OpenBLAS, oneDNN fp32 and oneDNN bf16 GEMM rates at 1024^3 and ViT-S shapes\n"
               "  attention the attention core: our kernel against oneDNN batched matmuls\n"
               "  train     one DINO training step (trainer_step) on synthetic crops\n"
               "  resnet    ResNet-50: inference, or the DINO step's passes (--step)\n");
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "forward")) return bench_forward(argc, argv);
    if (!strcmp(argv[1], "train")) return bench_train(argc, argv);
    if (!strcmp(argv[1], "resnet")) return bench_resnet(argc, argv);
    if (!strcmp(argv[1], "gemm")) return bench_gemm(argc, argv);
    if (!strcmp(argv[1], "attention")) return bench_attention(argc, argv);
    dino_die("dino bench: unknown benchmark '%s' (available: forward, train, resnet, gemm, attention)", argv[1]);
}
