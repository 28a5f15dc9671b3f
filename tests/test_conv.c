// The convolutions of conv.h on both paths, im2col + GEMM (OpenBLAS) and
// oneDNN's primitives (conv_onednn.c), against a direct float64 loop: the
// forward, the input gradient (written and accumulated) and the weight
// gradient (accumulated), over the shapes a ResNet has (3x3/1 and 3x3/2 pad
// 1, 1x1/1, 1x1/2, 7x7/2 pad 3) plus channel counts that are no multiple of
// oneDNN's 8-channel blocks and odd sizes where the floor of the output size
// matters. The oneDNN primitives are also called directly, so a shape that
// conv2d_* routes elsewhere is still checked there. Tolerances as the
// engine's (engine_close): forward 1e-5, gradients 2e-5 of a tensor's scale.
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "conv.h"
#include "conv_onednn.h"
#include "engine_fill.h"
#include "gemm.h"
#include "gemm_onednn.h"
#include "testlib.h"

#define TOL_FWD 1e-5
#define TOL_GRAD 2e-5

typedef struct {
    ConvShape s;
    size_t ni, no, nw;
    float *in, *w, *go;           // input, weights, output gradient
    float *out, *din, *dw;        // reference: forward, input and weight gradients
    float *pre_in, *pre_w;        // what the accumulating calls add to
} Case;

// out, din, dw of a direct convolution, summed in float64.
static void reference(Case *c) {
    const ConvShape *s = &c->s;
    double *din = callocCheck(c->ni, sizeof(double)), *dw = callocCheck(c->nw, sizeof(double));
    for (int o = 0; o < s->OC; o++)
        for (int b = 0; b < s->B; b++)
            for (int oy = 0; oy < s->OH; oy++)
                for (int ox = 0; ox < s->OW; ox++) {
                    size_t oi = (((size_t)o * s->B + b) * s->OH + oy) * s->OW + ox;
                    double acc = 0;
                    for (int ci = 0; ci < s->C; ci++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                                size_t ii = (((size_t)ci * s->B + b) * s->H + iy) * s->W + ix;
                                size_t wi = ((size_t)(o * s->C + ci) * s->k + ky) * s->k + kx;
                                acc += (double)c->in[ii] * c->w[wi];
                                din[ii] += (double)c->go[oi] * c->w[wi];
                                dw[wi] += (double)c->go[oi] * c->in[ii];
                            }
                    c->out[oi] = (float)acc;
                }
    for (size_t i = 0; i < c->ni; i++) c->din[i] = (float)din[i];
    for (size_t i = 0; i < c->nw; i++) c->dw[i] = (float)dw[i];
    free(din), free(dw);
}

static Case case_make(int C, int OC, int k, int stride, int pad, int B, int H, int W, uint64_t seed) {
    Case c;
    memset(&c, 0, sizeof c);
    c.s = (ConvShape){.C = C, .OC = OC, .k = k, .stride = stride, .pad = pad};
    conv_shape_set(&c.s, B, H, W);
    c.ni = (size_t)C * B * H * W, c.no = (size_t)OC * B * c.s.OH * c.s.OW, c.nw = (size_t)OC * C * k * k;
    c.in = mallocCheck(c.ni * 4), c.w = mallocCheck(c.nw * 4), c.go = mallocCheck(c.no * 4);
    c.out = mallocCheck(c.no * 4), c.din = mallocCheck(c.ni * 4), c.dw = mallocCheck(c.nw * 4);
    c.pre_in = mallocCheck(c.ni * 4), c.pre_w = mallocCheck(c.nw * 4);
    fixture_fill(c.in, c.ni, seed, -1, 1), fixture_fill(c.w, c.nw, seed + 1, -1, 1);
    fixture_fill(c.go, c.no, seed + 2, -1, 1);
    fixture_fill(c.pre_in, c.ni, seed + 3, -1, 1), fixture_fill(c.pre_w, c.nw, seed + 4, -1, 1);
    reference(&c);
    return c;
}

static void case_free(Case *c) {
    free(c->in), free(c->w), free(c->go), free(c->out), free(c->din), free(c->dw);
    free(c->pre_in), free(c->pre_w);
}

// got against want, or against pre + want when pre is given.
static void expect(const char *label, const char *what, const float *got, const float *want,
                   const float *pre, size_t n, double tol) {
    float *ref = mallocCheck(n * 4);
    for (size_t i = 0; i < n; i++) ref[i] = pre ? pre[i] + want[i] : want[i];
    char name[160];
    snprintf(name, sizeof name, "%s %s", label, what);
    engine_close(name, got, ref, n, tol);
    free(ref);
}

// conv2d_forward / conv2d_backward under the backend in use.
static void check_layer(const Case *c, const char *label) {
    const ConvShape *s = &c->s;
    float *scr = mallocCheck((conv_scratch_floats(s) + 1) * 4), *out = mallocCheck(c->no * 4);
    float *din = mallocCheck(c->ni * 4), *dw = mallocCheck(c->nw * 4);
    conv2d_forward(out, c->in, c->w, s, scr);
    expect(label, "forward", out, c->out, NULL, c->no, TOL_FWD);
    memcpy(dw, c->pre_w, c->nw * 4);
    memset(din, 0x7f, c->ni * 4);  // written, so what was there must not matter
    conv2d_backward(din, dw, c->go, c->in, c->w, s, scr, 0);
    expect(label, "input gradient", din, c->din, NULL, c->ni, TOL_GRAD);
    expect(label, "weight gradient (+=)", dw, c->dw, c->pre_w, c->nw, TOL_GRAD);
    memcpy(din, c->pre_in, c->ni * 4);
    conv2d_backward(din, NULL, c->go, c->in, c->w, s, scr, 1);
    expect(label, "input gradient (+=)", din, c->din, c->pre_in, c->ni, TOL_GRAD);
    free(scr), free(out), free(din), free(dw);
}

// oneDNN's primitives themselves, whatever conv2d_* routes to them.
static void check_onednn_direct(const Case *c, const char *label) {
    const ConvShape *s = &c->s;
    float *out = mallocCheck(c->no * 4), *din = mallocCheck(c->ni * 4), *dw = mallocCheck(c->nw * 4);
    char name[160];
    snprintf(name, sizeof name, "%s oneDNN direct", label);
    CHECK(onednn_conv_forward(out, c->in, c->w, s) == 0, "%s: forward primitive runs", name);
    expect(name, "forward", out, c->out, NULL, c->no, TOL_FWD);
    memset(din, 0x7f, c->ni * 4);
    CHECK(onednn_conv_backward_data(din, c->go, c->w, s, 0) == 0, "%s: backward-data primitive runs", name);
    expect(name, "input gradient", din, c->din, NULL, c->ni, TOL_GRAD);
    memcpy(din, c->pre_in, c->ni * 4);
    CHECK(onednn_conv_backward_data(din, c->go, c->w, s, 1) == 0, "%s: accumulating backward-data runs",
          name);
    expect(name, "input gradient (+=)", din, c->din, c->pre_in, c->ni, TOL_GRAD);
    memcpy(dw, c->pre_w, c->nw * 4);
    CHECK(onednn_conv_backward_weights(dw, c->go, c->in, s) == 0, "%s: backward-weights primitive runs",
          name);
    expect(name, "weight gradient (+=)", dw, c->dw, c->pre_w, c->nw, TOL_GRAD);
    free(out), free(din), free(dw);
}

int main(int argc, char **argv) {
    (void)argc;
    test_passive_openmp(argv);
    // C, OC, k, stride, pad, B, H, W
    static const int shapes[][8] = {
        {8, 16, 3, 1, 1, 2, 9, 9},   // a bottleneck's 3x3
        {16, 8, 3, 2, 1, 3, 7, 6},   // its strided 3x3, odd and even sides
        {5, 12, 3, 1, 1, 2, 6, 5},   // channels off the 8-blocks
        {24, 16, 1, 1, 0, 2, 5, 5},  // 1x1
        {16, 32, 1, 2, 0, 2, 7, 8},  // the downsample's 1x1/2
        {3, 8, 7, 2, 3, 2, 20, 17},  // the stem's 7x7/2
    };
    char err[200];
    int have_onednn = onednn_ready(err, sizeof err) == 0;
    if (!have_onednn) printf("note: oneDNN not available (%s): im2col only\n", err);
    GemmF32Backend was = gemm_f32_backend();
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *p = shapes[i];
        Case c = case_make(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], 100 + 10 * i);
        char label[96];
        snprintf(label, sizeof label, "conv %dx%d/%d pad %d, %d->%d ch, %dx%dx%d", p[2], p[2], p[3], p[4],
                 p[0], p[1], p[5], p[6], p[7]);
        CHECK(gemm_set_f32_backend(GEMM_OPENBLAS, err, sizeof err) == 0, "OpenBLAS backend: %s", err);
        char l2[128];
        snprintf(l2, sizeof l2, "%s im2col", label);
        check_layer(&c, l2);
        if (have_onednn) {
            CHECK(gemm_set_f32_backend(GEMM_ONEDNN, err, sizeof err) == 0, "oneDNN backend: %s", err);
            snprintf(l2, sizeof l2, "%s oneDNN backend", label);
            check_layer(&c, l2);
            check_onednn_direct(&c, label);
        }
        case_free(&c);
    }
    gemm_set_f32_backend(was, NULL, 0);
    return test_finish();
}
