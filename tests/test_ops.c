// Every layer function of ops.h on tiny shapes against a naive double
// implementation written here: the forward output (tolerance 1e-5 of the
// tensor's scale), and the backward against central finite differences of the
// double forward (h = 1e-5, tolerance 1e-4 of the gradient's scale; the fp32
// backward itself is accurate to ~1e-6). Adjoint identities <Ax,y> = <x,Aᵀy>
// for the patch unfold/fold pair, the bicubic resize and the ViT's position
// interpolation.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "rng.h"
#include "testlib.h"
#include "vit.h"

#define TOL_FWD 1e-5
#define TOL_BWD 1e-4
#define FD_H 1e-5

static double scale_of(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m > 0 ? m : 1.0;
}
static void close_d(const char *what, const float *got, const double *want, size_t n, double tol) {
    float *w = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) w[i] = (float)want[i];
    test_close(what, got, w, n, tol * scale_of(w, n), tol);
    free(w);
}
static float *randf(size_t n, uint64_t seed, float lo, float hi) {
    float *x = mallocCheck(n * sizeof(float));
    fixture_fill(x, n, seed, lo, hi);
    return x;
}
static double *tod(const float *x, size_t n) {
    double *d = mallocCheck(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

// A double forward with its inputs in a context; loss = Σ out·R.
typedef double (*LossFn)(void *ctx);
static void fd_grad(LossFn f, void *ctx, double *x, size_t n, double *g) {
    for (size_t i = 0; i < n; i++) {
        double s = x[i];
        x[i] = s + FD_H;
        double lp = f(ctx);
        x[i] = s - FD_H;
        double lm = f(ctx);
        x[i] = s;
        g[i] = (lp - lm) / (2 * FD_H);
    }
}
static void check_fd(const char *what, LossFn f, void *ctx, double *x, size_t n, const float *got) {
    double *g = mallocCheck(n * sizeof(double));
    fd_grad(f, ctx, x, n, g);
    close_d(what, got, g, n, TOL_BWD);
    free(g);
}

// ---------------------------------------------------------------- linear
typedef struct {
    int N, C, OC;
    double *x, *w, *b, *R, *out;
} LinCtx;
static double lin_loss(void *p) {
    LinCtx *c = p;
    double L = 0;
    for (int i = 0; i < c->N; i++)
        for (int o = 0; o < c->OC; o++) {
            double s = c->b[o];
            for (int k = 0; k < c->C; k++) s += c->x[i * c->C + k] * c->w[o * c->C + k];
            c->out[i * c->OC + o] = s;
            L += s * c->R[i * c->OC + o];
        }
    return L;
}
static void test_linear(void) {
    int N = 3, C = 5, OC = 4;
    float *x = randf(N * C, 1, -1, 1), *w = randf(OC * C, 2, -1, 1), *b = randf(OC, 3, -1, 1);
    float *R = randf(N * OC, 4, -1, 1), out[12], dx[15], dw[20] = {0}, db[4] = {0};
    LinCtx c = {N, C, OC, tod(x, N * C), tod(w, OC * C), tod(b, OC), tod(R, N * OC),
                mallocCheck(N * OC * sizeof(double))};
    linear_forward(out, x, w, b, N, C, OC);
    lin_loss(&c);
    close_d("linear forward", out, c.out, N * OC, TOL_FWD);
    linear_forward(out, x, w, NULL, N, C, OC);
    double nob[12];
    for (int i = 0; i < N * OC; i++) nob[i] = c.out[i] - c.b[i % OC];
    close_d("linear forward, no bias", out, nob, N * OC, TOL_FWD);
    linear_backward(dx, dw, db, R, x, w, N, C, OC);
    check_fd("linear dinp", lin_loss, &c, c.x, N * C, dx);
    check_fd("linear dweight", lin_loss, &c, c.w, OC * C, dw);
    check_fd("linear dbias", lin_loss, &c, c.b, OC, db);
    // Parameter gradients accumulate.
    linear_backward(NULL, dw, db, R, x, w, N, C, OC);
    double g[20];
    fd_grad(lin_loss, &c, c.w, OC * C, g);
    for (int i = 0; i < OC * C; i++) g[i] *= 2;
    close_d("linear dweight accumulates (+=)", dw, g, OC * C, TOL_BWD);

    // Residual branch with per-sample drop-path factors (T = 1 row per sample).
    lin_loss(&c);  // c.out again at the unperturbed point
    float res[12], out2[12], sc[3] = {0.0f, 2.0f, 1.0f};
    fixture_fill(res, 12, 5, -1, 1);
    linear_residual_forward(out2, res, x, w, b, sc, 3, 1, C, OC);
    double want[12];
    for (int i = 0; i < N * OC; i++) want[i] = res[i] + sc[i / OC] * c.out[i];
    close_d("linear_residual_forward with scale (0, 2, 1)", out2, want, 12, TOL_FWD);
    memcpy(out2, res, sizeof res);
    linear_residual_forward(out2, out2, x, w, b, NULL, 3, 1, C, OC);  // in place, no scale
    for (int i = 0; i < N * OC; i++) want[i] = res[i] + c.out[i];
    close_d("linear_residual_forward in place", out2, want, 12, TOL_FWD);
    memcpy(out2, res, sizeof res);
    linear_residual_forward(out2, out2, x, w, b, sc, 3, 1, C, OC);  // in place with scale
    for (int i = 0; i < N * OC; i++) want[i] = res[i] + sc[i / OC] * c.out[i];
    close_d("linear_residual_forward in place with scale", out2, want, 12, TOL_FWD);
    float sr[12];
    scale_rows_forward(sr, res, sc, 3, 4);
    for (int i = 0; i < 12; i++) want[i] = sc[i / 4] * res[i];
    close_d("scale_rows_forward", sr, want, 12, 0);
    free(x), free(w), free(b), free(R), free(c.x), free(c.w), free(c.b), free(c.R), free(c.out);
}

// ---------------------------------------------------------------- layernorm
typedef struct {
    int N, C;
    double eps, *x, *w, *b, *R, *out;
} LnCtx;
static double ln_loss(void *p) {
    LnCtx *c = p;
    double L = 0;
    for (int i = 0; i < c->N; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < c->C; j++) m += c->x[i * c->C + j];
        m /= c->C;
        for (int j = 0; j < c->C; j++) v += (c->x[i * c->C + j] - m) * (c->x[i * c->C + j] - m);
        v /= c->C;  // biased
        double s = 1 / sqrt(v + c->eps);
        for (int j = 0; j < c->C; j++) {
            double y = (c->x[i * c->C + j] - m) * s * c->w[j] + c->b[j];
            c->out[i * c->C + j] = y;
            L += y * c->R[i * c->C + j];
        }
    }
    return L;
}
static void test_layernorm(void) {
    int N = 3, C = 7;
    float *x = randf(N * C, 11, -2, 3), *w = randf(C, 12, 0.5f, 1.5f), *b = randf(C, 13, -1, 1);
    float *R = randf(N * C, 14, -1, 1), out[21], mean[3], rstd[3], dw[7] = {0}, db[7] = {0};
    float dx[21];
    for (int i = 0; i < 21; i++) dx[i] = 0.25f;  // dinp accumulates
    LnCtx c = {N, C, 1e-5, tod(x, 21), tod(w, 7), tod(b, 7), tod(R, 21), mallocCheck(21 * sizeof(double))};
    layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-5f);
    ln_loss(&c);
    close_d("layernorm forward", out, c.out, 21, TOL_FWD);
    float again[21];
    layernorm_apply(again, x, w, b, mean, rstd, N, C);
    CHECK(!memcmp(again, out, sizeof again), "layernorm_apply from the saved mean/rstd = the forward's output, bit for bit");
    layernorm_backward(dx, dw, db, R, x, w, mean, rstd, N, C);
    for (int i = 0; i < 21; i++) dx[i] -= 0.25f;
    check_fd("layernorm dinp (accumulated)", ln_loss, &c, c.x, 21, dx);
    check_fd("layernorm dweight", ln_loss, &c, c.w, 7, dw);
    check_fd("layernorm dbias", ln_loss, &c, c.b, 7, db);
    free(x), free(w), free(b), free(R), free(c.x), free(c.w), free(c.b), free(c.R), free(c.out);
}

// ---------------------------------------------------------------- GELU
typedef struct {
    int n;
    double *x, *R, *out;
} GeluCtx;
static double gelu_loss(void *p) {
    GeluCtx *c = p;
    double L = 0;
    for (int i = 0; i < c->n; i++) {
        c->out[i] = 0.5 * c->x[i] * (1 + erf(c->x[i] / sqrt(2.0)));
        L += c->out[i] * c->R[i];
    }
    return L;
}
static void test_gelu(void) {
    int n = 33;
    float *x = randf(n, 21, -5, 5), *R = randf(n, 22, -1, 1), out[33], dx[33];
    GeluCtx c = {n, tod(x, n), tod(R, n), mallocCheck(n * sizeof(double))};
    gelu_forward(out, x, n);
    gelu_loss(&c);
    close_d("gelu forward (exact erf)", out, c.out, n, TOL_FWD);
    // tanh approximation differs by ~1e-3 at x=-2: make sure this is not it.
    float xm2 = -2.0f, ym2;
    gelu_forward(&ym2, &xm2, 1);
    CHECK(fabs(ym2 - (-0.0455002638)) < 3e-7, "gelu(-2) = %.9f (erf: -0.0455002638, tanh form: -0.0454023)", ym2);
    gelu_backward(dx, x, R, n);
    check_fd("gelu backward", gelu_loss, &c, c.x, n, dx);
    free(x), free(R), free(c.x), free(c.R), free(c.out);

    // The fused output + derivative pass against the two separate ones, over
    // [-10, 10] (8-wide blocks and a tail): within 4 ulp of the larger value.
    int m = 100003;
    float *xs = randf(m, 23, -10, 10), *dy = randf(m, 24, -1, 1);
    float *h1 = mallocCheck(m * 4), *h2 = mallocCheck(m * 4), *g1 = mallocCheck(m * 4),
          *gp = mallocCheck(m * 4), *g2 = mallocCheck(m * 4);
    gelu_forward(h1, xs, m);
    gelu_backward(g1, xs, dy, m);
    gelu_grad_forward(h2, gp, xs, m);
    gelu_backward_saved(g2, gp, dy, m);
    double worst_h = 0, worst_g = 0;
    for (int i = 0; i < m; i++) {
        worst_h = fmax(worst_h, fabs((double)h1[i] - h2[i]) / (fabs(h1[i]) * 0x1p-23 + 1e-30));
        worst_g = fmax(worst_g, fabs((double)g1[i] - g2[i]) / (fmax(fabs(g1[i]), fabs(dy[i])) * 0x1p-23));
    }
    CHECK(worst_h <= 4 && worst_g <= 4, "gelu_grad_forward + gelu_backward_saved = gelu_forward, gelu_backward within %.1f, %.1f ulp (tol 4)", worst_h, worst_g);
    free(xs), free(dy), free(h1), free(h2), free(g1), free(gp), free(g2);
}

// ---------------------------------------------------------------- attention
typedef struct {
    int B, T, D, NH;
    double *qkv, *R, *out, *att;
} AttCtx;
static double att_loss(void *p) {
    AttCtx *c = p;
    int B = c->B, T = c->T, D = c->D, NH = c->NH, hd = D / NH;
    double scale = 1 / sqrt((double)hd), L = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            double *P = c->att + ((size_t)b * NH + h) * T * T;
            for (int i = 0; i < T; i++) {
                double mx = -1e300;
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    for (int k = 0; k < hd; k++)
                        s += c->qkv[(b * T + i) * 3 * D + h * hd + k] *
                             c->qkv[(b * T + j) * 3 * D + D + h * hd + k];
                    P[i * T + j] = s * scale;
                    mx = fmax(mx, s * scale);
                }
                double sum = 0;
                for (int j = 0; j < T; j++) sum += (P[i * T + j] = exp(P[i * T + j] - mx));
                for (int j = 0; j < T; j++) P[i * T + j] /= sum;
                for (int k = 0; k < hd; k++) {
                    double y = 0;
                    for (int j = 0; j < T; j++)
                        y += P[i * T + j] * c->qkv[(b * T + j) * 3 * D + 2 * D + h * hd + k];
                    c->out[(b * T + i) * D + h * hd + k] = y;
                    L += y * c->R[(b * T + i) * D + h * hd + k];
                }
            }
        }
    return L;
}
static void test_attention(void) {
    int B = 2, T = 5, D = 6, NH = 2;
    size_t nq = (size_t)B * T * 3 * D, no = (size_t)B * T * D, na = (size_t)B * NH * T * T;
    float *qkv = randf(nq, 31, -1.5f, 1.5f), *R = randf(no, 32, -1, 1);
    float *out = mallocCheck(no * 4), *att = mallocCheck(na * 4), *dqkv = mallocCheck(nq * 4);
    AttCtx c = {B, T, D, NH, tod(qkv, nq), tod(R, no), mallocCheck(no * 8), mallocCheck(na * 8)};
    attention_forward(out, att, qkv, B, T, D, NH);
    att_loss(&c);
    close_d("attention forward output", out, c.out, no, TOL_FWD);
    close_d("attention probabilities", att, c.att, na, TOL_FWD);
    attention_backward(dqkv, R, qkv, att, B, T, D, NH);
    check_fd("attention dqkv", att_loss, &c, c.qkv, nq, dqkv);
    // Without stored probabilities the backward recomputes them: same bits.
    float *dqkv2 = mallocCheck(nq * 4);
    attention_backward(dqkv2, R, qkv, NULL, B, T, D, NH);
    CHECK(!memcmp(dqkv, dqkv2, nq * 4), "attention backward recomputing the probabilities = with them, bit for bit");
    // The same at a size where the kernel's padding and the threads matter.
    {
        int B2 = 3, T2 = 37, D2 = 96, NH2 = 6;
        size_t nq2 = (size_t)B2 * T2 * 3 * D2, no2 = (size_t)B2 * T2 * D2, na2 = (size_t)B2 * NH2 * T2 * T2;
        float *q2 = randf(nq2, 33, -2, 2), *R2 = randf(no2, 34, -1, 1);
        float *o2 = mallocCheck(no2 * 4), *a2 = mallocCheck(na2 * 4);
        float *g1 = mallocCheck(nq2 * 4), *g2 = mallocCheck(nq2 * 4);
        attention_forward(o2, a2, q2, B2, T2, D2, NH2);
        attention_backward(g1, R2, q2, a2, B2, T2, D2, NH2);
        attention_backward(g2, R2, q2, NULL, B2, T2, D2, NH2);
        CHECK(!memcmp(g1, g2, nq2 * 4), "attention backward, T=37 hd=16: recomputed probabilities give the same bits");
        free(q2), free(R2), free(o2), free(a2), free(g1), free(g2);
    }
    free(dqkv2);
    free(qkv), free(R), free(out), free(att), free(dqkv);
    free(c.qkv), free(c.R), free(c.out), free(c.att);
}

// ---------------------------------------------------------------- L2 normalise
typedef struct {
    int N, C;
    double eps, *x, *R, *out;
} L2Ctx;
static double l2_loss(void *p) {
    L2Ctx *c = p;
    double L = 0;
    for (int i = 0; i < c->N; i++) {
        double ss = 0;
        for (int j = 0; j < c->C; j++) ss += c->x[i * c->C + j] * c->x[i * c->C + j];
        double d = fmax(sqrt(ss), c->eps);
        for (int j = 0; j < c->C; j++) {
            c->out[i * c->C + j] = c->x[i * c->C + j] / d;
            L += c->out[i * c->C + j] * c->R[i * c->C + j];
        }
    }
    return L;
}
static void test_l2norm(void) {
    int N = 3, C = 4;
    float *x = randf(12, 41, -1, 1), *R = randf(12, 42, -1, 1), out[12], norm[3], dx[12];
    for (int j = 0; j < C; j++) x[8 + j] *= 0.1f;  // row 2: norm below eps = 0.5 (clamped)
    L2Ctx c = {N, C, 0.5, tod(x, 12), tod(R, 12), mallocCheck(12 * 8)};
    l2norm_forward(out, norm, x, N, C, 0.5f);
    l2_loss(&c);
    close_d("l2norm forward (one row clamped at eps)", out, c.out, 12, TOL_FWD);
    l2norm_backward(dx, R, out, norm, N, C, 0.5f);
    check_fd("l2norm backward", l2_loss, &c, c.x, 12, dx);
    float z[4] = {0}, zo[4], zn, dz[4], one[4] = {1, 1, 1, 1};
    l2norm_forward(zo, &zn, z, 1, 4, 1e-12f);
    l2norm_backward(dz, one, zo, &zn, 1, 4, 1e-12f);
    CHECK(zo[0] == 0 && isfinite(dz[0]), "zero row: output 0, finite gradient");
    free(x), free(R), free(c.x), free(c.R), free(c.out);
}

// ---------------------------------------------------------------- weight norm
typedef struct {
    int O, In;
    double *g, *v, *R, *w;
} WnCtx;
static double wn_loss(void *p) {
    WnCtx *c = p;
    double L = 0;
    for (int o = 0; o < c->O; o++) {
        double ss = 0;
        for (int j = 0; j < c->In; j++) ss += c->v[o * c->In + j] * c->v[o * c->In + j];
        for (int j = 0; j < c->In; j++) {
            c->w[o * c->In + j] = c->g[o] * c->v[o * c->In + j] / sqrt(ss);
            L += c->w[o * c->In + j] * c->R[o * c->In + j];
        }
    }
    return L;
}
static void test_weightnorm(void) {
    int O = 3, In = 4;
    float *g = randf(3, 51, 0.5f, 1.5f), *v = randf(12, 52, -1, 1), *R = randf(12, 53, -1, 1);
    float w[12], vn[3], dg[3] = {0}, dv[12] = {0};
    WnCtx c = {O, In, tod(g, 3), tod(v, 12), tod(R, 12), mallocCheck(12 * 8)};
    weightnorm_forward(w, vn, g, v, O, In);
    wn_loss(&c);
    close_d("weightnorm forward", w, c.w, 12, TOL_FWD);
    weightnorm_backward(dg, dv, R, g, v, vn, O, In);
    check_fd("weightnorm dg", wn_loss, &c, c.g, 3, dg);
    check_fd("weightnorm dv", wn_loss, &c, c.v, 12, dv);
    float dv2[12] = {0};
    weightnorm_backward(NULL, dv2, R, g, v, vn, O, In);
    test_close("weightnorm dv with g frozen = dv", dv2, dv, 12, 0, 0);
    free(g), free(v), free(R), free(c.g), free(c.v), free(c.R), free(c.w);
}

// ---------------------------------------------------------------- adjoints
static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
static void check_adjoint(const char *what, double lhs, double rhs) {
    double rel = fabs(lhs - rhs) / fmax(fabs(lhs), 1e-30);
    CHECK(rel < 1e-5, "%s: <Ax,y> = %.9g, <x,Aty> = %.9g (rel %.2g, tol 1e-5)", what, lhs, rhs,
          rel);
}

static void test_patches(void) {
    int B = 2, C = 3, H = 10, W = 9, p = 4;  // the remainder rows/cols are dropped
    int GH = H / p, GW = W / p, K = C * p * p;
    size_t ni = (size_t)B * C * H * W, nc = (size_t)B * GH * GW * K;
    float *x = randf(ni, 61, -1, 1), *y = randf(nc, 62, -1, 1);
    float *ux = mallocCheck(nc * 4), *fy = mallocCheck(ni * 4);
    patch_unfold(ux, x, B, C, H, W, p);
    patch_fold(fy, y, B, C, H, W, p);
    check_adjoint("patch unfold/fold", dot(ux, y, nc), dot(x, fy, ni));
    // One element by hand: b=1, patch (r=1, c=0), channel 2, ky=3, kx=1.
    size_t row = (size_t)(1 * GH + 1) * GW + 0;
    float want = x[(((size_t)1 * C + 2) * H + 1 * p + 3) * W + 0 * p + 1];
    CHECK(ux[row * K + 2 * p * p + 3 * p + 1] == want, "unfold order (channel, ky, kx)");
    free(x), free(y), free(ux), free(fy);
}

static void test_bicubic(void) {
    struct {
        int IH, IW, OH, OW;
        double sfh, sfw;
    } cases[] = {{4, 4, 6, 4, 6.1 / 4, 4.1 / 4},
                 {14, 14, 6, 6, 6.1 / 14, 6.1 / 14},
                 {4, 4, 8, 8, 8.1 / 4, 8.1 / 4},
                 {14, 14, 10, 14, 10.1 / 14, 14.1 / 14}};
    int C = 5;
    for (int k = 0; k < 4; k++) {
        int IH = cases[k].IH, IW = cases[k].IW, OH = cases[k].OH, OW = cases[k].OW;
        size_t ni = (size_t)IH * IW * C, no = (size_t)OH * OW * C;
        float *x = randf(ni, 70 + k, -1, 1), *y = randf(no, 80 + k, -1, 1);
        float *ax = mallocCheck(no * 4), *aty = callocCheck(ni, 4);
        float sh = (float)(1.0 / cases[k].sfh), sw = (float)(1.0 / cases[k].sfw);
        bicubic_forward(ax, x, IH, IW, OH, OW, C, sh, sw);
        bicubic_backward(aty, y, IH, IW, OH, OW, C, sh, sw);
        char what[96];
        snprintf(what, sizeof what, "bicubic %dx%d -> %dx%d adjoint", IH, IW, OH, OW);
        check_adjoint(what, dot(ax, y, no), dot(x, aty, ni));
        free(x), free(y), free(ax), free(aty);
    }
    // Constant input stays constant (weights sum to 1, clamped taps).
    float cin[16 * 2], cout[36 * 2];
    for (int i = 0; i < 32; i++) cin[i] = 0.75f;
    bicubic_forward(cout, cin, 4, 4, 6, 6, 2, (float)(1 / (6.1 / 4)), (float)(1 / (6.1 / 4)));
    float mx = 0;
    for (int i = 0; i < 72; i++) mx = fmaxf(mx, fabsf(cout[i] - 0.75f));
    CHECK(mx < 1e-6f, "bicubic of a constant grid is constant (max dev %.2g)", mx);
}

static void test_pos_adjoint(void) {
    ViTConfig c = {.img_size = 56, .patch = 8, .in_chans = 3, .dim = 6, .depth = 1, .heads = 2,
                   .mlp_hidden = 24, .ln_eps = 1e-6f};
    int sizes[][2] = {{56, 56}, {24, 24}, {40, 72}, {56, 48}};
    size_t np = (size_t)(1 + 7 * 7) * 6;
    for (int k = 0; k < 4; k++) {
        int H = sizes[k][0], W = sizes[k][1];
        size_t no = (size_t)vit_tokens(&c, H, W) * 6;
        float *x = randf(np, 90 + k, -1, 1), *y = randf(no, 95 + k, -1, 1);
        float *ax = mallocCheck(no * 4), *aty = callocCheck(np, 4);
        vit_interpolate_pos(&c, x, H, W, ax);
        vit_interpolate_pos_backward(&c, aty, H, W, y);
        char what[96];
        snprintf(what, sizeof what, "vit_interpolate_pos %dx%d adjoint", H, W);
        check_adjoint(what, dot(ax, y, no), dot(x, aty, np));
        free(x), free(y), free(ax), free(aty);
    }
}

int main(void) {
    dino_set_threads(2);
    test_linear();
    test_layernorm();
    test_gelu();
    test_attention();
    test_l2norm();
    test_weightnorm();
    test_patches();
    test_bicubic();
    test_pos_adjoint();
    return test_finish();
}
