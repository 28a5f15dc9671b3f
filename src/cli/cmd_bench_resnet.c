// `dino bench resnet`: ResNet-50 timings on this machine, on random weights
// and images. Without --step: the inference pass (evaluation mode) of
// --batch images of --size px. With --step: the passes of a DINO training
// step with a ResNet-50 backbone and the default head (2048 -> 2048 -> 2048
// -> 256 -> 65536) on --batch images with 2 global crops of 224 px and 8
// local crops of 96 px: the teacher's forward over the global crops (train
// mode, no stored activations) and the student's multicrop training pass
// (forward, a loss gradient, backward over every crop), which is what the
// trainer runs before the optimizer and the EMA (those are O(parameters)).
// Reports the median time, GFLOP/s of the convolutions and the peak RSS.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "args.h"
#include "batch.h"
#include "common.h"
#include "model.h"
#include "resnet.h"
#include "rng.h"

int bench_resnet(int argc, char **argv);
double sgemm_gflops(int n);  // cmd_bench.c

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The step's loss gradient: a fixed small dL/dlogits (the DINO loss's own
// cost is not the backbone's).
static void fixed_grad(void *ctx, float *dlogits, const float *logits, int row0, int nrows) {
    (void)logits, (void)row0;
    size_t n = (size_t)nrows * *(const int *)ctx;
    for (size_t i = 0; i < n; i++) dlogits[i] = 1e-4f * (float)((int)(i % 7) - 3);
}

int bench_resnet(int argc, char **argv) {
    int batch = 8, size = 224, iters = 3, warmup = 1, step = 0, out_dim = 65536;
    ArgSpec specs[] = {
        {"batch", ARG_INT, &batch, "images per pass (with --step: images, each with 2 + 8 crops)", ARG_RANGE(1, 4096)},
        {"size", ARG_INT, &size, "image side without --step", ARG_RANGE(16, 2048)},
        {"iters", ARG_INT, &iters, "timed passes", ARG_RANGE(1, 1000)},
        {"warmup", ARG_INT, &warmup, "untimed passes first", ARG_RANGE(0, 1000)},
        {"step", ARG_BOOL, &step, "the DINO step's passes (teacher + student multi-crop) instead of inference"},
        {"out_dim", ARG_INT, &out_dim, "head output dimension with --step", ARG_RANGE(1, 1 << 20)},
        {NULL, 0, NULL, NULL},
    };
    args_parse("bench resnet", "[flags]", specs, argc - 1, argv + 1, NULL, 0);
    ResNetConfig rc;
    resnet_config_preset(&rc, "resnet50");
    HeadConfig hc;
    head_config_default(&hc, resnet_out_dim(&rc), out_dim);
    DinoModel m;
    model_build_resnet(&m, &rc, &hc, step);
    float *params = alignedAllocCheck(m.table.total * sizeof(float));
    model_init(&m, params, 0);
    double *times = mallocCheck((size_t)iters * sizeof(double)), flops;
    printf("model: resnet50%s, threads %d\n", step ? " + DINO head" : "", dino_get_threads());
    if (!step) {
        ResNetWeights w;
        model_bind_resnet(&m, params, &w);
        size_t n = (size_t)batch * 3 * size * size;
        float *img = alignedAllocCheck(n * sizeof(float));
        fixture_fill(img, n, 3, -2.0f, 2.0f);
        ResNetActs *a = resnet_acts_create(&rc, batch, size, size, 0);
        for (int i = 0; i < warmup + iters; i++) {
            double t0 = dino_now();
            resnet_forward(&rc, &w, a, img, batch, 0);
            if (i >= warmup) times[i - warmup] = dino_now() - t0;
        }
        flops = 2.0 * resnet_forward_macs(&rc, size, size) * batch;
        printf("input: batch %d, %dx%d, inference (running statistics)\n", batch, size, size);
        resnet_acts_free(a);
        free(img);
    } else {
        float *grads = alignedAllocCheck(m.table.total * sizeof(float));
        float *teacher = alignedAllocCheck(m.table.total * sizeof(float));
        memcpy(teacher, params, m.table.total * sizeof(float));
        Batch b = batch_synthetic(batch, 224, 8, 96, 5);
        MultiCropActs *ta = multicrop_acts_create(&m, &b, 1, 0);
        MultiCropActs *sa = multicrop_train_acts_create(&m, &b, 0, 0);
        for (int i = 0; i < warmup + iters; i++) {
            double t0 = dino_now();
            multicrop_forward(&m, teacher, ta, &b, NULL);
            memset(grads, 0, m.table.total * sizeof(float));
            multicrop_train_pass(&m, params, grads, sa, &b, NULL, fixed_grad, NULL, &out_dim);
            if (i >= warmup) times[i - warmup] = dino_now() - t0;
        }
        // Teacher forward (2B globals) + student forward and backward (2x) over every crop.
        double g = resnet_forward_macs(&rc, 224, 224), l = resnet_forward_macs(&rc, 96, 96);
        flops = 2.0 * (2.0 * batch * g + 3.0 * (2.0 * batch * g + 8.0 * batch * l));
        printf("input: batch %d, 2x224 + 8x96 crops; teacher forward + student forward/backward "
               "(train-mode BatchNorm), head out_dim %d\n", batch, out_dim);
        multicrop_acts_free(ta);
        multicrop_acts_free(sa);
        batch_free(&b);
        free(grads);
        free(teacher);
    }
    qsort(times, (size_t)iters, sizeof *times, cmp_double);
    double med = iters % 2 ? times[iters / 2] : 0.5 * (times[iters / 2 - 1] + times[iters / 2]);
    // The lines bench/run.sh reads, as dino bench forward prints them (GFLOP/s: the convolutions').
    printf("best: %.4f s over %d iters\n", times[0], iters);
    printf("median: %.4f s per batch, %.2f images/s, %.1f GFLOP/s\n", med, batch / med, flops / med / 1e9);
    printf("peak RSS: %.1f MiB\n", peak_rss_mib());
    printf("sgemm 1024^3 on this machine: %.1f GFLOP/s\n", sgemm_gflops(1024));
    free(times);
    free(params);
    model_free(&m);
    return 0;
}
