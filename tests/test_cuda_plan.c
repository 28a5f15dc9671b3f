// The host-side logic of the CUDA backend, tested on the CPU (no device
// needed, runs in every build): the optimizer's chunk table covers every
// trainable tensor exactly; the per-tensor AdamW coefficients plus the
// kernels' element arithmetic (cuda_elem.h), replayed chunk by chunk,
// reproduce optim_step bit for bit over six steps with a skipped tensor, and
// the EMA and centre update bit for bit; the clipping partition gives
// clip_gradients' norms; the GEMM shape builders, fed to a reference
// column-major GEMM, reproduce the CPU linear layers and (with the head
// layout maps and the attention chunking) the CPU attention forward and
// backward; the patch layout maps reproduce patch_unfold/fold exactly; and
// the reduction/attention plans have the sizes the kernels rely on.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_elem.h"
#include "cuda/cuda_plan.h"
#include "cuda/ops_cuda.h"
#include "ops.h"
#include "params.h"
#include "rng.h"
#include "testlib.h"
#include "train/loss.h"
#include "train/optim.h"

static float *filled(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    fixture_fill(x, n, seed, lo, hi);
    return x;
}

// max|got − want| / max|want| (normalised error).
static double nerr(const float *got, const float *want, size_t n) {
    double e = 0.0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > e || d != d) e = d != d ? INFINITY : d;
        if (fabs(want[i]) > m) m = fabs(want[i]);
    }
    return e / m;
}

static void build_table(ParamTable *t) {
    param_table_init(t);
    param_table_add(t, "a.", "weight", 2, (int64_t[]){37, 5});
    param_table_add(t, "a.", "bias", 1, (int64_t[]){11});
    int g = param_table_add(t, "b.", "weight_g", 2, (int64_t[]){4, 1});
    t->p[g].trainable = 0;  // like head.last_layer.weight_g with norm_last_layer
    param_table_add(t, "c.", "ln", 1, (int64_t[]){7});
    param_table_add(t, "last.", "weight", 2, (int64_t[]){40, 3});
}

static void test_chunks(void) {
    ParamTable t;
    build_table(&t);
    CudaOptimPlan p;
    const uint32_t CH = 16;
    cuda_optim_plan_build(&p, &t, CH);
    int ok = p.ntensors == t.n && p.total == t.total, expect = 0, maxc = 0;
    for (int i = 0; i < t.n; i++) {
        int want = t.p[i].trainable ? (int)((t.p[i].numel + CH - 1) / CH) : 0;
        expect += want;
        if (want > maxc) maxc = want;
        int have = p.first_chunk[i + 1] - p.first_chunk[i];
        ok &= have == want;
        size_t next = t.p[i].offset;
        for (int c = p.first_chunk[i]; c < p.first_chunk[i + 1]; c++) {
            ok &= p.chunks[c].tensor == i && p.chunks[c].offset == next && p.chunks[c].n >= 1 &&
                  p.chunks[c].n <= CH;
            next += p.chunks[c].n;
        }
        if (t.p[i].trainable) ok &= next == t.p[i].offset + t.p[i].numel;
        ok &= p.no_decay[i] == (uint8_t)t.p[i].no_decay && p.trainable[i] == (uint8_t)t.p[i].trainable;
    }
    ok &= p.nchunks == expect && p.max_chunks_per_tensor == maxc && maxc == 12;
    CHECK(ok, "chunk table: %d chunks of <= %u floats cover every trainable tensor once, in order",
          p.nchunks, CH);
    cuda_optim_plan_free(&p);
    param_table_free(&t);
}

static void test_adamw_clip_ema(void) {
    ParamTable t;
    build_table(&t);
    CudaOptimPlan p;
    cuda_optim_plan_build(&p, &t, 16);
    size_t n = t.total;
    float *pc = filled(n, 11, -1, 1), *pg = malloc(n * sizeof(float));
    memcpy(pg, pc, n * sizeof(float));
    float *mg = calloc(n, sizeof(float)), *vg = calloc(n, sizeof(float));
    int64_t *step = calloc((size_t)t.n, sizeof(int64_t));
    CudaTensorCoef *coef = calloc((size_t)t.n, sizeof *coef);
    Optimizer o;
    optim_init(&o, OPTIM_ADAMW, &t);
    uint8_t skip[5] = {0, 0, 0, 0, 1};
    int same = 1;
    for (int s = 0; s < 6; s++) {
        float *g = filled(n, 100 + (uint64_t)s, -1, 1);
        for (size_t i = 0; i < n; i++) g[i] *= (s % 3 == 0) ? 1e-3f : (s % 3 == 1 ? 1.0f : 30.0f);
        double lr = 1e-3 * (s + 1), wd = 0.04 + 0.01 * s;
        const uint8_t *sk = s < 2 ? skip : NULL;
        optim_step(&o, pc, g, lr, wd, sk);
        cuda_adamw_coefs(coef, step, &p, lr, wd, o.beta1, o.beta2, sk);
        cuda_adamw_simulate(&p, coef, pg, g, mg, vg, o.beta1, o.beta2, o.eps);
        same &= !memcmp(pc, pg, n * sizeof(float)) && !memcmp(o.m, mg, n * sizeof(float)) &&
                !memcmp(o.v, vg, n * sizeof(float)) &&
                !memcmp(o.step, step, (size_t)t.n * sizeof(int64_t));
        free(g);
    }
    CHECK(same, "AdamW: host coefficients + kernel arithmetic == optim_step bit for bit (6 steps, skip)");
    CHECK(step[4] == 4 && step[0] == 6 && step[2] == 0, "AdamW step counts: skipped %lld, kept %lld, frozen %lld",
          (long long)step[4], (long long)step[0], (long long)step[2]);

    // Clipping: tensors of different norms, some above the threshold.
    float *gc = filled(n, 7, -1, 1);
    for (size_t i = t.p[1].offset; i < t.p[1].offset + t.p[1].numel; i++) gc[i] *= 1e-3f;
    float *gs = malloc(n * sizeof(float));
    memcpy(gs, gc, n * sizeof(float));
    float nc[5], ns[5];
    clip_gradients(&t, gc, 1.5f, skip, nc);
    cuda_active_coefs(coef, &p, skip);
    cuda_clip_simulate(&p, coef, gs, 1.5f, ns);
    double en = nerr(ns, nc, 5), eg = nerr(gs, gc, n);
    CHECK(en <= 1e-6 && eg <= 1e-6 && ns[4] == 0.0f && ns[2] == 0.0f && ns[0] > 1.5f && ns[1] < 1.5f,
          "clip: per-chunk norms == clip_gradients (norm err %.2g, grad err %.2g, skipped/frozen 0)",
          en, eg);

    // EMA and centre update: bit for bit.
    float *te = filled(n, 21, -1, 1), *st = filled(n, 22, -1, 1), *te2 = malloc(n * sizeof(float));
    memcpy(te2, te, n * sizeof(float));
    ema_update(te, st, n, 0.996);
    float mf = (float)0.996, om = (float)(1.0 - 0.996);
    for (size_t i = 0; i < n; i++) te2[i] = el_ema(te2[i], st[i], mf, om);
    CHECK(!memcmp(te, te2, n * sizeof(float)), "EMA element arithmetic == ema_update bit for bit");
    DinoLoss L;
    dino_loss_init(&L, 300, 4, 0.04, 0.04, 0);
    fixture_fill(L.center, 300, 5, -1, 1);
    float *c2 = malloc(300 * sizeof(float)), *sum = filled(300, 6, -20, 20);
    memcpy(c2, L.center, 300 * sizeof(float));
    dino_center_update(&L, sum, 24);
    for (int k = 0; k < 300; k++)
        c2[k] = el_center(c2[k], sum[k], 24.0f, (float)0.9, (float)(1.0 - 0.9));
    CHECK(!memcmp(L.center, c2, 300 * sizeof(float)), "centre update == dino_center_update bit for bit");
    dino_loss_free(&L);
    free(c2), free(sum), free(te), free(te2), free(st), free(gc), free(gs);
    optim_free(&o);
    free(pc), free(pg), free(mg), free(vg), free(step), free(coef);
    cuda_optim_plan_free(&p);
    param_table_free(&t);
}

static void test_linear_shapes(void) {
    const int N = 9, C = 13, OC = 7;
    float *inp = filled((size_t)N * C, 1, -1, 1), *w = filled((size_t)OC * C, 2, -1, 1);
    float *b = filled(OC, 3, -1, 1), *dout = filled((size_t)N * OC, 4, -1, 1);
    float *want = malloc((size_t)N * OC * 4), *got = malloc((size_t)N * OC * 4);
    linear_forward(want, inp, w, b, N, C, OC);
    GemmShape s = cuda_gemm_linear_fwd(N, C, OC);
    cuda_gemm_ref(&s, 1.0f, w, inp, 0.0f, NULL, got, b);
    double e1 = nerr(got, want, (size_t)N * OC);
    float *dw0 = filled((size_t)OC * C, 5, -1, 1), *dwc = malloc((size_t)OC * C * 4),
          *dwg = malloc((size_t)OC * C * 4);
    memcpy(dwc, dw0, (size_t)OC * C * 4), memcpy(dwg, dw0, (size_t)OC * C * 4);
    float *dic = malloc((size_t)N * C * 4), *dig = malloc((size_t)N * C * 4);
    linear_backward(dic, dwc, NULL, dout, inp, w, N, C, OC);
    s = cuda_gemm_linear_dinp(N, C, OC);
    cuda_gemm_ref(&s, 1.0f, w, dout, 0.0f, NULL, dig, NULL);
    s = cuda_gemm_linear_dw(N, C, OC);
    cuda_gemm_ref(&s, 1.0f, inp, dout, 1.0f, dwg, dwg, NULL);
    double e2 = nerr(dig, dic, (size_t)N * C), e3 = nerr(dwg, dwc, (size_t)OC * C);
    CHECK(e1 <= 1e-6 && e2 <= 1e-6 && e3 <= 1e-6,
          "GEMM shapes: linear fwd %.2g, dinp %.2g, dw (accumulating) %.2g vs the CPU layer", e1, e2, e3);
    free(inp), free(w), free(b), free(dout), free(want), free(got), free(dw0), free(dwc), free(dwg);
    free(dic), free(dig);
}

// attention_forward/backward replayed with the CUDA backend's plan, layout
// maps and GEMM shapes (cap small enough to force several passes).
static void sim_attention(int B, int T, int D, int NH) {
    const int hd = D / NH, D3 = 3 * D;
    size_t cap = (size_t)2 * NH * T * ((T + 3) / 4 * 4);
    CudaAttnPlan pl = cuda_attention_plan(B, T, D, NH, cap);
    const int ld = pl.ld;
    const float scale = 1.0f / sqrtf((float)hd);
    float *qkv = filled((size_t)B * T * D3, 31, -2, 2), *dout = filled((size_t)B * T * D, 32, -1, 1);
    float *out_c = malloc((size_t)B * T * D * 4), *att_c = malloc((size_t)B * NH * T * T * 4);
    float *out_g = malloc((size_t)B * T * D * 4), *att_g = malloc((size_t)B * NH * T * T * 4);
    float *dq_c = malloc((size_t)B * T * D3 * 4), *dq_g = malloc((size_t)B * T * D3 * 4);
    attention_forward(out_c, att_c, qkv, B, T, D, NH);
    attention_backward(dq_c, dout, qkv, att_c, B, T, D, NH);
    size_t tok = (size_t)pl.chunk * T * D;
    float *sc = malloc(pl.bwd_scratch * sizeof(float));
    float *q = sc, *k = q + tok, *v = k + tok, *y = v + tok, *dq = y + tok, *dk = dq + tok,
          *dv = dk + tok, *S = dv + tok;
    for (int b0 = 0; b0 < B; b0 += pl.chunk) {
        int Bc = B - b0 < pl.chunk ? B - b0 : pl.chunk, nb = Bc * NH;
        size_t n = (size_t)Bc * T * D;
        const float *src = qkv + (size_t)b0 * T * D3;
        for (size_t i = 0; i < n; i++) {
            q[i] = src[el_head_offset(i, D3, 0, T, D, NH)];
            k[i] = src[el_head_offset(i, D3, 1, T, D, NH)];
            v[i] = src[el_head_offset(i, D3, 2, T, D, NH)];
            y[i] = dout[(size_t)b0 * T * D + el_head_offset(i, D, 0, T, D, NH)];  // dy
        }
        // forward
        GemmShape g = cuda_gemm_attn_xyt(T, hd, ld, (long long)T * ld, nb);
        cuda_gemm_ref(&g, 1.0f, k, q, 0.0f, NULL, S, NULL);
        float *att = att_g + (size_t)b0 * NH * T * T;
        for (int r = 0; r < nb * T; r++) {
            float *row = S + (size_t)r * ld, mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < T; j++) mx = fmaxf(mx, scale * row[j]);
            for (int j = 0; j < T; j++) sum += expf(scale * row[j] - mx);
            for (int j = 0; j < T; j++) att[(size_t)r * T + j] = row[j] = expf(scale * row[j] - mx) / sum;
        }
        g = cuda_gemm_attn_pv(T, hd, ld, (long long)T * ld, nb);
        cuda_gemm_ref(&g, 1.0f, v, S, 0.0f, NULL, dq, NULL);  // dq as the y buffer here
        for (size_t i = 0; i < n; i++) out_g[(size_t)b0 * T * D + el_head_offset(i, D, 0, T, D, NH)] = dq[i];
        // backward (y holds dy): P from att copied into the padded scratch
        for (int r = 0; r < nb * T; r++)
            memcpy(S + (size_t)r * ld, att + (size_t)r * T, (size_t)T * sizeof(float));
        g = cuda_gemm_attn_ptx(T, hd, ld, (long long)T * ld, nb);
        cuda_gemm_ref(&g, 1.0f, y, S, 0.0f, NULL, dv, NULL);
        g = cuda_gemm_attn_xyt(T, hd, ld, (long long)T * ld, nb);
        cuda_gemm_ref(&g, 1.0f, v, y, 0.0f, NULL, S, NULL);
        for (int r = 0; r < nb * T; r++) {
            float *row = S + (size_t)r * ld, dot = 0.0f;
            const float *pr = att + (size_t)r * T;
            for (int j = 0; j < T; j++) dot += pr[j] * row[j];
            for (int j = 0; j < T; j++) row[j] = pr[j] * (row[j] - dot);
        }
        g = cuda_gemm_attn_pv(T, hd, ld, (long long)T * ld, nb);
        cuda_gemm_ref(&g, scale, k, S, 0.0f, NULL, dq, NULL);
        g = cuda_gemm_attn_ptx(T, hd, ld, (long long)T * ld, nb);
        cuda_gemm_ref(&g, scale, q, S, 0.0f, NULL, dk, NULL);
        float *dst = dq_g + (size_t)b0 * T * D3;
        for (size_t i = 0; i < n; i++) {
            dst[el_head_offset(i, D3, 0, T, D, NH)] = dq[i];
            dst[el_head_offset(i, D3, 1, T, D, NH)] = dk[i];
            dst[el_head_offset(i, D3, 2, T, D, NH)] = dv[i];
        }
    }
    double e1 = nerr(out_g, out_c, (size_t)B * T * D), e2 = nerr(att_g, att_c, (size_t)B * NH * T * T);
    double e3 = nerr(dq_g, dq_c, (size_t)B * T * D3);
    CHECK(pl.passes >= 2 && e1 <= 1e-5 && e2 <= 1e-5 && e3 <= 1e-5,
          "attention B=%d T=%d D=%d NH=%d in %d passes: out %.2g, att %.2g, dqkv %.2g", B, T, D, NH,
          pl.passes, e1, e2, e3);
    free(qkv), free(dout), free(out_c), free(att_c), free(out_g), free(att_g), free(dq_c), free(dq_g);
    free(sc);
}

static void test_patches(void) {
    const int B = 2, C = 3, H = 11, W = 13, p = 4;  // remainders on both axes
    int GH = H / p, GW = W / p, K = C * p * p;
    size_t nc = (size_t)B * GH * GW * K, ni = (size_t)B * C * H * W;
    float *img = filled(ni, 41, -1, 1), *cc = malloc(nc * 4), *cg = malloc(nc * 4);
    float *dc = malloc(ni * 4), *dg = malloc(ni * 4);
    patch_unfold(cc, img, B, C, H, W, p);
    for (size_t i = 0; i < nc; i++) cg[i] = img[el_unfold_offset(i, C, H, W, p)];
    patch_fold(dc, cc, B, C, H, W, p);
    for (size_t i = 0; i < ni; i++) {
        size_t o = el_fold_offset(i, C, H, W, p);
        dg[i] = o == (size_t)-1 ? 0.0f : cc[o];
    }
    CHECK(!memcmp(cc, cg, nc * 4) && !memcmp(dc, dg, ni * 4),
          "patch layout maps == patch_unfold / patch_fold (H, W not multiples of p)");
    free(img), free(cc), free(cg), free(dc), free(dg);
}

static void test_plans(void) {
    int ok = 1;
    const int Ns[] = {1, 31, 32, 33, 50240};
    for (int i = 0; i < 5; i++) {
        CudaReducePlan a = cuda_layernorm_bwd_plan(Ns[i], 384), b = cuda_colsum_plan(Ns[i], 1152);
        ok &= a.blocks * CUDA_LN_ROWS_PER_BLOCK >= Ns[i] && (a.blocks - 1) * CUDA_LN_ROWS_PER_BLOCK < Ns[i];
        ok &= a.scratch_floats == (size_t)a.blocks * 2 * 384;
        ok &= b.blocks * CUDA_COLSUM_ROWS >= Ns[i] && (b.blocks - 1) * CUDA_COLSUM_ROWS < Ns[i];
        ok &= b.scratch_floats == (size_t)b.blocks * 1152;
    }
    ok &= cuda_layernorm_bwd_plan(0, 8).blocks == 0;
    CHECK(ok, "reduction plans: row partitions cover N exactly, scratch sizes");
    // ViT-S/8 at 224: T = 785, 6 heads of 64.
    CudaAttnPlan a = cuda_attention_plan(64, 785, 384, 6, CUDA_ATTN_SCRATCH_CAP);
    size_t per = (size_t)6 * 785 * 788;
    CHECK(a.ld == 788 && a.chunk >= 1 && (size_t)a.chunk * per <= CUDA_ATTN_SCRATCH_CAP &&
              (size_t)(a.chunk + 1) * per > CUDA_ATTN_SCRATCH_CAP && a.passes * a.chunk >= 64 &&
              (a.passes - 1) * a.chunk < 64 &&
              a.bwd_scratch == 7 * (size_t)a.chunk * 785 * 384 + a.chunk * per,
          "attention plan ViT-S/8: %d samples per pass, %d passes, %.0f MiB backward scratch",
          a.chunk, a.passes, a.bwd_scratch * 4.0 / (1 << 20));
    CudaAttnPlan big = cuda_attention_plan(3, 5000, 64, 1, 1000);
    CudaAttnPlan small = cuda_attention_plan(5, 17, 64, 2, (size_t)1 << 30);
    CHECK(big.chunk == 1 && big.passes == 3 && small.chunk == 5 && small.passes == 1,
          "attention plan: at least one sample per pass, never more than B");
    CHECK(cuda_blocks_for(0, 256, 100) == 1 && cuda_blocks_for(257, 256, 100) == 2 &&
              cuda_blocks_for(1 << 30, 256, 100) == 100,
          "blocks_for: at least 1, rounds up, capped");
    // Operand alignment as cuBLASLt's heuristic is told it: address, row
    // and batch stride bytes, capped at 256.
    const char *base = (const char *)(uintptr_t)0x100000;  // 1 MiB: 256-aligned
    CHECK(cuda_gemm_align(base, 64, 0) == 256 && cuda_gemm_align(base, 13, 0) == 4 &&
              cuda_gemm_align(base, 6, 0) == 8 && cuda_gemm_align(base, 4, 0) == 16 &&
              cuda_gemm_align(base + 4, 64, 0) == 4 && cuda_gemm_align(base + 16, 64, 0) == 16 &&
              cuda_gemm_align(base, 64, 197 * 64) == 256 && cuda_gemm_align(base, 64, 197) == 4 &&
              cuda_gemm_align(base, 200, 197 * 200) == 32 && cuda_gemm_align(base + 4, 0, 0) == 4,
          "GEMM operand alignment: address, leading dimension and batch stride, capped at 256");
    CudaGemmMode m;
    int okm = 1;
    const char *names[3] = {"fp32", "tf32", "bf16"};
    for (int i = 0; i < 3; i++)
        okm &= cuda_gemm_mode_parse(names[i], &m) == 0 && !strcmp(cuda_gemm_mode_name(m), names[i]);
    okm &= cuda_gemm_mode_parse("fp16", &m) == -1;
    CHECK(okm, "GEMM mode names round-trip; unknown names are refused");
    // The value of $DINO_CUDA_GEMM as both engines take it: unset or empty -> tf32.
    char err[160] = "";
    int oke = 1;
    oke &= cuda_gemm_mode_choose(NULL, &m, err, sizeof err) == 0 && m == CUDA_GEMM_TF32;
    oke &= cuda_gemm_mode_choose("", &m, err, sizeof err) == 0 && m == CUDA_GEMM_TF32;
    oke &= cuda_gemm_mode_choose("bf16", &m, err, sizeof err) == 0 && m == CUDA_GEMM_BF16;
    oke &= cuda_gemm_mode_choose("fp16", &m, err, sizeof err) == -1 && strstr(err, "DINO_CUDA_GEMM") && strstr(err, "'fp16'");
    CHECK(oke, "DINO_CUDA_GEMM: default tf32, a name picks the mode, a bad value refused (%s)", err);
}

int main(void) {
    test_chunks();
    test_adamw_clip_ema();
    test_linear_shapes();
    sim_attention(3, 13, 32, 4);   // hd 8, odd T
    sim_attention(3, 37, 128, 2);  // hd 64
    sim_attention(3, 29, 96, 3);   // hd 32
    test_patches();
    test_plans();
    return test_finish();
}
