// The ViT backbone on the device (model_cuda.h): src/vit.c's forward and
// backward, op for op, on the arena laid out by vit_cuda_layout. Training
// keeps every block's inputs, the attention probabilities, qkv, the
// pre-GELU activations and the LayerNorm statistics; LayerNorm outputs and
// the GELU are recomputed in backward exactly as on the CPU. Inference uses
// one set of block buffers and the last blocks' residual slots. The only kernels of this
// file are the token embedding (CLS + patches + position) and its adjoint;
// everything else is an ops_cuda.h twin.
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "common.h"
#include "params.h"
#include "train/loss.h"
}
#include "cuda/cuda_common.cuh"
#include "cuda/model_cuda.h"

// x0[b,t,:] = (t == 0 ? cls : tok[b,t-1,:]) + pos[t,:]; one thread per float.
__global__ static void embed_forward_kernel(float *x0, const float *tok, const float *cls,
                                            const float *pos, int B, int T, int D) {
    size_t n = (size_t)B * T * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i % D);
        size_t bt = i / D;
        int t = (int)(bt % T), b = (int)(bt / T);
        float src = t == 0 ? cls[j] : tok[((size_t)b * (T - 1) + t - 1) * D + j];
        x0[i] = __fadd_rn(src, pos[(size_t)t * D + j]);
    }
}

// The adjoint: dpos[t,:] = Σ_b dx[b,t,:] (samples added in order, as the
// CPU) and dtok[b,t-1,:] = dx[b,t,:]. One thread per (t, j).
__global__ static void embed_backward_kernel(float *dpos, float *dtok, const float *dx, int B,
                                             int T, int D) {
    size_t n = (size_t)T * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i % D), t = (int)(i / D);
        float s = 0.0f;
        for (int b = 0; b < B; b++) {
            float v = dx[((size_t)b * T + t) * D + j];
            s = __fadd_rn(s, v);
            if (t > 0) dtok[((size_t)b * (T - 1) + t - 1) * D + j] = v;
        }
        dpos[i] = s;
    }
}

// y[i] += x[i].
__global__ static void add_inplace_kernel(float *y, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = __fadd_rn(y[i], x[i]);
}

// Position embedding for this layout's image size (vit_interpolate_pos).
static void pos_forward(const ViTConfig *cfg, const float *pos_embed, const VitCudaLayout *l,
                        float *pos, cudaStream_t s) {
    int oh, ow, g = vit_grid(cfg), D = l->D;
    float sh, sw;
    if (!vit_pos_interp_plan(cfg, l->H, l->W, &oh, &ow, &sh, &sw)) {
        CUDA_CHECK(cudaMemcpyAsync(pos, pos_embed, (size_t)l->T * D * sizeof(float),
                                  cudaMemcpyDeviceToDevice, s));
        return;
    }
    CUDA_CHECK(cudaMemcpyAsync(pos, pos_embed, (size_t)D * sizeof(float), cudaMemcpyDeviceToDevice, s));
    bicubic_forward_cuda(pos + D, pos_embed + D, g, g, oh, ow, D, sh, sw, s);
}

// Its adjoint, accumulating into dpos_embed.
static void pos_backward(const ViTConfig *cfg, float *dpos_embed, const VitCudaLayout *l,
                         const float *dpos, cudaStream_t s) {
    int oh, ow, g = vit_grid(cfg), D = l->D;
    float sh, sw;
    if (!vit_pos_interp_plan(cfg, l->H, l->W, &oh, &ow, &sh, &sw)) {
        size_t n = (size_t)l->T * D;
        add_inplace_kernel<<<grid_for(n, 256), 256, 0, s>>>(dpos_embed, dpos, n);
        CUDA_CHECK_LAUNCH();
        return;
    }
    add_inplace_kernel<<<grid_for((size_t)D, 256), 256, 0, s>>>(dpos_embed, dpos, (size_t)D);
    CUDA_CHECK_LAUNCH();
    bicubic_backward_cuda(dpos_embed + D, dpos + D, g, g, oh, ow, D, sh, sw, s);
}

// Residual slot k: training keeps depth+1 slots (every block's input),
// inference cycles through nslots (the last blocks' outputs survive).
static float *res_slot(const VitCudaLayout *l, float *arena, int k) {
    return arena + vit_cuda_res_slot(l, k);
}

extern "C" void vit_cuda_forward(CudaCtx *ctx, const ViTConfig *cfg, const ViTWeights *w,
                                 const VitCudaLayout *l, float *arena, const float *images,
                                 const float *drop, cudaStream_t s) {
    const int B = l->B, D = l->D, T = l->T, Np = l->Np, NH = l->NH, H4 = l->H4, L = cfg->depth;
    const size_t BT = (size_t)B * T, btd = l->btd;
    const float eps = cfg->ln_eps;
    float *cols = arena + l->cols, *tok = arena + l->tok, *pos = arena + l->pos;

    patch_unfold_cuda(cols, images, B, cfg->in_chans, l->H, l->W, cfg->patch, s);
    linear_forward_cuda(ctx, tok, cols, w->patch_w, w->patch_b, B * Np, l->CPP, D, s);
    pos_forward(cfg, w->pos_embed, l, pos, s);
    float *x0 = res_slot(l, arena, 0);
    embed_forward_kernel<<<grid_for(btd, 256), 256, 0, s>>>(x0, tok, w->cls_token, pos, B, T, D);
    CUDA_CHECK_LAUNCH();

    for (int li = 0; li < L; li++) {
        const size_t k = l->train ? (size_t)li : 0;
        const float *xin = res_slot(l, arena, li);
        float *xout = res_slot(l, arena, li + 1);
        float *xmid = l->train ? arena + l->mid + k * btd : xout;
        float *ln = arena + l->ln;
        float *qkv = arena + l->qkv + k * 3 * btd, *att = arena + l->att + k * l->att_block;
        float *atty = arena + l->atty + k * btd, *fc1 = arena + l->fc1 + k * BT * H4;
        float *m1 = l->train ? arena + l->stats1 + k * 2 * BT : NULL;
        float *m2 = l->train ? arena + l->stats2 + k * 2 * BT : NULL;
        const float *s1 = drop ? drop + (size_t)(2 * li) * B : NULL;
        const float *s2 = drop ? drop + (size_t)(2 * li + 1) * B : NULL;

        // x_mid = x_in + s1·proj(attn(ln1(x_in)))
        layernorm_forward_cuda(ln, m1, m1 ? m1 + BT : NULL, xin, w->blocks[li].ln1_w,
                               w->blocks[li].ln1_b, (int)BT, D, eps, s);
        linear_forward_cuda(ctx, qkv, ln, w->blocks[li].qkv_w, w->blocks[li].qkv_b, (int)BT, D,
                            3 * D, s);
        // Inference needs no probabilities: the twin then keeps scores in scratch.
        attention_forward_cuda(ctx, atty, l->train ? att : NULL, qkv, B, T, D, NH, s);
        linear_residual_forward_cuda(ctx, xmid, xin, atty, w->blocks[li].proj_w,
                                     w->blocks[li].proj_b, s1, B, T, D, D, s);
        // x_out = x_mid + s2·fc2(gelu(fc1(ln2(x_mid))))
        layernorm_forward_cuda(ln, m2, m2 ? m2 + BT : NULL, xmid, w->blocks[li].ln2_w,
                               w->blocks[li].ln2_b, (int)BT, D, eps, s);
        linear_forward_cuda(ctx, fc1, ln, w->blocks[li].fc1_w, w->blocks[li].fc1_b, (int)BT, D, H4,
                            s);
        float *h = l->train ? arena + l->hbuf : fc1;
        gelu_forward_cuda(h, fc1, BT * H4, s);
        linear_residual_forward_cuda(ctx, xout, xmid, h, w->blocks[li].fc2_w, w->blocks[li].fc2_b,
                                     s2, B, T, H4, D, s);
    }
    float *statsf = arena + l->statsf;
    layernorm_forward_cuda(arena + l->out, statsf, statsf + BT, res_slot(l, arena, L), w->norm_w,
                           w->norm_b, (int)BT, D, eps, s);
}

extern "C" void vit_cuda_backward(CudaCtx *ctx, const ViTConfig *cfg, const ViTWeights *w,
                                  ViTWeights *g, const VitCudaLayout *l, const VitCudaScratch *sc,
                                  float *arena, const float *dout, const float *drop,
                                  cudaStream_t s) {
    DINO_ASSERT(l->train);
    const int B = l->B, D = l->D, T = l->T, Np = l->Np, NH = l->NH, H4 = l->H4, L = cfg->depth;
    const size_t BT = (size_t)B * T, btd = l->btd;
    const float eps = cfg->ln_eps;
    float *dres = arena + sc->dres, *dbr_buf = arena + sc->dbr, *dln = arena + sc->dln;
    float *datty = arena + sc->datty, *dqkv = arena + sc->dqkv, *dh = arena + sc->dh;
    float *ln = arena + l->ln, *hbuf = arena + l->hbuf, *statsf = arena + l->statsf;

    CUDA_CHECK(cudaMemsetAsync(dres, 0, btd * sizeof(float), s));
    layernorm_backward_cuda(dres, g->norm_w, g->norm_b, dout, res_slot(l, arena, L), w->norm_w,
                            statsf, statsf + BT, (int)BT, D, s);

    for (int li = L - 1; li >= 0; li--) {
        const size_t k = (size_t)li;
        const float *xin = res_slot(l, arena, li), *xmid = arena + l->mid + k * btd;
        const float *qkv = arena + l->qkv + k * 3 * btd, *att = arena + l->att + k * l->att_block;
        const float *atty = arena + l->atty + k * btd, *fc1 = arena + l->fc1 + k * BT * H4;
        const float *m1 = arena + l->stats1 + k * 2 * BT, *m2 = arena + l->stats2 + k * 2 * BT;

        // MLP branch.
        const float *dbr = dres;
        if (drop) {
            scale_rows_forward_cuda(dbr_buf, dres, drop + (size_t)(2 * li + 1) * B, B,
                                    (size_t)T * D, s);
            dbr = dbr_buf;
        }
        gelu_forward_cuda(hbuf, fc1, BT * H4, s);
        linear_backward_cuda(ctx, dh, g->blocks[li].fc2_w, g->blocks[li].fc2_b, dbr, hbuf,
                             w->blocks[li].fc2_w, (int)BT, H4, D, s);
        gelu_backward_cuda(dh, fc1, dh, BT * H4, s);
        layernorm_forward_cuda(ln, NULL, NULL, xmid, w->blocks[li].ln2_w, w->blocks[li].ln2_b,
                               (int)BT, D, eps, s);
        linear_backward_cuda(ctx, dln, g->blocks[li].fc1_w, g->blocks[li].fc1_b, dh, ln,
                             w->blocks[li].fc1_w, (int)BT, D, H4, s);
        layernorm_backward_cuda(dres, g->blocks[li].ln2_w, g->blocks[li].ln2_b, dln, xmid,
                                w->blocks[li].ln2_w, m2, m2 + BT, (int)BT, D, s);

        // Attention branch.
        dbr = dres;
        if (drop) {
            scale_rows_forward_cuda(dbr_buf, dres, drop + (size_t)(2 * li) * B, B, (size_t)T * D, s);
            dbr = dbr_buf;
        }
        linear_backward_cuda(ctx, datty, g->blocks[li].proj_w, g->blocks[li].proj_b, dbr, atty,
                             w->blocks[li].proj_w, (int)BT, D, D, s);
        attention_backward_cuda(ctx, dqkv, datty, qkv, att, B, T, D, NH, s);
        layernorm_forward_cuda(ln, NULL, NULL, xin, w->blocks[li].ln1_w, w->blocks[li].ln1_b,
                               (int)BT, D, eps, s);
        linear_backward_cuda(ctx, dln, g->blocks[li].qkv_w, g->blocks[li].qkv_b, dqkv, ln,
                             w->blocks[li].qkv_w, (int)BT, D, 3 * D, s);
        layernorm_backward_cuda(dres, g->blocks[li].ln1_w, g->blocks[li].ln1_b, dln, xin,
                                w->blocks[li].ln1_w, m1, m1 + BT, (int)BT, D, s);
    }

    // Embedding: x0[b,t] = (t ? tok[b,t-1] : cls) + pos[t].
    float *dpos = arena + sc->dpos, *dtok = arena + sc->dtok;
    embed_backward_kernel<<<grid_for((size_t)T * D, 256), 256, 0, s>>>(dpos, dtok, dres, B, T, D);
    CUDA_CHECK_LAUNCH();
    add_inplace_kernel<<<grid_for((size_t)D, 256), 256, 0, s>>>(g->cls_token, dpos, (size_t)D);
    CUDA_CHECK_LAUNCH();
    pos_backward(cfg, g->pos_embed, l, dpos, s);
    linear_backward_cuda(ctx, NULL, g->patch_w, g->patch_b, dtok, arena + l->cols, w->patch_w,
                         B * Np, l->CPP, D, s);
}
