// SyncBatchNorm: `mpirun -np 2` of this binary (its --child mode), each rank
// running half of a batch through the small-stem test ResNet in train mode
// with resnet_acts_set_sync, equals one process running the whole batch:
// the features (gathered), the parameter gradients (summed over the ranks,
// as the data-parallel average does up to its 1/world) and the running
// statistics after the forward. The two runs differ only in where fp32
// sums are split, so the bound is the forward tolerance of the ViT tests
// (1e-5 of each tensor's scale). Skipped without MPI or mpirun.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "engine_fill.h"
#include "resnet.h"
#include "rng.h"
#include "testlib.h"
#include "train/dist.h"

#define B_ALL 6
#define S 28

static void config(ResNetConfig *c) {
    resnet_config_preset(c, "resnet50");
    for (int s = 0; s < RESNET_STAGES; s++) c->planes[s] /= 16;
    static const int blocks[] = {2, 1, 1, 1};
    memcpy(c->blocks, blocks, sizeof blocks);
    resnet_config_small_stem(c);
}

// Runs images b0..b0+n-1 of the batch; out = [features (n·D) | grads | params].
static float *run(int b0, int n, int sync, size_t *len, ParamTable *t) {
    ResNetConfig cfg;
    config(&cfg);
    param_table_init(t);
    resnet_param_table(&cfg, t, "");
    int D = resnet_out_dim(&cfg);
    *len = (size_t)n * D + 2 * t->total;
    float *out = callocCheck(*len, sizeof(float));
    float *grads = out + (size_t)n * D, *params = grads + t->total;
    engine_fill_params(t, params);
    ResNetWeights w, g;
    resnet_weights_bind(&w, &cfg, params);
    resnet_weights_bind(&g, &cfg, grads);
    size_t per = (size_t)3 * S * S;
    float *img = mallocCheck(B_ALL * per * sizeof(float)), *R = mallocCheck((size_t)B_ALL * D * sizeof(float));
    fixture_fill(img, B_ALL * per, 11, -2.0f, 2.0f);
    fixture_fill(R, (size_t)B_ALL * D, 12, -1.0f, 1.0f);
    ResNetActs *a = resnet_acts_create(&cfg, n, S, S, 1);
    resnet_acts_set_sync(a, sync);
    resnet_forward(&cfg, &w, a, img + (size_t)b0 * per, n, 1);
    memcpy(out, resnet_output(a), (size_t)n * D * sizeof(float));
    resnet_backward(&cfg, &w, &g, a, R + (size_t)b0 * D);
    resnet_acts_free(a);
    free(img);
    free(R);
    return out;
}

static int child(const char *path) {
    char err[512];
    if (dist_init(0, err, sizeof err) < 0) {
        printf("%s\n", err);
        return 1;
    }
    int r = dist_rank(), world = dist_world();
    if (world != 2) dist_abort(1, "expected 2 ranks, got %d", world);
    size_t len;
    ParamTable t;
    int n = B_ALL / 2;
    float *out = run(r * n, n, 1, &len, &t);
    size_t nf = len - 2 * t.total;
    float *feat = mallocCheck(2 * nf * sizeof(float));
    dist_allgather(out, feat, nf * sizeof(float));
    dist_allreduce_f32(out + nf, t.total, DIST_SUM);  // gradients
    if (r == 0) {
        FILE *f = fopenCheck(path, "wb");
        fwriteCheck(feat, sizeof(float), 2 * nf, f);
        fwriteCheck(out + nf, sizeof(float), 2 * t.total, f);
        fclose(f);
    }
    free(feat);
    free(out);
    param_table_free(&t);
    dist_finalize();
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--child")) return child(argv[2]);
    test_passive_openmp(argv);
    if (!dist_compiled() || system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("skipped: this build has no MPI, or mpirun is missing\n");
        return test_finish();
    }
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    test_tmpdir("resnet_sync");
    const char *path = test_tmp_path("two_ranks.f32");
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 timeout -k 5 120 mpirun --oversubscribe --mca btl self,vader "
             "--bind-to none -np 2 /proc/%d/exe --child %s", (int)getpid(), path);
    int rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 0, "mpirun -np 2 (exit %d): %s", rc, rc ? out : "");

    size_t len;
    ParamTable t;
    float *one = run(0, B_ALL, 0, &len, &t);
    size_t nf = len - 2 * t.total, got_n = 0;
    float *two = (float *)test_read_file(path, &got_n);
    CHECK(two && got_n == len * sizeof(float), "2-rank result: %zu bytes (want %zu)", got_n, len * sizeof(float));
    if (two && got_n == len * sizeof(float)) {
        engine_close("features, 2 ranks vs 1 process", two, one, nf, 1e-5);
        int worst = -1;
        double wr = 0;
        for (int i = 0; i < t.n; i++) {
            const ParamInfo *p = &t.p[i];
            size_t off = nf + (p->buffer ? t.total : 0) + p->offset;
            double mx = 0, e = 0;
            for (size_t j = 0; j < p->numel; j++) {
                mx = fmax(mx, fabs(one[off + j]));
                e = fmax(e, fabs(one[off + j] - two[off + j]));
            }
            double r = mx > 0 ? e / mx : e;
            if (r > wr) wr = r, worst = i;
            if (r > 1e-5) CHECK(0, "%s: %s off by %.3g of its scale", p->name, p->buffer ? "running statistic" : "gradient", r);
        }
        CHECK(wr <= 1e-5, "every gradient and running statistic within 1e-5 of its scale (worst %.3g: %s)",
              wr, worst >= 0 ? t.p[worst].name : "-");
        // The two halves alone (no sync) differ: the check can fail.
        size_t len2;
        ParamTable t2;
        float *half = run(0, B_ALL / 2, 0, &len2, &t2);
        double d = 0;
        for (size_t j = 0; j < len2 - 2 * t2.total; j++) d = fmax(d, fabs(half[j] - one[j]));
        CHECK(d > 1e-3, "without SyncBatchNorm half a batch gives other features (%.3g apart)", d);
        free(half);
        param_table_free(&t2);
    }
    free(two);
    free(one);
    param_table_free(&t);
    test_tmpdir_remove();
    return test_finish();
}
