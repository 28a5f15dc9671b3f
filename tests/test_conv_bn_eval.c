// conv2d_bn_eval_forward (conv.h): evaluation-mode Conv2d + BatchNorm2d
// (+ ReLU). On oneDNN's path BatchNorm is folded into the convolution's
// weights and bias and the ReLU runs inside the primitive; that must equal
// the three layers in turn (conv2d_forward, bn_forward_eval, relu_forward)
// up to fp32 rounding: within 1e-5 of the tensor's scale (engine_close).
// Under OpenBLAS the function runs the three layers itself: bit-identical.
// The same for whole bottlenecks run through conv.h's slots, whose
// activations stay in oneDNN's layout and whose residual is a sum post-op.
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "conv.h"
#include "conv_onednn.h"
#include "engine_fill.h"
#include "gemm.h"
#include "gemm_onednn.h"
#include "testlib.h"

#define TOL_FUSED 1e-5
#define EPS 1e-5f

typedef struct {
    ConvShape s;
    size_t ni, no, nw;
    float *in, *w, *bn[4];  // bn: weight, bias, running mean, running variance
} Case;

static Case case_make(const int *p, uint64_t seed) {
    Case c;
    memset(&c, 0, sizeof c);
    c.s = (ConvShape){.C = p[0], .OC = p[1], .k = p[2], .stride = p[3], .pad = p[4]};
    conv_shape_set(&c.s, p[5], p[6], p[7]);
    c.ni = (size_t)c.s.C * c.s.B * c.s.H * c.s.W, c.no = (size_t)c.s.OC * c.s.B * c.s.OH * c.s.OW;
    c.nw = (size_t)c.s.OC * c.s.C * c.s.k * c.s.k;
    c.in = mallocCheck(c.ni * 4), c.w = mallocCheck(c.nw * 4);
    fixture_fill(c.in, c.ni, seed, -1, 1), fixture_fill(c.w, c.nw, seed + 1, -1, 1);
    static const float lo[4] = {0.5f, -0.5f, -0.5f, 0.2f}, hi[4] = {1.5f, 0.5f, 0.5f, 2.0f};
    for (int j = 0; j < 4; j++) {
        c.bn[j] = mallocCheck((size_t)c.s.OC * 4);
        fixture_fill(c.bn[j], c.s.OC, seed + 2 + j, lo[j], hi[j]);
    }
    return c;
}

static void case_free(Case *c) {
    free(c->in), free(c->w);
    for (int j = 0; j < 4; j++) free(c->bn[j]);
}

// The three layers in turn under the backend in use.
static void unfused(const Case *c, float *out, int relu, float *scr) {
    size_t N = (size_t)c->s.B * c->s.OH * c->s.OW;
    conv2d_forward(out, c->in, c->w, &c->s, scr);
    bn_forward_eval(out, out, c->bn[0], c->bn[1], c->bn[2], c->bn[3], c->s.OC, N, EPS);
    if (relu) relu_forward(out, out, c->no);
}

static void fused(const Case *c, float *out, int relu, float *scr, float *fold) {
    conv2d_bn_eval_forward(out, c->in, c->w, c->bn[0], c->bn[1], c->bn[2], c->bn[3], EPS, relu, &c->s,
                           scr, fold);
}

static void check_case(const Case *c, const char *label, int have_onednn) {
    char err[200] = "", name[200];
    float *scr = mallocCheck((conv_scratch_floats(&c->s) + 1) * 4), *fold = mallocCheck(conv_fold_floats(&c->s) * 4);
    float *want = mallocCheck(c->no * 4), *got = mallocCheck(c->no * 4);
    for (int relu = 0; relu < 2; relu++) {
        CHECK(gemm_set_f32_backend(GEMM_OPENBLAS, err, sizeof err) == 0, "OpenBLAS backend: %s", err);
        unfused(c, want, relu, scr);
        memset(got, 0x7f, c->no * 4);
        fused(c, got, relu, scr, fold);
        CHECK(!memcmp(got, want, c->no * 4), "%s relu=%d im2col: the three layers, bit for bit", label, relu);
        if (!have_onednn) continue;
        CHECK(gemm_set_f32_backend(GEMM_ONEDNN, err, sizeof err) == 0, "oneDNN backend: %s", err);
        unfused(c, want, relu, scr);
        memset(got, 0x7f, c->no * 4);
        fused(c, got, relu, scr, fold);
        snprintf(name, sizeof name, "%s relu=%d oneDNN folded vs unfused", label, relu);
        engine_close(name, got, want, c->no, TOL_FUSED);
        // The folded primitive itself ran (no silent fallback to the layers).
        const float *bias = fold + c->nw;
        memset(got, 0x7f, c->no * 4);
        CHECK(onednn_conv_forward_bias(got, c->in, fold, bias, relu, &c->s) == 0, "%s: primitive runs", name);
        snprintf(name, sizeof name, "%s relu=%d oneDNN bias primitive", label, relu);
        engine_close(name, got, want, c->no, TOL_FUSED);
        int neg = 0;
        for (size_t i = 0; relu && i < c->no; i++) neg |= got[i] < 0.0f;
        CHECK(!neg, "%s: no negative output after the ReLU post-op", name);
    }
    free(scr), free(fold), free(want), free(got);
}

// A bottleneck through conv.h's slots: x (C) -> m (1x1, ReLU) -> m (3x3 /
// stride, ReLU) -> OC (1x1) + residual, then ReLU; the residual is x itself
// (C == OC, stride 1) or a 1x1 / stride downsample's output. Against the
// layers in turn (oneDNN's convolutions, BatchNorm, add, ReLU).
static void check_bottleneck(int C, int m, int OC, int stride, int B, int H, int W, uint64_t seed) {
    int ds = stride != 1 || C != OC;
    int p[4][8] = {{C, m, 1, 1, 0, B, H, W}, {m, m, 3, stride, 1, B, H, W}, {m, OC, 1, 1, 0, B, 0, 0},
                   {C, OC, 1, stride, 0, B, H, W}};
    Case c[4];
    ConvBNLayer l[4];
    size_t nfold = 0, nscr = 1;
    float *want[4];
    for (int j = 0; j < 3 + ds; j++) {
        if (j == 2) p[2][6] = c[1].s.OH, p[2][7] = c[1].s.OW;
        c[j] = case_make(p[j], seed + 10 * j);
        if (conv_fold_floats(&c[j].s) > nfold) nfold = conv_fold_floats(&c[j].s);
        if (conv_scratch_floats(&c[j].s) + 1 > nscr) nscr = conv_scratch_floats(&c[j].s) + 1;
        want[j] = mallocCheck(c[j].no * 4);
        l[j] = (ConvBNLayer){.s = c[j].s, .w = c[j].w, .bn_w = c[j].bn[0], .bn_b = c[j].bn[1],
                             .bn_mean = c[j].bn[2], .bn_var = c[j].bn[3], .eps = EPS, .relu = j < 3};
    }
    float *fold = mallocCheck(nfold * 4), *scr = mallocCheck(nscr * 4), *got = mallocCheck(c[2].no * 4);
    char err[200] = "", name[160];
    snprintf(name, sizeof name, "bottleneck %d->%d->%d/%d->%d%s, %dx%dx%d", C, m, m, stride, OC,
             ds ? " + downsample" : "", B, H, W);
    CHECK(gemm_set_f32_backend(GEMM_OPENBLAS, err, sizeof err) == 0, "OpenBLAS backend: %s", err);
    CHECK(conv_eval_load(0, c[0].in, &l[0], 0) == -1, "%s: no slots under OpenBLAS", name);
    CHECK(gemm_set_f32_backend(GEMM_ONEDNN, err, sizeof err) == 0, "oneDNN backend: %s", err);
    // The layers in turn, each on the previous reference output; the downsample on x.
    for (int j = 0; j < 3 + ds; j++) {
        if (j == 1 || j == 2) memcpy(c[j].in, want[j - 1], c[j].ni * 4);
        if (j == 3) memcpy(c[3].in, c[0].in, c[3].ni * 4);
        unfused(&c[j], want[j], j < 2, scr);
    }
    const float *res = ds ? want[3] : c[0].in;
    for (size_t i = 0; i < c[2].no; i++) want[2][i] = fmaxf(want[2][i] + res[i], 0.0f);
    int x = 0, rc = conv_eval_load(x, c[0].in, &l[0], 0);
    rc = rc || conv_eval_step(1, x, &l[0], 0, fold) || conv_eval_step(2, 1, &l[1], 0, fold);
    if (ds) rc = rc || conv_eval_step(3, x, &l[3], 0, fold), x = 3;
    rc = rc || conv_eval_step(x, 2, &l[2], 1, fold);
    memset(got, 0x7f, c[2].no * 4);
    rc = rc || conv_eval_store(got, x);
    CHECK(rc == 0, "%s: runs in the slots", name);
    engine_close(name, got, want[2], c[2].no, TOL_FUSED);
    CHECK(conv_eval_step(1, 1, &l[0], 0, fold) == -1, "%s: a slot is never both input and output", name);
    for (int j = 0; j < 3 + ds; j++) free(want[j]), case_free(&c[j]);
    free(fold), free(scr), free(got);
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    // C, OC, k, stride, pad, B, H, W: a bottleneck's 3x3 (and strided), a
    // 1x1, the downsample's 1x1/2, the stem's 7x7/2, channels off 8-blocks.
    static const int shapes[][8] = {
        {8, 16, 3, 1, 1, 2, 9, 9}, {16, 8, 3, 2, 1, 3, 7, 6}, {24, 16, 1, 1, 0, 2, 5, 5},
        {16, 32, 1, 2, 0, 2, 7, 8}, {3, 8, 7, 2, 3, 2, 20, 17}, {5, 12, 3, 1, 1, 2, 6, 5},
    };
    char err[200] = "";
    int have_onednn = onednn_ready(err, sizeof err) == 0;
    if (!have_onednn) printf("note: oneDNN not available (%s): im2col only\n", err);
    GemmF32Backend was = gemm_f32_backend();
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *p = shapes[i];
        Case c = case_make(p, 300 + 10 * i);
        char label[96];
        snprintf(label, sizeof label, "conv+bn %dx%d/%d pad %d, %d->%d ch, %dx%dx%d", p[2], p[2], p[3], p[4],
                 p[0], p[1], p[5], p[6], p[7]);
        check_case(&c, label, have_onednn);
        case_free(&c);
    }
    if (have_onednn) {
        check_bottleneck(32, 8, 32, 1, 2, 9, 9, 500);   // identity residual
        check_bottleneck(32, 16, 64, 2, 3, 8, 7, 600);  // downsample, odd side
        check_bottleneck(16, 8, 32, 1, 2, 6, 6, 700);   // downsample at stride 1
    }
    gemm_set_f32_backend(was, NULL, 0);
    return test_finish();
}
