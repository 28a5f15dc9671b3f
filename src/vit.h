// The Vision Transformer backbone (docs/DINO.md §1): configuration, parameter layout,
// forward and backward over a batch of images of one resolution. Parameters
// live in a flat buffer described by vit_param_table; ViTWeights holds
// pointers into such a buffer (the weights, or the gradients, which share the
// layout). Images are (B, C, H, W) float32, normalised.
#ifndef DINO_VIT_H
#define DINO_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"

#define VIT_MAX_DEPTH 48

typedef struct {
    int img_size;        // size the position grid is built for (224: 14x14 at /16)
    int patch;           // patch size p
    int in_chans;        // C (3)
    int dim;             // D
    int depth;           // L
    int heads;           // NH; head_dim = D / NH
    int mlp_hidden;      // 4·D
    float ln_eps;        // 1e-6
    float drop_path_rate;  // block i gets rate·i/(L-1) (training only)
    // DINOv2's pieces (docs/ENGINE.md), all 0 for DINO's ViT; inference only:
    int n_registers;     // extra tokens after CLS with no position embedding
    int layerscale;      // per-channel gains blocks.i.ls1/ls2.gamma on both branches
    int swiglu;          // SwiGLU MLP: mlp.w12 (2·mlp_hidden, D), mlp.w3 (D, mlp_hidden)
    int pos_interp;      // VIT_POS_INTERP_*: how pos_embed is resized
    // DINOv3 (docs/ENGINE.md), 0 otherwise; inference only: > 0 gives axial
    // 2D RoPE on the patch tokens' queries and keys with periods
    // rope_embed.periods (base^(2j/(head_dim/2)) as made), no pos_embed, and
    // the extra tokens named storage_tokens.
    float rope_base;
} ViTConfig;

// Position-embedding resizing: DINO's and official DINOv2's scale factor
// (n + 0.1)/g; Hugging Face Dinov2's output size; DINOv2-with-registers'
// output size with antialiasing (PyTorch's separable antialiased bicubic).
enum { VIT_POS_INTERP_DINO = 0, VIT_POS_INTERP_SIZE = 1, VIT_POS_INTERP_SIZE_AA = 2 };

// 1 when the configuration uses none of the DINOv2/DINOv3 options (what
// training and the CUDA engine support).
int vit_config_is_plain(const ViTConfig *cfg);

// Presets "vit_tiny", "vit_small", "vit_base" (and "deit_*" aliases) with the
// given patch size and img_size 224. Returns 0, or -1 for an unknown name.
int vit_config_preset(ViTConfig *cfg, const char *arch, int patch);
// A one-line description ("vit_small/16: D=384 depth=12 heads=6 ...").
void vit_config_describe(const ViTConfig *cfg, char *buf, size_t n);
int vit_grid(const ViTConfig *cfg);  // img_size / patch
// RoPE: how many periods (head_dim/4), and the ones the official code makes
// from rope_base (float32, base^(2j/(head_dim/2))).
int vit_rope_nperiods(const ViTConfig *cfg);
void vit_rope_default_periods(const ViTConfig *cfg, float *out);
// The evaluation crop when none is given: img_size, but 224 for DINOv2's
// LayerScale models (made for 518 px, evaluated at 224 by dinov2/eval).
int vit_eval_crop(const ViTConfig *cfg);
// 1 + (H/p)(W/p): CLS and patch tokens, what vit_output holds per image
// (registers are kept apart, vit_register_tokens).
int vit_tokens(const ViTConfig *cfg, int H, int W);

// Appends the backbone's entries in the reference state_dict order
// (cls_token, pos_embed, [register_tokens], patch_embed.proj.{weight,bias},
// blocks.i.* [with ls1.gamma after attn.proj, ls2.gamma after the MLP], norm.*).
// With RoPE: cls_token, [storage_tokens], rope_embed.periods (head_dim/4),
// then as above.
void vit_param_table(const ViTConfig *cfg, ParamTable *t, const char *prefix);

typedef struct {
    float *cls_token;   // (D)
    float *pos_embed;   // (1 + grid², D); NULL with RoPE
    float *registers;   // (n_registers, D), or NULL
    float *rope_periods;  // (head_dim/4) with RoPE, or NULL
    float *patch_w;     // (D, C·p·p): Conv2d weight viewed as a matrix
    float *patch_b;     // (D)
    struct {
        float *ln1_w, *ln1_b;     // (D)
        float *qkv_w, *qkv_b;     // (3D, D), (3D)
        float *proj_w, *proj_b;   // (D, D), (D)
        float *ln2_w, *ln2_b;     // (D)
        float *fc1_w, *fc1_b;     // (H4, D), (H4)
        float *fc2_w, *fc2_b;     // (D, H4), (D)
        float *ls1, *ls2;         // (D) LayerScale gains, or NULL
    } blocks[VIT_MAX_DEPTH];
    float *norm_w, *norm_b;  // (D)
} ViTWeights;

// Points w into `base`, laid out as vit_param_table with `offset` floats before it.
void vit_weights_bind(ViTWeights *w, const ViTConfig *cfg, float *base);

// The reference initialisation: trunc_normal(.02) for pos_embed, cls_token and
// every Linear weight, zero biases, LayerNorm (1, 0), PyTorch's default
// Conv2d init for the patch embedding. Draws from rng streams keyed by seed.
void vit_init(const ViTConfig *cfg, ViTWeights *w, uint64_t seed);

// Position embedding for an H x W input, exactly as the reference's
// interpolate_pos_encoding (bicubic, align_corners false, +0.1 scale factor;
// or as cfg->pos_interp says). out is (vit_tokens(H,W), D).
void vit_interpolate_pos(const ViTConfig *cfg, const float *pos_embed, int H, int W, float *out);
// Its adjoint: accumulates into dpos_embed (1+grid², D) the gradient of a loss
// whose gradient with respect to the interpolated embedding is dout.
void vit_interpolate_pos_backward(const ViTConfig *cfg, float *dpos_embed, int H, int W,
                                  const float *dout);

// Activations of one forward pass, kept for the backward pass when `train`.
typedef struct ViTActs ViTActs;
ViTActs *vit_acts_create(const ViTConfig *cfg, int B, int H, int W, int train);
// What activations keep: inference (one set of buffers), training (every
// block's inputs for vit_backward), or training without the attention
// probabilities of all but the last block (recomputed in backward: less
// memory, a little more time).
enum { VIT_ACTS_INFER = 0, VIT_ACTS_TRAIN = 1, VIT_ACTS_TRAIN_LEAN = 2 };
// Bytes of the one block of buffers activations of this mode use.
size_t vit_acts_bytes(const ViTConfig *cfg, int B, int H, int W, int mode);
// As vit_acts_create with a mode, in the caller's block `mem` (vit_acts_bytes
// bytes, 64-byte aligned, zeroed here; NULL: allocated), which several
// activations used one at a time may share; vit_acts_free then leaves it alone.
ViTActs *vit_acts_create_in(const ViTConfig *cfg, int B, int H, int W, int mode, void *mem);
void vit_acts_free(ViTActs *a);

// Forward over images (B, C, H, W) with B, H, W as given at creation (a
// smaller B is allowed). drop_scale, when not NULL, holds per block, branch
// (0 attention, 1 MLP) and sample the factor of the stochastic-depth mask:
// drop_scale[(l·2 + branch)·B + b] = mask/keep_prob, i.e. 0 or 1/(1-rate).
// NULL means no drop path (evaluation, teacher).
void vit_forward(const ViTConfig *cfg, const ViTWeights *w, ViTActs *a, const float *images,
                 int B, const float *drop_scale);
// After vit_forward: the final-norm tokens (B, T, D) with T = vit_tokens (CLS,
// then patches; no registers); the CLS feature of sample b is out[b·T·D .. +D].
const float *vit_output(const ViTActs *a);
int vit_acts_tokens(const ViTActs *a);
// After an inference vit_forward: the final-norm register tokens
// (B, n_registers, D), or NULL for a model without registers.
const float *vit_register_tokens(const ViTActs *a);
// The last block's attention probabilities (B, NH, T, T) among the T tokens
// of vit_output: with registers, their rows and columns are dropped (the
// rows then sum to less than 1).
const float *vit_last_attention(const ViTActs *a);
// The output of block (depth - n + k) passed through the final norm, for
// k = 0..n-1, written to out (n, B, T, D) (get_intermediate_layers).
void vit_intermediate(const ViTConfig *cfg, const ViTWeights *w, const ViTActs *a, int n,
                      float *out);

// Backward from dout = dLoss/d(final-norm tokens) (B, T, D). Accumulates
// (+=) parameter gradients into g; writes dimages (B, C, H, W) if not NULL.
void vit_backward(const ViTConfig *cfg, const ViTWeights *w, ViTWeights *g, ViTActs *a,
                  const float *dout, float *dimages);

#endif
