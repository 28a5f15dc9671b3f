// The Vision Transformer backbone declared in vit.h: presets, the parameter
// table in state_dict order, initialisation, DINO's position-embedding
// interpolation, and forward/backward as a list of ops.h calls. Training
// activations keep every block's inputs, qkv, attention output and fc1
// pre-activation (LayerNorm outputs, the GELU and the attention probabilities
// are recomputed in backward); inference activations keep one set
// of buffers plus the residual stream of the last VIT_KEEP_LAST blocks (for
// get_intermediate_layers), so their size does not grow with depth.
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "common.h"
#include "ops.h"
#include "profile.h"
#include "resample_aa.h"
#include "rng.h"

// Block outputs an inference pass keeps (eval_linear's default n_last_blocks).
#define VIT_KEEP_LAST 4

int vit_config_preset(ViTConfig *cfg, const char *arch, int patch) {
    if (!strncmp(arch, "deit_", 5)) arch += 5;
    else if (!strncmp(arch, "vit_", 4)) arch += 4;
    else return -1;
    int dim, heads;
    if (!strcmp(arch, "tiny")) dim = 192, heads = 3;
    else if (!strcmp(arch, "small")) dim = 384, heads = 6;
    else if (!strcmp(arch, "base")) dim = 768, heads = 12;
    else return -1;
    if (patch <= 0) return -1;
    memset(cfg, 0, sizeof *cfg);
    cfg->img_size = 224;
    cfg->patch = patch;
    cfg->in_chans = 3;
    cfg->dim = dim;
    cfg->depth = 12;
    cfg->heads = heads;
    cfg->mlp_hidden = 4 * dim;
    cfg->ln_eps = 1e-6f;
    cfg->drop_path_rate = 0.0f;
    return 0;
}

// DINOv2's sizes by width (the official models: S, B, L, g at patch 14).
static const char *dinov2_size(int dim) {
    switch (dim) {
        case 384: return "S";
        case 768: return "B";
        case 1024: return "L";
        case 1536: return "g";
    }
    return NULL;
}

// DINOv3's sizes by width ("+": the SwiGLU variants S+, L+, H+; patch 16).
static const char *dinov3_size(int dim, int swiglu) {
    switch (dim) {
        case 384: return swiglu ? "S+" : "S";
        case 768: return swiglu ? NULL : "B";
        case 1024: return swiglu ? "L+" : "L";
        case 1280: return swiglu ? "H+" : NULL;
        case 4096: return swiglu ? "7B" : NULL;
    }
    return NULL;
}

// "DINOv3 ViT-S/16, 4 storage tokens, RoPE: D=384 ...".
static void describe_dinov3(const ViTConfig *cfg, char *buf, size_t n) {
    const char *sz = dinov3_size(cfg->dim, cfg->swiglu);
    char fam[64];
    if (sz && cfg->layerscale) snprintf(fam, sizeof fam, "DINOv3 ViT-%s/%d", sz, cfg->patch);
    else snprintf(fam, sizeof fam, "DINOv3-style ViT/%d", cfg->patch);
    snprintf(buf, n, "%s, %d storage token%s, RoPE: D=%d depth=%d heads=%d mlp=%d%s img=%d in_chans=%d "
             "eps=%g%s rope_base=%g", fam, cfg->n_registers, cfg->n_registers == 1 ? "" : "s", cfg->dim,
             cfg->depth, cfg->heads, cfg->mlp_hidden, cfg->swiglu ? " (SwiGLU)" : "", cfg->img_size,
             cfg->in_chans, (double)cfg->ln_eps, cfg->layerscale ? " layerscale" : "", (double)cfg->rope_base);
}

void vit_config_describe(const ViTConfig *cfg, char *buf, size_t n) {
    if (cfg->rope_base > 0) {
        describe_dinov3(cfg, buf, n);
        return;
    }
    if (!vit_config_is_plain(cfg)) {
        // "DINOv2 ViT-S/14 with 4 registers: D=384 ...": LayerScale marks DINOv2.
        const char *sz = dinov2_size(cfg->dim);
        char fam[64], regs[32] = "";
        if (cfg->layerscale && sz) snprintf(fam, sizeof fam, "DINOv2 ViT-%s/%d", sz, cfg->patch);
        else snprintf(fam, sizeof fam, "%s ViT/%d", cfg->layerscale ? "DINOv2-style" : "custom", cfg->patch);
        if (cfg->n_registers)
            snprintf(regs, sizeof regs, " with %d register%s", cfg->n_registers, cfg->n_registers > 1 ? "s" : "");
        static const char *const interp[] = {"scale+0.1", "size", "size, antialiased"};
        snprintf(buf, n, "%s%s: D=%d depth=%d heads=%d mlp=%d%s img=%d in_chans=%d eps=%g%s "
                 "pos_embed resize=%s", fam, regs, cfg->dim, cfg->depth, cfg->heads, cfg->mlp_hidden,
                 cfg->swiglu ? " (SwiGLU)" : "", cfg->img_size, cfg->in_chans, (double)cfg->ln_eps,
                 cfg->layerscale ? " layerscale" : "", interp[cfg->pos_interp]);
        return;
    }
    const char *name = cfg->dim == 192 ? "vit_tiny" : cfg->dim == 384 ? "vit_small"
                     : cfg->dim == 768 ? "vit_base" : "vit_custom";
    if (cfg->depth != 12 || cfg->heads * 64 != cfg->dim || cfg->mlp_hidden != 4 * cfg->dim)
        name = "vit_custom";
    snprintf(buf, n, "%s/%d: D=%d depth=%d heads=%d mlp=%d img=%d in_chans=%d eps=%g drop_path=%g",
             name, cfg->patch, cfg->dim, cfg->depth, cfg->heads, cfg->mlp_hidden, cfg->img_size,
             cfg->in_chans, (double)cfg->ln_eps, (double)cfg->drop_path_rate);
}

int vit_grid(const ViTConfig *cfg) { return cfg->img_size / cfg->patch; }

int vit_eval_crop(const ViTConfig *cfg) { return cfg->layerscale ? 224 : cfg->img_size; }

int vit_config_is_plain(const ViTConfig *cfg) {
    return !cfg->n_registers && !cfg->layerscale && !cfg->swiglu &&
           cfg->pos_interp == VIT_POS_INTERP_DINO && cfg->rope_base == 0;
}

int vit_tokens(const ViTConfig *cfg, int H, int W) {
    return 1 + (H / cfg->patch) * (W / cfg->patch);
}

// Rows of the MLP's first layer: SwiGLU's w12 holds both halves.
static int fc1_rows(const ViTConfig *cfg) { return cfg->swiglu ? 2 * cfg->mlp_hidden : cfg->mlp_hidden; }

void vit_param_table(const ViTConfig *cfg, ParamTable *t, const char *prefix) {
    DINO_ASSERT(cfg->depth >= 1 && cfg->depth <= VIT_MAX_DEPTH);
    DINO_ASSERT(cfg->heads >= 1 && cfg->dim % cfg->heads == 0);
    DINO_ASSERT(cfg->n_registers >= 0);
    int64_t D = cfg->dim, H4 = cfg->mlp_hidden, F1 = fc1_rows(cfg), g = vit_grid(cfg), p = cfg->patch;
    char name[PARAM_NAME_MAX];
    int rope = cfg->rope_base > 0;
    param_table_add(t, prefix, "cls_token", 3, (int64_t[]){1, 1, D});
    if (!rope) param_table_add(t, prefix, "pos_embed", 3, (int64_t[]){1, 1 + g * g, D});
    if (cfg->n_registers)
        param_table_add(t, prefix, rope ? "storage_tokens" : "register_tokens", 3,
                        (int64_t[]){1, cfg->n_registers, D});
    if (rope) param_table_add(t, prefix, "rope_embed.periods", 1, (int64_t[]){vit_rope_nperiods(cfg)});
    param_table_add(t, prefix, "patch_embed.proj.weight", 4, (int64_t[]){D, cfg->in_chans, p, p});
    param_table_add(t, prefix, "patch_embed.proj.bias", 1, (int64_t[]){D});
    const char *fc1 = cfg->swiglu ? "mlp.w12" : "mlp.fc1", *fc2 = cfg->swiglu ? "mlp.w3" : "mlp.fc2";
    const struct {
        const char *name, *leaf;
        int64_t shape[2];
        int on;
    } blk[14] = {
        {"norm1", ".weight", {D, 0}, 1},      {"norm1", ".bias", {D, 0}, 1},
        {"attn.qkv", ".weight", {3 * D, D}, 1}, {"attn.qkv", ".bias", {3 * D, 0}, 1},
        {"attn.proj", ".weight", {D, D}, 1},  {"attn.proj", ".bias", {D, 0}, 1},
        {"ls1", ".gamma", {D, 0}, cfg->layerscale},
        {"norm2", ".weight", {D, 0}, 1},      {"norm2", ".bias", {D, 0}, 1},
        {fc1, ".weight", {F1, D}, 1},         {fc1, ".bias", {F1, 0}, 1},
        {fc2, ".weight", {D, H4}, 1},         {fc2, ".bias", {D, 0}, 1},
        {"ls2", ".gamma", {D, 0}, cfg->layerscale},
    };
    for (int l = 0; l < cfg->depth; l++)
        for (int k = 0; k < 14; k++) {
            if (!blk[k].on) continue;
            snprintf(name, sizeof name, "blocks.%d.%s%s", l, blk[k].name, blk[k].leaf);
            param_table_add(t, prefix, name, blk[k].shape[1] ? 2 : 1, blk[k].shape);
        }
    param_table_add(t, prefix, "norm.weight", 1, (int64_t[]){D});
    param_table_add(t, prefix, "norm.bias", 1, (int64_t[]){D});
}

// Walks the parameters in table order; every caller below visits them in the
// same order, so binding and initialisation cannot drift from the table.
// `init` says how vit_init fills the slot.
enum { INIT_TRUNC, INIT_CONV, INIT_ONE, INIT_ZERO, INIT_ROPE };
typedef struct {
    float **ptr;
    size_t numel;
    int init;
} ParamSlot;

#define VIT_MAX_SLOTS (5 + 14 * VIT_MAX_DEPTH + 2)

static int vit_slots(const ViTConfig *cfg, ViTWeights *w, ParamSlot *s) {
    size_t D = cfg->dim, H4 = cfg->mlp_hidden, F1 = fc1_rows(cfg), g = vit_grid(cfg), p = cfg->patch;
    int n = 0;
#define SLOT(field, size, how) s[n++] = (ParamSlot){&(field), (size), (how)}
    int rope = cfg->rope_base > 0;
    SLOT(w->cls_token, D, INIT_TRUNC);
    if (!rope) SLOT(w->pos_embed, (1 + g * g) * D, INIT_TRUNC);
    if (cfg->n_registers) SLOT(w->registers, (size_t)cfg->n_registers * D, INIT_TRUNC);
    if (rope) SLOT(w->rope_periods, (size_t)vit_rope_nperiods(cfg), INIT_ROPE);
    SLOT(w->patch_w, D * cfg->in_chans * p * p, INIT_CONV);
    SLOT(w->patch_b, D, INIT_CONV);
    for (int l = 0; l < cfg->depth; l++) {
        SLOT(w->blocks[l].ln1_w, D, INIT_ONE);
        SLOT(w->blocks[l].ln1_b, D, INIT_ZERO);
        SLOT(w->blocks[l].qkv_w, 3 * D * D, INIT_TRUNC);
        SLOT(w->blocks[l].qkv_b, 3 * D, INIT_ZERO);
        SLOT(w->blocks[l].proj_w, D * D, INIT_TRUNC);
        SLOT(w->blocks[l].proj_b, D, INIT_ZERO);
        if (cfg->layerscale) SLOT(w->blocks[l].ls1, D, INIT_ONE);
        SLOT(w->blocks[l].ln2_w, D, INIT_ONE);
        SLOT(w->blocks[l].ln2_b, D, INIT_ZERO);
        SLOT(w->blocks[l].fc1_w, F1 * D, INIT_TRUNC);
        SLOT(w->blocks[l].fc1_b, F1, INIT_ZERO);
        SLOT(w->blocks[l].fc2_w, D * H4, INIT_TRUNC);
        SLOT(w->blocks[l].fc2_b, D, INIT_ZERO);
        if (cfg->layerscale) SLOT(w->blocks[l].ls2, D, INIT_ONE);
    }
    SLOT(w->norm_w, D, INIT_ONE);
    SLOT(w->norm_b, D, INIT_ZERO);
#undef SLOT
    return n;
}

void vit_weights_bind(ViTWeights *w, const ViTConfig *cfg, float *base) {
    memset(w, 0, sizeof *w);
    ParamSlot s[VIT_MAX_SLOTS];
    int n = vit_slots(cfg, w, s);
    for (int i = 0; i < n; i++) {
        *s[i].ptr = base;
        base += s[i].numel;
    }
}

void vit_init(const ViTConfig *cfg, ViTWeights *w, uint64_t seed) {
    ViTWeights tmp = *w;
    ParamSlot s[VIT_MAX_SLOTS];
    int n = vit_slots(cfg, &tmp, s);
    float fan_in = (float)(cfg->in_chans * cfg->patch * cfg->patch);
    float bound = 1.0f / sqrtf(fan_in);
    for (int i = 0; i < n; i++) {
        float *x = *s[i].ptr;
        Rng r;
        rng_stream(&r, RNG_INIT_BACKBONE, seed, (uint64_t)i, 0, 0);
        if (s[i].init == INIT_TRUNC) {
            // cls_token, pos_embed, Linear weights: trunc_normal(std .02, [-2, 2])
            for (size_t j = 0; j < s[i].numel; j++) x[j] = rng_trunc_normal(&r, 0.02f, -2.0f, 2.0f);
        } else if (s[i].init == INIT_CONV) {
            // Conv2d default: kaiming_uniform(a=√5) = U(±1/√fan_in), bias the same bound.
            for (size_t j = 0; j < s[i].numel; j++) x[j] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
        } else if (s[i].init == INIT_ROPE) {
            vit_rope_default_periods(cfg, x);
        } else if (s[i].init == INIT_ONE) {
            for (size_t j = 0; j < s[i].numel; j++) x[j] = 1.0f;  // LayerNorm weight, LayerScale
        } else {
            memset(x, 0, s[i].numel * sizeof(float));  // biases
        }
    }
}

// ---------------------------------------------------------------- RoPE

int vit_rope_nperiods(const ViTConfig *cfg) { return cfg->dim / cfg->heads / 4; }

// As the official RopePositionEmbedding makes them in float32:
// base ** (2·arange(n) / (head_dim/2)).
void vit_rope_default_periods(const ViTConfig *cfg, float *out) {
    int n = vit_rope_nperiods(cfg);
    float half = (float)(2 * n);
    for (int j = 0; j < n; j++) out[j] = powf(cfg->rope_base, (float)(2 * j) / half);
}

// The sin and cos tables (Np, head_dim) of a gh x gw patch grid, as the
// official code: patch centres (i + 0.5)/g mapped to [-1, 1] per axis
// ("separate" normalisation), angle 2π·coord/period for the head_dim/4
// periods, first for the row coordinate then the column, the head_dim/2
// angles then repeated once (rotate_half pairs dimension d with d + head_dim/2).
// No coordinate shift, jitter or rescale: those are training-time only.
static void rope_tables(const float *periods, int nper, int gh, int gw, float *sin_t, float *cos_t) {
    int Dh = 4 * nper;
    const float two_pi = (float)(2.0 * M_PI);
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            float c[2] = {2.0f * (((float)i + 0.5f) / (float)gh) - 1.0f,
                          2.0f * (((float)j + 0.5f) / (float)gw) - 1.0f};
            size_t row = ((size_t)i * gw + j) * Dh;
            for (int d = 0; d < Dh / 2; d++) {
                float ang = two_pi * c[d / nper] / periods[d % nper];
                float sv = sinf(ang), cv = cosf(ang);
                sin_t[row + d] = sin_t[row + d + Dh / 2] = sv;
                cos_t[row + d] = cos_t[row + d + Dh / 2] = cv;
            }
        }
}

// Rotates the queries and keys of the patch tokens (1 .. Np of each image's
// T; CLS and the storage tokens after them are left alone) in qkv (B, T, 3D):
// x·cos + rotate_half(x)·sin per head, rotate_half(x) = [-x2, x1].
static void rope_apply(float *qkv, const float *sin_t, const float *cos_t, int B, int T, int Np, int D,
                       int NH) {
    int Dh = D / NH, h2 = Dh / 2;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < Np; p++) {
            float *row = qkv + ((size_t)b * T + 1 + p) * 3 * D;
            const float *sn = sin_t + (size_t)p * Dh, *cs = cos_t + (size_t)p * Dh;
            for (int qk = 0; qk < 2; qk++)
                for (int h = 0; h < NH; h++) {
                    float *x = row + (size_t)qk * D + (size_t)h * Dh;
                    for (int d = 0; d < h2; d++) {
                        float x1 = x[d], x2 = x[d + h2];
                        x[d] = x1 * cs[d] - x2 * sn[d];
                        x[d + h2] = x2 * cs[d + h2] + x1 * sn[d + h2];
                    }
                }
        }
}

// ---------------------------------------------------------------- position embedding

// The reference's interpolate_pos_encoding decides from the image size: skip
// when the patch count equals the stored one and the image is square.
static int pos_needs_interp(const ViTConfig *cfg, int H, int W) {
    int g = vit_grid(cfg);
    return !(vit_tokens(cfg, H, W) - 1 == g * g && H == W);
}

// Output grid and the kernel's source step for one dim: scale_factor =
// (n + 0.1)/g in double (no recompute_scale_factor), out = trunc(g·sf),
// step = (float)(1/sf).
static void pos_interp_dims(const ViTConfig *cfg, int H, int W, int *oh, int *ow, float *sh,
                            float *sw) {
    int g = vit_grid(cfg), p = cfg->patch;
    double sqrtN = sqrt((double)(g * g));
    double sfh = ((double)(H / p) + 0.1) / sqrtN, sfw = ((double)(W / p) + 0.1) / sqrtN;
    *oh = (int)(int64_t)((double)g * sfh);
    *ow = (int)(int64_t)((double)g * sfw);
    DINO_ASSERT(*oh == H / p && *ow == W / p);  // the reference asserts the same
    *sh = (float)(1.0 / sfh);
    *sw = (float)(1.0 / sfw);
}

void vit_interpolate_pos(const ViTConfig *cfg, const float *pos_embed, int H, int W, float *out) {
    int D = cfg->dim, g = vit_grid(cfg), p = cfg->patch;
    if (!pos_needs_interp(cfg, H, W)) {
        memcpy(out, pos_embed, (size_t)(1 + g * g) * D * sizeof(float));
        return;
    }
    memcpy(out, pos_embed, (size_t)D * sizeof(float));
    if (cfg->pos_interp == VIT_POS_INTERP_SIZE_AA) {
        bicubic_aa_forward(out + D, pos_embed + D, g, g, H / p, W / p, D);
    } else if (cfg->pos_interp == VIT_POS_INTERP_SIZE) {
        // An output size: PyTorch's source step is then in/out in float.
        bicubic_forward(out + D, pos_embed + D, g, g, H / p, W / p, D, (float)g / (float)(H / p),
                        (float)g / (float)(W / p));
    } else {
        int oh, ow;
        float sh, sw;
        pos_interp_dims(cfg, H, W, &oh, &ow, &sh, &sw);
        bicubic_forward(out + D, pos_embed + D, g, g, oh, ow, D, sh, sw);
    }
}

void vit_interpolate_pos_backward(const ViTConfig *cfg, float *dpos_embed, int H, int W,
                                  const float *dout) {
    int D = cfg->dim, g = vit_grid(cfg);
    DINO_ASSERT(cfg->pos_interp == VIT_POS_INTERP_DINO);
    if (!pos_needs_interp(cfg, H, W)) {
        size_t n = (size_t)(1 + g * g) * D;
        for (size_t i = 0; i < n; i++) dpos_embed[i] += dout[i];
        return;
    }
    int oh, ow;
    float sh, sw;
    pos_interp_dims(cfg, H, W, &oh, &ow, &sh, &sw);
    for (int i = 0; i < D; i++) dpos_embed[i] += dout[i];
    bicubic_backward(dpos_embed + D, dout + D, g, g, oh, ow, D, sh, sw);
}

// ---------------------------------------------------------------- activations

// With registers the stream holds per image [CLS, patches, registers]: the
// reference puts registers right after CLS, but attention does not see token
// order and every other layer works per token, so this order gives the same
// outputs while CLS and patches stay one run (Tv tokens) that the final
// compaction hands out as vit_output.
struct ViTActs {
    int Bmax, B, H, W, Np, T, train, nslots;
    int R, Tv;      // registers; visible tokens 1 + Np (T = Tv + R)
    int F1;         // width of fc1's output (2·H4 for SwiGLU)
    float *regs;    // (B, R, D) final-norm registers (inference)
    float *glu;     // (B, T, H4) SwiGLU's gated hidden layer (inference)
    int att_blocks;  // blocks whose probabilities are kept: all (train), 1 (inference, lean)
    int D, NH, H4, CPP, depth;
    size_t btd;     // Bmax·T·D: stride of one (B,T,D) buffer
    float *mem;     // every buffer below is carved out of this block
    int owns_mem;   // 0: the caller's (vit_acts_create_in)
    float *cols;    // (B·Np, C·p·p) unfolded patches
    float *pos;     // (T, D) position embedding for this size (unused with RoPE)
    float *rope_sin, *rope_cos;  // RoPE: (Np, head_dim) tables for this size, or NULL
    float *res;     // nslots × (B,T,D): residual stream (train: every block input + output)
    float *mid;     // train: depth × (B,T,D) stream after the attention branch
    float *ln;                 // (B,T,D) LayerNorm output, shared (recomputed in backward)
    float *stats1, *stats2;    // train: depth × 2·(B·T): mean, rstd
    float *qkv;     // (B,T,3D), per block in train
    float *att;     // att_blocks × (B,NH,T,T), the last att_blocks blocks (backward recomputes the others)
    float *atty;    // (B,T,D) attention output before proj, per block in train
    float *fc1;     // (B,T,H4) pre-GELU, per block in train (GELU in place in inference)
    float *hbuf;    // train: (B,T,H4) GELU output, recomputed in backward
    float *gbuf;    // train: (B,T,H4) GELU derivative, computed with hbuf
    float *out;     // (B,T,D) final-norm tokens
    float *statsf;  // 2·(B·T)
    float *drop;    // 2·depth·B drop-path factors of the last forward
    int has_drop;
    // Backward scratch (train only).
    float *dres, *dbr, *dln, *datty, *dqkv, *dh, *dcols, *dpos;
};

// Buffers are carved from one block at 64-byte (16-float) boundaries; with
// base NULL only the size is counted (vit_acts_bytes).
#define VIT_ACTS_ALIGN_FLOATS 16

// Fills the sizes of a and points its buffers into c. VIT_ACTS_TRAIN_LEAN
// keeps the attention probabilities of the last block only (at 224 px they are
// NH·T floats per token and block, a fifth of a block's activations):
// attention_backward recomputes the others, for ~10% more attention time.
static void acts_layout(ViTActs *a, const ViTConfig *cfg, int B, int H, int W, int mode,
                        Arena *c) {
    DINO_ASSERT(mode == VIT_ACTS_INFER || mode == VIT_ACTS_TRAIN || mode == VIT_ACTS_TRAIN_LEAN);
    int train = mode != VIT_ACTS_INFER;
    DINO_ASSERT(!train || vit_config_is_plain(cfg));  // DINOv2's and DINOv3's options are inference only
    a->att_blocks = mode == VIT_ACTS_TRAIN ? cfg->depth : 1;
    a->Bmax = a->B = B;
    a->H = H;
    a->W = W;
    a->Np = (H / cfg->patch) * (W / cfg->patch);
    a->R = cfg->n_registers;
    a->Tv = a->Np + 1;
    a->T = a->Tv + a->R;
    a->F1 = fc1_rows(cfg);
    a->train = train;
    a->D = cfg->dim;
    a->NH = cfg->heads;
    a->H4 = cfg->mlp_hidden;
    a->CPP = cfg->in_chans * cfg->patch * cfg->patch;
    a->depth = cfg->depth;
    size_t BT = (size_t)B * a->T, btd = BT * a->D;
    a->btd = btd;
    size_t L = train ? (size_t)cfg->depth : 1;
    int keep = cfg->depth < VIT_KEEP_LAST ? cfg->depth : VIT_KEEP_LAST;
    a->nslots = train ? cfg->depth + 1 : keep + 1;
    a->cols = arena_take_ptr(c, (size_t)B * a->Np * a->CPP);
    a->pos = arena_take_ptr(c, (size_t)a->T * a->D);
    a->res = arena_take_ptr(c, a->nslots * btd);
    a->ln = arena_take_ptr(c, btd);
    a->qkv = arena_take_ptr(c, L * 3 * btd);
    a->att = arena_take_ptr(c, (size_t)a->att_blocks * BT * a->NH * a->T);
    a->atty = arena_take_ptr(c, L * btd);
    a->fc1 = arena_take_ptr(c, L * BT * a->F1);
    a->out = arena_take_ptr(c, btd);
    a->statsf = arena_take_ptr(c, 2 * BT);
    a->drop = arena_take_ptr(c, (size_t)2 * cfg->depth * B);
    if (a->R) a->regs = arena_take_ptr(c, (size_t)B * a->R * a->D);
    if (cfg->swiglu) a->glu = arena_take_ptr(c, BT * a->H4);
    if (cfg->rope_base > 0) {
        a->rope_sin = arena_take_ptr(c, (size_t)a->Np * (a->D / a->NH));
        a->rope_cos = arena_take_ptr(c, (size_t)a->Np * (a->D / a->NH));
    }
    if (train) {
        a->mid = arena_take_ptr(c, L * btd);
        a->stats1 = arena_take_ptr(c, L * 2 * BT);
        a->stats2 = arena_take_ptr(c, L * 2 * BT);
        a->hbuf = arena_take_ptr(c, BT * a->H4);
        a->gbuf = arena_take_ptr(c, BT * a->H4);
        a->dres = arena_take_ptr(c, btd);
        a->dbr = arena_take_ptr(c, btd);
        a->dln = arena_take_ptr(c, btd);
        a->datty = arena_take_ptr(c, btd);
        a->dqkv = arena_take_ptr(c, 3 * btd);
        a->dh = arena_take_ptr(c, BT * a->H4);
        a->dcols = arena_take_ptr(c, (size_t)B * a->Np * a->CPP);
        a->dpos = arena_take_ptr(c, (size_t)a->T * a->D);
    }
}

size_t vit_acts_bytes(const ViTConfig *cfg, int B, int H, int W, int mode) {
    DINO_ASSERT(B >= 1 && H >= cfg->patch && W >= cfg->patch);
    ViTActs a;
    Arena c;
    arena_init(&c, NULL, VIT_ACTS_ALIGN_FLOATS);
    acts_layout(&a, cfg, B, H, W, mode, &c);
    return c.total * sizeof(float);
}

ViTActs *vit_acts_create_in(const ViTConfig *cfg, int B, int H, int W, int mode, void *mem) {
    size_t bytes = vit_acts_bytes(cfg, B, H, W, mode);
    ViTActs *a = callocCheck(1, sizeof *a);
    a->owns_mem = mem == NULL;
    a->mem = mem ? mem : alignedAllocCheck(bytes);
    DINO_ASSERT(((uintptr_t)a->mem & 63) == 0);
    memset(a->mem, 0, bytes);
    Arena c;
    arena_init(&c, a->mem, VIT_ACTS_ALIGN_FLOATS);
    acts_layout(a, cfg, B, H, W, mode, &c);
    return a;
}

ViTActs *vit_acts_create(const ViTConfig *cfg, int B, int H, int W, int train) {
    return vit_acts_create_in(cfg, B, H, W, train ? VIT_ACTS_TRAIN : VIT_ACTS_INFER, NULL);
}

void vit_acts_free(ViTActs *a) {
    if (!a) return;
    if (a->owns_mem) free(a->mem);
    free(a);
}

const float *vit_output(const ViTActs *a) { return a->out; }
int vit_acts_tokens(const ViTActs *a) { return a->Tv; }
const float *vit_register_tokens(const ViTActs *a) { return a->regs; }

// Per-block buffers: training keeps one per block, inference reuses one.
static inline size_t blk(const ViTActs *a, int l) { return a->train ? (size_t)l : 0; }
static inline float *slot(const ViTActs *a, int l) {
    return a->res + (size_t)(l % a->nslots) * a->btd;
}

// The probabilities of block l, or NULL when they are not kept.
static float *att_of(const ViTActs *a, int l) {
    int first = a->depth - a->att_blocks;
    if (l < first) return NULL;
    return a->att + (size_t)(l - first) * a->Bmax * a->NH * a->T * a->T;
}

const float *vit_last_attention(const ViTActs *a) { return att_of(a, a->depth - 1); }

// ---------------------------------------------------------------- forward

// out = res + gamma ⊙ br, per row of D (LayerScale on a residual branch;
// out may be res).
static void layerscale_residual(float *out, const float *res, const float *gamma, const float *br,
                                size_t rows, int D) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < D; j++) out[r * D + j] = res[r * D + j] + gamma[j] * br[r * D + j];
}

// SwiGLU's gate on rows of [x1 | x2] (2·h wide): out = silu(x1)·x2, rows h wide.
static void swiglu_forward(float *out, const float *x, size_t rows, int h) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *x1 = x + r * 2 * h, *x2 = x1 + h;
        float *o = out + r * h;
        for (int j = 0; j < h; j++) {
            float a = x1[j];
            o[j] = a / (1.0f + expf(-a)) * x2[j];
        }
    }
}

// After an inference pass with registers: their final-norm tokens go to
// a->regs, and the output and the last attention are compacted in place to
// the Tv visible tokens (every copy moves data towards the front).
static void drop_registers(ViTActs *a) {
    int B = a->B, T = a->T, Tv = a->Tv, R = a->R, D = a->D, NH = a->NH;
    DINO_ASSERT(!a->train);
    for (int b = 0; b < B; b++) {
        memcpy(a->regs + (size_t)b * R * D, a->out + ((size_t)b * T + Tv) * D, (size_t)R * D * sizeof(float));
        memmove(a->out + (size_t)b * Tv * D, a->out + (size_t)b * T * D, (size_t)Tv * D * sizeof(float));
    }
    float *att = att_of(a, a->depth - 1);
    for (size_t bh = 0; bh < (size_t)B * NH; bh++)
        for (int i = 0; i < Tv; i++)
            memmove(att + (bh * Tv + i) * Tv, att + (bh * T + i) * T, (size_t)Tv * sizeof(float));
}

void vit_forward(const ViTConfig *cfg, const ViTWeights *w, ViTActs *a, const float *images,
                 int B, const float *drop_scale) {
    DINO_ASSERT(B >= 1 && B <= a->Bmax);
    a->B = B;
    int D = a->D, T = a->T, Np = a->Np, NH = a->NH, H4 = a->H4, L = cfg->depth;
    size_t BT = (size_t)B * T, btd = a->btd;
    int Tv = a->Tv, F1 = a->F1;
    float eps = cfg->ln_eps;
    a->has_drop = drop_scale != NULL;
    if (drop_scale) memcpy(a->drop, drop_scale, (size_t)2 * L * B * sizeof(float));

    // Patch embedding (GEMM over unfolded patches) into scratch, then tokens.
    patch_unfold(a->cols, images, B, cfg->in_chans, a->H, a->W, cfg->patch);
    float *tok = a->atty;  // (B·Np, D) scratch; atty is rewritten by block 0
    PROF(PROF_PATCH, linear_forward(tok, a->cols, w->patch_w, w->patch_b, B * Np, a->CPP, D));
    int rope = cfg->rope_base > 0;
    if (rope) rope_tables(w->rope_periods, vit_rope_nperiods(cfg), a->H / cfg->patch, a->W / cfg->patch,
                          a->rope_sin, a->rope_cos);
    else vit_interpolate_pos(cfg, w->pos_embed, a->H, a->W, a->pos);
    float *x0 = slot(a, 0);
    const float *pos = rope ? NULL : a->pos;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *dst = x0 + ((size_t)b * T + t) * D;
            if (t >= Tv) {  // a register: no position embedding
                memcpy(dst, w->registers + (size_t)(t - Tv) * D, (size_t)D * sizeof(float));
                continue;
            }
            const float *src = t == 0 ? w->cls_token : tok + ((size_t)b * Np + t - 1) * D;
            if (!pos) {  // RoPE: positions enter in attention
                memcpy(dst, src, (size_t)D * sizeof(float));
                continue;
            }
            const float *pe = pos + (size_t)t * D;
            for (int j = 0; j < D; j++) dst[j] = src[j] + pe[j];
        }

    for (int l = 0; l < L; l++) {
        size_t k = blk(a, l);
        const float *xin = slot(a, l);
        float *xout = slot(a, l + 1);
        float *xmid = a->train ? a->mid + k * btd : xout;
        float *ln1 = a->ln, *ln2 = a->ln;
        float *qkv = a->qkv + k * 3 * btd, *atty = a->atty + k * btd;
        float *fc1 = a->fc1 + k * (size_t)a->Bmax * T * F1;
        float *m1 = a->train ? a->stats1 + k * 2 * a->Bmax * T : NULL;
        float *m2 = a->train ? a->stats2 + k * 2 * a->Bmax * T : NULL;
        const float *s1 = drop_scale ? drop_scale + (size_t)(2 * l) * B : NULL;
        const float *s2 = drop_scale ? drop_scale + (size_t)(2 * l + 1) * B : NULL;

        // x_mid = x_in + s1·proj(attn(ln1(x_in)))
        PROF(PROF_LN, layernorm_forward(ln1, m1, m1 ? m1 + BT : NULL, xin, w->blocks[l].ln1_w,
                          w->blocks[l].ln1_b, (int)BT, D, eps));
        PROF(PROF_QKV, linear_forward(qkv, ln1, w->blocks[l].qkv_w, w->blocks[l].qkv_b, (int)BT, D, 3 * D));
        if (rope) PROF(PROF_ATTN, rope_apply(qkv, a->rope_sin, a->rope_cos, B, T, Np, D, NH));
        // Inference keeps only the last block's probabilities (vit_last_attention).
        float *att = a->train || l == L - 1 ? att_of(a, l) : NULL;
        PROF(PROF_ATTN, attention_forward(atty, att, qkv, B, T, D, NH));
        if (cfg->layerscale) {  // the branch into the free LayerNorm buffer, then scaled
            PROF(PROF_PROJ, linear_forward(a->ln, atty, w->blocks[l].proj_w, w->blocks[l].proj_b, (int)BT, D, D));
            layerscale_residual(xmid, xin, w->blocks[l].ls1, a->ln, BT, D);
        } else {
            PROF(PROF_PROJ, linear_residual_forward(xmid, xin, atty, w->blocks[l].proj_w, w->blocks[l].proj_b, s1,
                                                    B, T, D, D));
        }
        // x_out = x_mid + s2·fc2(gelu(fc1(ln2(x_mid))))
        PROF(PROF_LN, layernorm_forward(ln2, m2, m2 ? m2 + BT : NULL, xmid, w->blocks[l].ln2_w,
                          w->blocks[l].ln2_b, (int)BT, D, eps));
        float *h = a->train ? a->hbuf : cfg->swiglu ? a->glu : fc1;
        if (!a->train && !cfg->swiglu) {  // no backward: GELU fused into fc1, in place
            PROF(PROF_FC1, linear_gelu_forward(fc1, ln2, w->blocks[l].fc1_w, w->blocks[l].fc1_b, (int)BT, D, F1));
        } else {  // training keeps fc1's pre-activation for the backward
            PROF(PROF_FC1, linear_forward(fc1, ln2, w->blocks[l].fc1_w, w->blocks[l].fc1_b, (int)BT, D, F1));
            if (cfg->swiglu) PROF(PROF_GELU, swiglu_forward(h, fc1, BT, H4));
            else PROF(PROF_GELU, gelu_forward(h, fc1, BT * H4));
        }
        if (cfg->layerscale) {
            PROF(PROF_FC2, linear_forward(a->ln, h, w->blocks[l].fc2_w, w->blocks[l].fc2_b, (int)BT, H4, D));
            layerscale_residual(xout, xmid, w->blocks[l].ls2, a->ln, BT, D);
        } else {
            PROF(PROF_FC2, linear_residual_forward(xout, xmid, h, w->blocks[l].fc2_w, w->blocks[l].fc2_b, s2, B,
                                                   T, H4, D));
        }
    }
    PROF(PROF_LN, layernorm_forward(a->out, a->statsf, a->statsf + BT, slot(a, L), w->norm_w, w->norm_b,
                      (int)BT, D, eps));
    if (a->R) drop_registers(a);
}

void vit_intermediate(const ViTConfig *cfg, const ViTWeights *w, const ViTActs *a, int n,
                      float *out) {
    int L = cfg->depth;
    DINO_ASSERT(n >= 1 && n <= L);
    // The caller sized the pass (vit_acts_create's keep) for the blocks it asks for.
    if (n > a->nslots - 1)
        dino_fatal_at(__FILE__, __LINE__, "the last %d blocks were asked for, but an inference pass keeps only the last %d",
                      n, a->nslots - 1);
    size_t BT = (size_t)a->B * a->T, BTv = (size_t)a->B * a->Tv;
    for (int k = 0; k < n; k++) {
        const float *x = slot(a, L - n + k + 1);
        if (!a->R) {
            layernorm_forward(out + (size_t)k * BT * a->D, NULL, NULL, x, w->norm_w, w->norm_b, (int)BT,
                              a->D, cfg->ln_eps);
            continue;
        }
        for (int b = 0; b < a->B; b++)  // the visible tokens of each image only
            layernorm_forward(out + ((size_t)k * BTv + (size_t)b * a->Tv) * a->D, NULL, NULL,
                              x + (size_t)b * a->T * a->D, w->norm_w, w->norm_b, a->Tv, a->D, cfg->ln_eps);
    }
}

// ---------------------------------------------------------------- backward

void vit_backward(const ViTConfig *cfg, const ViTWeights *w, ViTWeights *g, ViTActs *a,
                  const float *dout, float *dimages) {
    DINO_ASSERT(a->train);
    int B = a->B, D = a->D, T = a->T, Np = a->Np, NH = a->NH, H4 = a->H4, L = cfg->depth;
    size_t BT = (size_t)B * T, btd = a->btd;
    float *dres = a->dres;

    memset(dres, 0, BT * D * sizeof(float));
    PROF(PROF_B_LN, layernorm_backward(dres, g->norm_w, g->norm_b, dout, slot(a, L), w->norm_w, a->statsf,
                       a->statsf + BT, (int)BT, D));

    for (int l = L - 1; l >= 0; l--) {
        size_t k = (size_t)l;
        const float *xin = slot(a, l), *xmid = a->mid + k * btd;
        const float *qkv = a->qkv + k * 3 * btd, *att = att_of(a, l);  // NULL: recomputed
        const float *atty = a->atty + k * btd;
        const float *fc1 = a->fc1 + k * (size_t)a->Bmax * T * H4;
        const float *m1 = a->stats1 + k * 2 * a->Bmax * T, *m2 = a->stats2 + k * 2 * a->Bmax * T;

        // MLP branch.
        const float *dbr = dres;
        if (a->has_drop) {
            scale_rows_forward(a->dbr, dres, a->drop + (size_t)(2 * l + 1) * B, B, (size_t)T * D);
            dbr = a->dbr;
        }
        PROF(PROF_B_GELU, gelu_grad_forward(a->hbuf, a->gbuf, fc1, BT * H4));
        PROF(PROF_B_FC2, linear_backward(a->dh, g->blocks[l].fc2_w, g->blocks[l].fc2_b, dbr, a->hbuf,
                        w->blocks[l].fc2_w, (int)BT, H4, D));
        PROF(PROF_B_GELU, gelu_backward_saved(a->dh, a->gbuf, a->dh, BT * H4));
        // LayerNorm outputs are not kept: recomputed (bit-identically) from the
        // saved mean and rstd here.
        PROF(PROF_B_LN, layernorm_apply(a->ln, xmid, w->blocks[l].ln2_w, w->blocks[l].ln2_b, m2, m2 + BT,
                                        (int)BT, D));
        PROF(PROF_B_FC1, linear_backward(a->dln, g->blocks[l].fc1_w, g->blocks[l].fc1_b, a->dh, a->ln,
                        w->blocks[l].fc1_w, (int)BT, D, H4));
        PROF(PROF_B_LN, layernorm_backward(dres, g->blocks[l].ln2_w, g->blocks[l].ln2_b, a->dln, xmid,
                           w->blocks[l].ln2_w, m2, m2 + BT, (int)BT, D));

        // Attention branch.
        dbr = dres;
        if (a->has_drop) {
            scale_rows_forward(a->dbr, dres, a->drop + (size_t)(2 * l) * B, B, (size_t)T * D);
            dbr = a->dbr;
        }
        PROF(PROF_B_PROJ, linear_backward(a->datty, g->blocks[l].proj_w, g->blocks[l].proj_b, dbr, atty,
                        w->blocks[l].proj_w, (int)BT, D, D));
        PROF(PROF_B_ATTN, attention_backward(a->dqkv, a->datty, qkv, att, B, T, D, NH));
        PROF(PROF_B_LN, layernorm_apply(a->ln, xin, w->blocks[l].ln1_w, w->blocks[l].ln1_b, m1, m1 + BT,
                                        (int)BT, D));
        PROF(PROF_B_QKV, linear_backward(a->dln, g->blocks[l].qkv_w, g->blocks[l].qkv_b, a->dqkv, a->ln,
                        w->blocks[l].qkv_w, (int)BT, D, 3 * D));
        PROF(PROF_B_LN, layernorm_backward(dres, g->blocks[l].ln1_w, g->blocks[l].ln1_b, a->dln, xin,
                           w->blocks[l].ln1_w, m1, m1 + BT, (int)BT, D));
    }

    // Embedding: x0[b,t] = (t ? tok[b,t-1] : cls) + pos[t].
    float *dpos = a->dpos, *dtok = a->dln;
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        float *dp = dpos + (size_t)t * D;
        memset(dp, 0, (size_t)D * sizeof(float));
        for (int b = 0; b < B; b++) {
            const float *src = dres + ((size_t)b * T + t) * D;
            for (int j = 0; j < D; j++) dp[j] += src[j];
            if (t > 0) memcpy(dtok + ((size_t)b * Np + t - 1) * D, src, (size_t)D * sizeof(float));
        }
    }
    for (int j = 0; j < D; j++) g->cls_token[j] += dpos[j];
    vit_interpolate_pos_backward(cfg, g->pos_embed, a->H, a->W, dpos);
    PROF(PROF_B_PATCH, linear_backward(dimages ? a->dcols : NULL, g->patch_w, g->patch_b, dtok, a->cols, w->patch_w,
                    B * Np, a->CPP, D));
    if (dimages) patch_fold(dimages, a->dcols, B, cfg->in_chans, a->H, a->W, cfg->patch);
}
