// Every CUDA twin against its CPU function (`make CUDA=1 cuda-test`; not part
// of `make check`, which stays CPU-only). Inputs come from fixture_fill; each
// output is compared by its normalised error max|gpu − cpu| / max|cpu|:
//  - fp32 element-wise and row-wise kernels: <= 1e-5 (float sums in another
//    order: about sqrt(n)·6e-8 for rows of a few thousand, well below 1e-5);
//  - fp32 GEMMs (CUBLAS_COMPUTE_32F): <= 1e-5 (K <= 1536 products summed in
//    another order: typically sqrt(K)·u ≈ 2e-6);
//  - TF32 GEMMs: <= 4e-3 (A and B rounded to 10 mantissa bits, u = 2^-11:
//    each product off by up to 2u ≈ 1e-3, errors of random sign);
//  - BF16 GEMMs: <= 3e-2 (7 mantissa bits, u = 2^-8: products off by up to
//    7.8e-3; the bound leaves room for sums of products of one sign);
//  - bit-identical where the kernel repeats the CPU's operations (AdamW, EMA,
//    centre sum and update, patch fold/unfold, bicubic forward and backward).
// Each kernel is also run twice on the same inputs and must give the same
// bits: no kernel here uses atomics, and cuBLAS is deterministic on one GPU
// with one workspace. Exit 77 when there is no CUDA device (skipped).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/ops_cuda.h"
#include "ops.h"
#include "params.h"
#include "rng.h"
#include "../testlib.h"
#include "train/loss.h"
#include "train/optim.h"

static CudaCtx ctx;
static const cudaStream_t ST = NULL;  // the default stream
static uint64_t seed_counter = 1000;

static float *hfill(size_t n, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    fixture_fill(x, n, seed_counter++, lo, hi);
    return x;
}
static float *dup_h(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}
static float *to_dev(const float *h, size_t n) {
    float *d = cuda_malloc(n * sizeof(float));
    cuda_upload(d, h, n * sizeof(float));
    return d;
}
static float *to_host(const float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    cuda_sync(ST);
    cuda_download(h, d, n * sizeof(float));
    return h;
}

static double nerr(const float *got, const float *want, size_t n) {
    double e = 0.0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d != d) return INFINITY;
        if (d > e) e = d;
        if (fabs(want[i]) > m) m = fabs(want[i]);
    }
    return e / m;
}
// Compares a device tensor with a host reference.
static void cmp(const char *what, const float *dev, const float *want, size_t n, double tol) {
    float *got = to_host(dev, n);
    double e = nerr(got, want, n);
    CHECK(e <= tol, "%s: normalised error %.3g (bound %.0e, n %zu)", what, e, tol, n);
    free(got);
}
static void cmp_bits(const char *what, const float *dev, const float *want, size_t n) {
    float *got = to_host(dev, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(&got[i], &want[i], sizeof(float)) != 0;
    CHECK(bad == 0, "%s: bit-identical to the CPU (%zu of %zu differ)", what, bad, n);
    free(got);
}
// Snapshot of a device tensor, to compare a second run against.
static float *snap(const float *dev, size_t n) { return to_host(dev, n); }
static void same_run(const char *what, const float *dev, const float *first, size_t n) {
    float *got = to_host(dev, n);
    CHECK(!memcmp(got, first, n * sizeof(float)), "%s: second run gives the same bits", what);
    free(got);
}

// ---------------------------------------------------------------- linear

static double gemm_tol(void) {
    return ctx.mode == CUDA_GEMM_FP32 ? 1e-5 : ctx.mode == CUDA_GEMM_TF32 ? 4e-3 : 3e-2;
}

static void test_linear(int N, int C, int OC) {
    char what[160];
    const char *mode = cuda_gemm_mode_name(ctx.mode);
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *inp = hfill(ni, -1, 1), *w = hfill(nw, -0.1f, 0.1f), *b = hfill(OC, -1, 1);
    float *dout = hfill(no, -1, 1), *dw0 = hfill(nw, -1, 1), *db0 = hfill(OC, -1, 1);
    float *out = malloc(no * 4), *dinp = malloc(ni * 4), *dw = dup_h(dw0, nw), *db = dup_h(db0, OC);
    linear_forward(out, inp, w, b, N, C, OC);
    linear_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    float *d_inp = to_dev(inp, ni), *d_w = to_dev(w, nw), *d_b = to_dev(b, OC);
    float *d_dout = to_dev(dout, no), *d_out = cuda_malloc(no * 4), *d_dinp = cuda_malloc(ni * 4);
    float *d_dw = to_dev(dw0, nw), *d_db = to_dev(db0, OC);
    linear_forward_cuda(&ctx, d_out, d_inp, d_w, d_b, N, C, OC, ST);
    snprintf(what, sizeof what, "linear_forward %s N=%d C=%d OC=%d", mode, N, C, OC);
    cmp(what, d_out, out, no, gemm_tol());
    float *first = snap(d_out, no);
    linear_forward_cuda(&ctx, d_out, d_inp, d_w, d_b, N, C, OC, ST);
    same_run(what, d_out, first, no);
    free(first);
    // A bias only 4-byte aligned (a tensor at an odd offset of the flat
    // buffer): added by the separate bias pass instead of the epilogue.
    float *d_bu = cuda_malloc((OC + 1) * 4);
    cuda_upload(d_bu + 1, b, OC * 4);
    linear_forward_cuda(&ctx, d_out, d_inp, d_w, d_bu + 1, N, C, OC, ST);
    snprintf(what, sizeof what, "linear_forward %s unaligned bias N=%d C=%d OC=%d", mode, N, C, OC);
    cmp(what, d_out, out, no, gemm_tol());
    cuda_free(d_bu);
    linear_backward_cuda(&ctx, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, N, C, OC, ST);
    snprintf(what, sizeof what, "linear_backward dinp %s N=%d C=%d OC=%d", mode, N, C, OC);
    cmp(what, d_dinp, dinp, ni, gemm_tol());
    snprintf(what, sizeof what, "linear_backward dw (accumulated) %s", mode);
    cmp(what, d_dw, dw, nw, gemm_tol());
    snprintf(what, sizeof what, "linear_backward db (accumulated) %s", mode);
    cmp(what, d_db, db, OC, 1e-5);
    // Determinism of the accumulating pass: run again from the same start.
    float *dw1 = snap(d_dw, nw), *db1 = snap(d_db, OC);
    cuda_upload(d_dw, dw0, nw * 4), cuda_upload(d_db, db0, OC * 4);
    linear_backward_cuda(&ctx, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, N, C, OC, ST);
    same_run("linear_backward dw", d_dw, dw1, nw);
    same_run("linear_backward db", d_db, db1, OC);
    free(dw1), free(db1);

    // Residual branch with per-sample drop-path factors (T rows per sample).
    if (N % 2 == 0 && OC == C) {
        int B = 2, T = N / 2;
        float *res = hfill(no, -1, 1), scale[2] = {0.0f, 1.0f / 0.9f};
        float *want = malloc(no * 4);
        linear_residual_forward(want, res, inp, w, b, scale, B, T, C, OC);
        float *d_res = to_dev(res, no), *d_scale = to_dev(scale, 2);
        linear_residual_forward_cuda(&ctx, d_out, d_res, d_inp, d_w, d_b, d_scale, B, T, C, OC, ST);
        snprintf(what, sizeof what, "linear_residual_forward (drop path) %s", mode);
        cmp(what, d_out, want, no, gemm_tol());
        // In place (out == res) without scale.
        linear_residual_forward(want, res, inp, w, b, NULL, B, T, C, OC);
        linear_residual_forward_cuda(&ctx, d_res, d_res, d_inp, d_w, d_b, NULL, B, T, C, OC, ST);
        snprintf(what, sizeof what, "linear_residual_forward (in place, no scale) %s", mode);
        cmp(what, d_res, want, no, gemm_tol());
        cuda_free(d_res), cuda_free(d_scale);
        free(res), free(want);
    }
    cuda_free(d_inp), cuda_free(d_w), cuda_free(d_b), cuda_free(d_dout), cuda_free(d_out);
    cuda_free(d_dinp), cuda_free(d_dw), cuda_free(d_db);
    free(inp), free(w), free(b), free(dout), free(dw0), free(db0), free(out), free(dinp), free(dw);
    free(db);
}

// ---------------------------------------------------------------- layernorm, gelu, norms

static void test_layernorm(int N, int C) {
    size_t n = (size_t)N * C;
    float *x = hfill(n, -2, 3), *w = hfill(C, 0.5f, 1.5f), *b = hfill(C, -1, 1);
    float *dy = hfill(n, -1, 1), *dx0 = hfill(n, -1, 1), *dw0 = hfill(C, -1, 1), *db0 = hfill(C, -1, 1);
    float *y = malloc(n * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4);
    float *dx = dup_h(dx0, n), *dw = dup_h(dw0, C), *db = dup_h(db0, C);
    layernorm_forward(y, mean, rstd, x, w, b, N, C, 1e-6f);
    layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C);
    float *d_x = to_dev(x, n), *d_w = to_dev(w, C), *d_b = to_dev(b, C), *d_dy = to_dev(dy, n);
    float *d_y = cuda_malloc(n * 4), *d_mean = cuda_malloc(N * 4), *d_rstd = cuda_malloc(N * 4);
    float *d_dx = to_dev(dx0, n), *d_dw = to_dev(dw0, C), *d_db = to_dev(db0, C);
    layernorm_forward_cuda(d_y, d_mean, d_rstd, d_x, d_w, d_b, N, C, 1e-6f, ST);
    cmp("layernorm_forward out", d_y, y, n, 1e-5);
    cmp("layernorm_forward mean", d_mean, mean, N, 1e-5);
    cmp("layernorm_forward rstd", d_rstd, rstd, N, 1e-5);
    layernorm_backward_cuda(d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, N, C, ST);
    cmp("layernorm_backward dinp (accumulated)", d_dx, dx, n, 1e-5);
    cmp("layernorm_backward dw (accumulated)", d_dw, dw, C, 1e-5);
    cmp("layernorm_backward db (accumulated)", d_db, db, C, 1e-5);
    float *f = snap(d_dw, C);
    cuda_upload(d_dx, dx0, n * 4), cuda_upload(d_dw, dw0, C * 4), cuda_upload(d_db, db0, C * 4);
    layernorm_backward_cuda(d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, N, C, ST);
    same_run("layernorm_backward dw", d_dw, f, C);
    free(f);
    cuda_free(d_x), cuda_free(d_w), cuda_free(d_b), cuda_free(d_dy), cuda_free(d_y);
    cuda_free(d_mean), cuda_free(d_rstd), cuda_free(d_dx), cuda_free(d_dw), cuda_free(d_db);
    free(x), free(w), free(b), free(dy), free(dx0), free(dw0), free(db0), free(y), free(mean);
    free(rstd), free(dx), free(dw), free(db);
}

static void test_gelu(size_t n) {
    // offset 1: the scalar (unaligned) path; offset 0: the float4 path.
    for (int off = 0; off < 2; off++) {
        float *x = hfill(n + 1, -6, 6), *dy = hfill(n + 1, -1, 1);
        float *y = malloc(n * 4), *dx = malloc(n * 4);
        gelu_forward(y, x + off, n);
        gelu_backward(dx, x + off, dy + off, n);
        float *d_x = to_dev(x, n + 1), *d_dy = to_dev(dy, n + 1);
        float *d_y = cuda_malloc((n + 1) * 4), *d_dx = cuda_malloc((n + 1) * 4);
        gelu_forward_cuda(d_y + off, d_x + off, n, ST);
        gelu_backward_cuda(d_dx + off, d_x + off, d_dy + off, n, ST);
        cmp(off ? "gelu_forward (unaligned)" : "gelu_forward", d_y + off, y, n, 1e-6);
        cmp(off ? "gelu_backward (unaligned)" : "gelu_backward", d_dx + off, dx, n, 1e-6);
        cuda_free(d_x), cuda_free(d_dy), cuda_free(d_y), cuda_free(d_dx);
        free(x), free(dy), free(y), free(dx);
    }
}

static void test_scale_rows(void) {
    const int B = 3;
    const size_t n = 1001;
    float *x = hfill(B * n, -1, 1), s[3] = {0.0f, 1.25f, 1.0f}, *y = malloc(B * n * 4);
    scale_rows_forward(y, x, s, B, n);
    float *d_x = to_dev(x, B * n), *d_s = to_dev(s, 3), *d_y = cuda_malloc(B * n * 4);
    scale_rows_forward_cuda(d_y, d_x, d_s, B, n, ST);
    cmp_bits("scale_rows_forward", d_y, y, B * n);
    cuda_free(d_x), cuda_free(d_s), cuda_free(d_y);
    free(x), free(y);
}

static void test_softmax(int N, int C) {
    size_t n = (size_t)N * C;
    float *x = hfill(n, -5, 5), *g = hfill(n, -1, 1), *p = malloc(n * 4), *dx = malloc(n * 4);
    const float alpha = 0.125f;
    for (int i = 0; i < N; i++) {  // the CPU reference: max-subtracted, as ops_cpu.c
        const float *r = x + (size_t)i * C;
        float *o = p + (size_t)i * C, mx = -INFINITY, s = 0.0f;
        for (int j = 0; j < C; j++) mx = fmaxf(mx, alpha * r[j]);
        for (int j = 0; j < C; j++) s += (o[j] = expf(alpha * r[j] - mx));
        for (int j = 0; j < C; j++) o[j] /= s;
        float d = 0.0f;
        for (int j = 0; j < C; j++) d += o[j] * g[(size_t)i * C + j];
        for (int j = 0; j < C; j++) dx[(size_t)i * C + j] = o[j] * (g[(size_t)i * C + j] - d);
    }
    float *d_x = to_dev(x, n), *d_g = to_dev(g, n), *d_p = cuda_malloc(n * 4);
    softmax_forward_cuda(d_p, d_x, N, C, alpha, ST);
    cmp("softmax_forward", d_p, p, n, 1e-5);
    softmax_backward_cuda(d_g, d_g, d_p, N, C, ST);  // in place
    cmp("softmax_backward (in place)", d_g, dx, n, 1e-5);
    cuda_free(d_x), cuda_free(d_g), cuda_free(d_p);
    free(x), free(g), free(p), free(dx);
}

static void test_l2norm(int N, int C) {
    size_t n = (size_t)N * C;
    float *x = hfill(n, -1, 1), *dy = hfill(n, -1, 1);
    for (int j = 0; j < C; j++) x[j] = 1e-14f;  // row 0 takes the eps branch
    float *y = malloc(n * 4), *nrm = malloc(N * 4), *dx = malloc(n * 4);
    l2norm_forward(y, nrm, x, N, C, 1e-12f);
    l2norm_backward(dx, dy, y, nrm, N, C, 1e-12f);
    float *d_x = to_dev(x, n), *d_dy = to_dev(dy, n), *d_y = cuda_malloc(n * 4);
    float *d_n = cuda_malloc(N * 4), *d_dx = cuda_malloc(n * 4);
    l2norm_forward_cuda(d_y, d_n, d_x, N, C, 1e-12f, ST);
    cmp("l2norm_forward", d_y, y, n, 1e-5);
    cmp("l2norm_forward norm", d_n, nrm, N, 1e-5);
    l2norm_backward_cuda(d_dx, d_dy, d_y, d_n, N, C, 1e-12f, ST);
    // Row 0 (gradient dy/eps, ~1e12) apart, so it does not hide the others' errors.
    cmp("l2norm_backward (eps row)", d_dx, dx, (size_t)C, 1e-6);
    cmp("l2norm_backward", d_dx + C, dx + C, n - C, 1e-5);
    cuda_free(d_x), cuda_free(d_dy), cuda_free(d_y), cuda_free(d_n), cuda_free(d_dx);
    free(x), free(dy), free(y), free(nrm), free(dx);
}

static void test_weightnorm(int O, int In) {
    size_t n = (size_t)O * In;
    float *v = hfill(n, -1, 1), *g = hfill(O, 0.5f, 2), *dw = hfill(n, -1, 1);
    float *dv0 = hfill(n, -1, 1), *dg0 = hfill(O, -1, 1);
    float *w = malloc(n * 4), *vn = malloc(O * 4), *dv = dup_h(dv0, n), *dg = dup_h(dg0, O);
    weightnorm_forward(w, vn, g, v, O, In);
    weightnorm_backward(dg, dv, dw, g, v, vn, O, In);
    float *d_v = to_dev(v, n), *d_g = to_dev(g, O), *d_dw = to_dev(dw, n), *d_w = cuda_malloc(n * 4);
    float *d_vn = cuda_malloc(O * 4), *d_dv = to_dev(dv0, n), *d_dg = to_dev(dg0, O);
    weightnorm_forward_cuda(d_w, d_vn, d_g, d_v, O, In, ST);
    cmp("weightnorm_forward w", d_w, w, n, 1e-5);
    cmp("weightnorm_forward vnorm", d_vn, vn, O, 1e-5);
    weightnorm_backward_cuda(d_dg, d_dv, d_dw, d_g, d_v, d_vn, O, In, ST);
    cmp("weightnorm_backward dv (accumulated)", d_dv, dv, n, 1e-5);
    cmp("weightnorm_backward dg (accumulated)", d_dg, dg, O, 1e-5);
    weightnorm_backward(NULL, dv, dw, g, v, vn, O, In);
    weightnorm_backward_cuda(NULL, d_dv, d_dw, d_g, d_v, d_vn, O, In, ST);
    cmp("weightnorm_backward dv, dg NULL", d_dv, dv, n, 1e-5);
    cuda_free(d_v), cuda_free(d_g), cuda_free(d_dw), cuda_free(d_w), cuda_free(d_vn);
    cuda_free(d_dv), cuda_free(d_dg);
    free(v), free(g), free(dw), free(dv0), free(dg0), free(w), free(vn), free(dv), free(dg);
}

// ---------------------------------------------------------------- attention

static void test_attention(int B, int T, int D, int NH) {
    char what[160];
    const char *mode = cuda_gemm_mode_name(ctx.mode);
    size_t nq = (size_t)B * T * 3 * D, no = (size_t)B * T * D, na = (size_t)B * NH * T * T;
    float *qkv = hfill(nq, -2, 2), *dout = hfill(no, -1, 1);
    float *out = malloc(no * 4), *att = malloc(na * 4), *dqkv = malloc(nq * 4);
    attention_forward(out, att, qkv, B, T, D, NH);
    attention_backward(dqkv, dout, qkv, att, B, T, D, NH);
    float *d_qkv = to_dev(qkv, nq), *d_dout = to_dev(dout, no), *d_out = cuda_malloc(no * 4);
    float *d_att = cuda_malloc(na * 4), *d_dqkv = cuda_malloc(nq * 4);
    attention_forward_cuda(&ctx, d_out, d_att, d_qkv, B, T, D, NH, ST);
    snprintf(what, sizeof what, "attention_forward out %s B=%d T=%d D=%d NH=%d", mode, B, T, D, NH);
    cmp(what, d_out, out, no, gemm_tol());
    snprintf(what, sizeof what, "attention_forward att %s T=%d", mode, T);
    cmp(what, d_att, att, na, gemm_tol());
    float *first = snap(d_out, no);
    attention_forward_cuda(&ctx, d_out, NULL, d_qkv, B, T, D, NH, ST);  // no att kept
    same_run("attention_forward (att NULL)", d_out, first, no);
    free(first);
    attention_backward_cuda(&ctx, d_dqkv, d_dout, d_qkv, d_att, B, T, D, NH, ST);
    snprintf(what, sizeof what, "attention_backward dqkv %s T=%d hd=%d", mode, T, D / NH);
    // The backward's error is relative to dqkv's scale, which is set by the
    // softmax Jacobian; bf16 inputs go through two rounded GEMMs in a row.
    cmp(what, d_dqkv, dqkv, nq, ctx.mode == CUDA_GEMM_FP32 ? 1e-5 : 2 * gemm_tol());
    first = snap(d_dqkv, nq);
    attention_backward_cuda(&ctx, d_dqkv, d_dout, d_qkv, d_att, B, T, D, NH, ST);
    same_run("attention_backward", d_dqkv, first, nq);
    free(first);
    cuda_free(d_qkv), cuda_free(d_dout), cuda_free(d_out), cuda_free(d_att), cuda_free(d_dqkv);
    free(qkv), free(dout), free(out), free(att), free(dqkv);
}

// ---------------------------------------------------------------- patches, bicubic

static void test_patches(void) {
    const int B = 2, C = 3, H = 35, W = 37, p = 8;  // remainders dropped as Conv2d
    size_t ni = (size_t)B * C * H * W, nc = (size_t)B * (H / p) * (W / p) * C * p * p;
    float *img = hfill(ni, -1, 1), *cols = malloc(nc * 4), *back = malloc(ni * 4);
    patch_unfold(cols, img, B, C, H, W, p);
    patch_fold(back, cols, B, C, H, W, p);
    float *d_img = to_dev(img, ni), *d_cols = cuda_malloc(nc * 4), *d_back = cuda_malloc(ni * 4);
    patch_unfold_cuda(d_cols, d_img, B, C, H, W, p, ST);
    cmp_bits("patch_unfold", d_cols, cols, nc);
    patch_fold_cuda(d_back, d_cols, B, C, H, W, p, ST);
    cmp_bits("patch_fold", d_back, back, ni);
    cuda_free(d_img), cuda_free(d_cols), cuda_free(d_back);
    free(img), free(cols), free(back);
}

static void test_bicubic(int IH, int IW, int OH, int OW, int C) {
    float sh = (float)IH / (float)OH, sw = (float)IW / (float)OW;
    size_t ni = (size_t)IH * IW * C, no = (size_t)OH * OW * C;
    float *in = hfill(ni, -1, 1), *dout = hfill(no, -1, 1), *din0 = hfill(ni, -1, 1);
    float *out = malloc(no * 4), *din = dup_h(din0, ni);
    bicubic_forward(out, in, IH, IW, OH, OW, C, sh, sw);
    bicubic_backward(din, dout, IH, IW, OH, OW, C, sh, sw);
    float *d_in = to_dev(in, ni), *d_dout = to_dev(dout, no), *d_out = cuda_malloc(no * 4);
    float *d_din = to_dev(din0, ni);
    bicubic_forward_cuda(d_out, d_in, IH, IW, OH, OW, C, sh, sw, ST);
    cmp_bits("bicubic_forward", d_out, out, no);
    bicubic_backward_cuda(d_din, d_dout, IH, IW, OH, OW, C, sh, sw, ST);
    cmp_bits("bicubic_backward (accumulated)", d_din, din, ni);
    cuda_free(d_in), cuda_free(d_dout), cuda_free(d_out), cuda_free(d_din);
    free(in), free(dout), free(din0), free(out), free(din);
}

// ---------------------------------------------------------------- loss

static void test_loss(int K, int B, int NC, int warmup_epochs, int epoch) {
    DinoLoss L;
    dino_loss_init(&L, K, NC, 0.04, 0.07, warmup_epochs);
    fixture_fill(L.center, (size_t)K, seed_counter++, -0.5f, 0.5f);
    size_t ns = (size_t)NC * B * K, nt = (size_t)2 * B * K;
    float *s = hfill(ns, -3, 3), *t = hfill(nt, -3, 3), *ds = malloc(ns * 4);
    DinoLossCuda G;
    dino_loss_cuda_init(&G, &L);
    LossStats want = dino_loss_forward_backward(&L, ds, s, t, B, epoch);
    float *d_s = to_dev(s, ns), *d_t = to_dev(t, nt), *d_ds = cuda_malloc(ns * 4);
    dino_loss_forward_backward_cuda(&G, d_ds, d_s, d_t, B, epoch, ST);
    LossStats got = dino_loss_cuda_stats(&G, ST);
    CHECK(fabs(got.loss - want.loss) <= 1e-5 * fabs(want.loss), "loss K=%d B=%d crops=%d: %.9g vs %.9g",
          K, B, NC, got.loss, want.loss);
    CHECK(fabs(got.teacher_entropy - want.teacher_entropy) <= 1e-5 * fabs(want.teacher_entropy) &&
              fabs(got.teacher_mean_entropy - want.teacher_mean_entropy) <=
                  1e-5 * fabs(want.teacher_mean_entropy),
          "loss entropies: %.9g %.9g vs %.9g %.9g", got.teacher_entropy, got.teacher_mean_entropy,
          want.teacher_entropy, want.teacher_mean_entropy);
    CHECK(got.teacher_temp == want.teacher_temp, "loss teacher temperature at epoch %d: %g vs %g",
          epoch, got.teacher_temp, want.teacher_temp);
    cmp("loss dstudent", d_ds, ds, ns, 1e-5);
    float *first = snap(d_ds, ns);
    dino_loss_forward_backward_cuda(&G, d_ds, d_s, d_t, B, epoch, ST);
    LossStats again = dino_loss_cuda_stats(&G, ST);
    same_run("loss dstudent", d_ds, first, ns);
    CHECK(!memcmp(&again, &got, sizeof got), "loss statistics: second run gives the same bits");
    free(first);
    // Evaluation only (dstudent NULL).
    dino_loss_forward_backward_cuda(&G, NULL, d_s, d_t, B, epoch, ST);
    again = dino_loss_cuda_stats(&G, ST);
    CHECK(again.loss == got.loss, "loss without gradient: same value");
    // Centre: batch sum and momentum update, bit for bit.
    float *sum = malloc((size_t)K * 4), *d_sum = cuda_malloc((size_t)K * 4);
    dino_center_batch_sum(sum, t, 2 * B, K);
    dino_center_batch_sum_cuda(d_sum, d_t, 2 * B, K, ST);
    cmp_bits("dino_center_batch_sum", d_sum, sum, (size_t)K);
    dino_center_update(&L, sum, 2 * B);
    dino_center_update_cuda(&G, d_sum, 2 * B, ST);
    cmp_bits("dino_center_update", G.center, L.center, (size_t)K);
    DinoLoss L2;
    dino_loss_init(&L2, K, NC, 0.04, 0.07, warmup_epochs);
    dino_loss_cuda_download_center(&G, &L2, ST);
    CHECK(!memcmp(L2.center, L.center, (size_t)K * 4), "centre download");
    dino_loss_free(&L2);
    cuda_free(d_s), cuda_free(d_t), cuda_free(d_ds), cuda_free(d_sum);
    dino_loss_cuda_free(&G);
    dino_loss_free(&L);
    free(s), free(t), free(ds), free(sum);
}

// ---------------------------------------------------------------- optimizer passes

static void test_optim(void) {
    ParamTable t;
    param_table_init(&t);
    param_table_add(&t, "blocks.0.", "attn.qkv.weight", 2, (int64_t[]){300, 137});  // 3 chunks
    param_table_add(&t, "blocks.0.", "attn.qkv.bias", 1, (int64_t[]){300});
    int g = param_table_add(&t, "head.", "last_layer.weight_g", 2, (int64_t[]){64, 1});
    t.p[g].trainable = 0;
    param_table_add(&t, "head.", "last_layer.weight_v", 2, (int64_t[]){64, 129});
    param_table_add(&t, "", "norm.weight", 1, (int64_t[]){5});
    size_t n = t.total;
    float *p = hfill(n, -1, 1);
    float *d_p = to_dev(p, n);
    Optimizer o;
    optim_init(&o, OPTIM_ADAMW, &t);
    CudaOptim go;
    cuda_optim_init(&go, &t);
    uint8_t skip[5] = {0, 0, 0, 1, 0};
    for (int s = 0; s < 4; s++) {
        float *gr = hfill(n, -1, 1);
        for (size_t i = 0; i < n; i++) gr[i] *= s == 2 ? 50.0f : 0.02f;
        float *d_g = to_dev(gr, n);
        const uint8_t *sk = s < 2 ? skip : NULL;
        float nc[5], ng[5];
        clip_gradients(&t, gr, 3.0f, sk, nc);
        clip_gradients_cuda(&go, d_g, 3.0f, sk, ng, ST);
        double en = nerr(ng, nc, 5);
        CHECK(en <= 1e-6, "clip_gradients step %d: norms error %.2g", s, en);
        cmp("clip_gradients grads", d_g, gr, n, 1e-6);
        cuda_upload(d_g, gr, n * 4);  // continue both from the CPU's clipped gradient
        double lr = 5e-4 * (s + 1), wd = 0.04 + 0.1 * s;
        optim_step(&o, p, gr, lr, wd, sk);
        adamw_step_cuda(&go, d_p, d_g, lr, wd, sk, ST);
        cmp_bits("adamw params", d_p, p, n);
        cmp_bits("adamw exp_avg", go.m, o.m, n);
        cmp_bits("adamw exp_avg_sq", go.v, o.v, n);
        cuda_free(d_g);
        free(gr);
    }
    float *tch = hfill(n, -1, 1), *d_t = to_dev(tch, n);
    ema_update(tch, p, n, 0.9965);
    ema_update_cuda(d_t, d_p, n, 0.9965, ST);
    cmp_bits("ema_update", d_t, tch, n);
    cuda_free(d_t), cuda_free(d_p);
    cuda_optim_free(&go);
    optim_free(&o);
    param_table_free(&t);
    free(p), free(tch);
}

int main(void) {
    int ndev = cuda_device_count();
    if (ndev == 0) {
        printf("test_cuda_ops: SKIPPED: no CUDA device (needs an NVIDIA GPU and its driver)\n");
        return 77;
    }
    char desc[256];
    cuda_device_describe(0, desc, sizeof desc);
    printf("device: %s\n", desc);
    char err[256];
    if (cuda_ctx_init(&ctx, 0, CUDA_GEMM_FP32, err, sizeof err)) {
        printf("test_cuda_ops: FAILED: %s\n", err);
        return 1;
    }
    for (int m = CUDA_GEMM_FP32; m <= CUDA_GEMM_BF16; m++) {
        ctx.mode = (CudaGemmMode)m;
        test_linear(2 * 197, 384, 384);  // ViT-S/16 tokens of two images
        test_linear(2 * 197, 384, 1152);
        test_linear(7, 13, 5);           // unaligned sizes
        test_attention(2, 197, 384, 6);  // hd 64
        test_attention(1, 785, 384, 6);  // ViT-S/8 at 224
        test_attention(3, 50, 96, 3);    // hd 32
    }
    ctx.mode = CUDA_GEMM_FP32;
    test_linear(64 * 65, 1536, 384);  // a long K-sum: the MLP's second layer, 64 local crops
    test_layernorm(394, 384);
    test_layernorm(5, 1000);
    test_gelu((size_t)394 * 1536 + 3);
    test_scale_rows();
    test_softmax(100, 785);
    test_l2norm(40, 256);
    test_weightnorm(4096, 256);
    test_patches();
    test_bicubic(14, 14, 28, 28, 384);
    test_bicubic(7, 7, 10, 12, 5);
    test_loss(65536, 4, 4, 0, 0);
    test_loss(1000, 3, 6, 30, 7);  // teacher temperature warm-up
    test_optim();
    cuda_ctx_free(&ctx);
    return test_finish();
}
