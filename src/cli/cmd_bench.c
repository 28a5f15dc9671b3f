// `dino bench <what>`: timings on this machine. `forward` times the ViT
// backbone's inference pass (eval, no activations kept for backward), or with
// --backward the training forward plus backward, on random weights and images, and reports images/s and the achieved GFLOP/s
// next to the machine's plain sgemm rate measured in the same run, so the
// numbers can be compared with bench/bench_forward.py (PyTorch, same shapes).
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "rng.h"
#include "vit.h"

// Multiply-adds of one forward image: patch GEMM, per block 12·N·D² (qkv,
// proj, fc1, fc2 at MLP ratio 4) + 2·N²·D (scores and weighted sum).
static double vit_forward_macs(const ViTConfig *c, int H, int W) {
    double N = vit_tokens(c, H, W), D = c->dim, Np = N - 1, H4 = c->mlp_hidden;
    double patch = Np * D * c->in_chans * c->patch * c->patch;
    double block = N * D * 3 * D + N * D * D + 2 * N * D * H4 + 2 * N * N * D;
    return patch + c->depth * block;
}

static double sgemm_gflops(int n) {
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

static int bench_forward(int argc, char **argv) {
    const char *arch = "vit_small";
    int patch = 16, batch = 8, size = 224, height = 0, iters = 10, warmup = 1, backward = 0;
    ArgSpec specs[] = {
        {"arch", ARG_STRING, &arch, "vit_tiny, vit_small, vit_base (deit_* aliases)"},
        {"patch_size", ARG_INT, &patch, "patch size"},
        {"batch", ARG_INT, &batch, "images per forward pass"},
        {"size", ARG_INT, &size, "image width (and height unless --height)"},
        {"height", ARG_INT, &height, "image height (0: same as --size)"},
        {"iters", ARG_INT, &iters, "timed passes"},
        {"warmup", ARG_INT, &warmup, "untimed passes first"},
        {"backward", ARG_BOOL, &backward,
         "also run the backward pass (training activations, gradients of sum(tokens·R))"},
        {NULL, 0, NULL, NULL},
    };
    const char *pos[2];
    args_parse("bench", "dino bench forward [flags]", specs, argc, argv, pos, 2);
    if (batch <= 0 || size <= 0 || iters <= 0 || warmup < 0 || height < 0)
        dino_die("dino bench forward: --batch, --size and --iters must be positive");
    if (!height) height = size;
    ViTConfig cfg;
    if (vit_config_preset(&cfg, arch, patch) != 0)
        dino_die("dino bench forward: unknown --arch '%s' or bad --patch_size %d", arch, patch);
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
    for (int i = 0; i < warmup; i++) {
        vit_forward(&cfg, &w, a, images, batch, NULL);
        if (backward) vit_backward(&cfg, &w, &gw, a, dout, NULL);
    }
    double best = 1e30, total = 0;
    for (int i = 0; i < iters; i++) {
        double t0 = dino_now();
        vit_forward(&cfg, &w, a, images, batch, NULL);
        if (backward) vit_backward(&cfg, &w, &gw, a, dout, NULL);
        double dt = dino_now() - t0;
        total += dt;
        if (dt < best) best = dt;
    }
    // Backward: twice the forward's GEMM work (input and weight gradients).
    double mean = total / iters,
           flops = (backward ? 3.0 : 1.0) * 2.0 * vit_forward_macs(&cfg, height, size) * batch;
    printf("%s: mean %.4f s, best %.4f s per batch over %d iters\n",
           backward ? "forward+backward" : "forward", mean, best, iters);
    printf("images/s: %.2f (mean), %.2f (best)\n", batch / mean, batch / best);
    printf("GFLOP/s: %.1f (mean), %.1f (best); %.2f GFLOP per image\n", flops / mean / 1e9,
           flops / best / 1e9, flops / batch / 1e9);
    printf("sgemm 1024^3 on this machine: %.1f GFLOP/s\n", sgemm_gflops(1024));
    vit_acts_free(a);
    free(grads);
    free(dout);
    free(images);
    free(params);
    param_table_free(&t);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: dino bench forward [flags]   (dino bench forward --help)\n"
               "  forward   ViT inference pass: images/s and GFLOP/s\n");
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "forward")) return bench_forward(argc, argv);
    dino_die("dino bench: unknown benchmark '%s' (available: forward)", argv[1]);
}
