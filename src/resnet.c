// The ResNet backbone of resnet.h as a list of conv.h calls over
// channel-major activations. Training activations keep every convolution's
// output before and after its BatchNorm + ReLU (BatchNorm's backward needs
// its input, ReLU's its output); inference activations reuse a few buffers
// whatever the depth: two for the block inputs and outputs in turn, and one
// per tensor inside a block. Evaluation on oneDNN folds BatchNorm into the
// convolutions and runs the blocks in oneDNN's own layout (conv.h's slots),
// leaving those buffers to the layer-by-layer path.
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "arena.h"
#include "conv.h"
#include "rng.h"

int resnet_config_preset(ResNetConfig *cfg, const char *arch) {
    if (!strcmp(arch, "resnet_tiny")) {
        // resnet50's widths / 16 (a 16-channel stem, planes 4..32), one
        // bottleneck per stage, the small stem: 128-d features of a 28 px image.
        resnet_config_preset(cfg, "resnet50");
        static const int tp[] = {4, 8, 16, 32}, tb[] = {1, 1, 1, 1};
        memcpy(cfg->planes, tp, sizeof tp);
        memcpy(cfg->blocks, tb, sizeof tb);
        cfg->stem_width = 16;
        resnet_config_small_stem(cfg);
        return 0;
    }
    if (strcmp(arch, "resnet50")) return -1;
    memset(cfg, 0, sizeof *cfg);
    cfg->in_chans = 3;
    cfg->stem_width = 64;
    cfg->stem_kernel = 7;
    cfg->stem_stride = 2;
    cfg->stem_pool = 1;
    static const int planes[] = {64, 128, 256, 512}, blocks[] = {3, 4, 6, 3};
    memcpy(cfg->planes, planes, sizeof planes);
    memcpy(cfg->blocks, blocks, sizeof blocks);
    cfg->width_per_group = 64;
    cfg->expansion = 4;
    cfg->bn_eps = 1e-5f;
    cfg->bn_momentum = 0.1f;
    return 0;
}

void resnet_config_small_stem(ResNetConfig *cfg) {
    cfg->stem_kernel = 3;
    cfg->stem_stride = 1;
    cfg->stem_pool = 0;
}

int resnet_out_dim(const ResNetConfig *cfg) { return cfg->planes[RESNET_STAGES - 1] * cfg->expansion; }

int resnet_n_blocks(const ResNetConfig *cfg) {
    int n = 0;
    for (int s = 0; s < RESNET_STAGES; s++) n += cfg->blocks[s];
    return n;
}

int resnet_config_is_resnet50(const ResNetConfig *cfg) {
    ResNetConfig r;
    resnet_config_preset(&r, "resnet50");
    r.in_chans = cfg->in_chans;
    return !memcmp(&r, cfg, sizeof r);
}

int resnet_config_is_tiny(const ResNetConfig *cfg) {
    ResNetConfig r;
    resnet_config_preset(&r, "resnet_tiny");
    r.in_chans = cfg->in_chans;
    return !memcmp(&r, cfg, sizeof r);
}

void resnet_config_describe(const ResNetConfig *cfg, char *buf, size_t n) {
    snprintf(buf, n, "%s: %d-d, blocks [%d,%d,%d,%d], planes [%d,%d,%d,%d], width/group %d, "
             "expansion %d, stem %dx%d/%d%s, in_chans=%d, BatchNorm eps=%g",
             resnet_config_is_resnet50(cfg) ? "resnet50" : resnet_config_is_tiny(cfg) ? "resnet_tiny" : "resnet (custom)", resnet_out_dim(cfg),
             cfg->blocks[0], cfg->blocks[1], cfg->blocks[2], cfg->blocks[3], cfg->planes[0],
             cfg->planes[1], cfg->planes[2], cfg->planes[3], cfg->width_per_group, cfg->expansion,
             cfg->stem_kernel, cfg->stem_kernel, cfg->stem_stride,
             cfg->stem_pool ? " + max-pool 3x3/2" : ", no max-pool", cfg->in_chans,
             (double)cfg->bn_eps);
}

// One bottleneck's channels and stride.
typedef struct {
    int in, inner, out, stride, ds;
} BlockDims;

static void validate(const ResNetConfig *cfg) {
    DINO_ASSERT(cfg->in_chans >= 1 && cfg->stem_width >= 1 && cfg->expansion >= 1);
    DINO_ASSERT(cfg->stem_kernel >= 1 && cfg->stem_stride >= 1 && cfg->width_per_group >= 1);
    for (int s = 0; s < RESNET_STAGES; s++) DINO_ASSERT(cfg->planes[s] >= 1 && cfg->blocks[s] >= 1);
    DINO_ASSERT(resnet_n_blocks(cfg) <= RESNET_MAX_BLOCKS);
}

// Block i in network order, as torchvision's _make_layer builds it.
static int block_dims(const ResNetConfig *cfg, BlockDims *d) {
    validate(cfg);
    int in = cfg->stem_width, n = 0;
    for (int s = 0; s < RESNET_STAGES; s++)
        for (int j = 0; j < cfg->blocks[s]; j++) {
            BlockDims *b = &d[n++];
            b->in = in;
            b->inner = (int)((int64_t)cfg->planes[s] * cfg->width_per_group / 64);
            b->out = cfg->planes[s] * cfg->expansion;
            b->stride = (j == 0 && s > 0) ? 2 : 1;
            b->ds = j == 0 && (b->stride != 1 || in != b->out);
            DINO_ASSERT(b->inner >= 1);
            in = b->out;
        }
    return n;
}

double resnet_forward_macs(const ResNetConfig *cfg, int H, int W) {
    BlockDims d[RESNET_MAX_BLOCKS];
    int nb = block_dims(cfg, d), k = cfg->stem_kernel;
    int h = conv_out_size(H, k, cfg->stem_stride, k / 2), w = conv_out_size(W, k, cfg->stem_stride, k / 2);
    double macs = (double)h * w * cfg->stem_width * cfg->in_chans * k * k;
    if (cfg->stem_pool) h = conv_out_size(h, 3, 2, 1), w = conv_out_size(w, 3, 2, 1);
    for (int i = 0; i < nb; i++) {
        int oh = conv_out_size(h, 3, d[i].stride, 1), ow = conv_out_size(w, 3, d[i].stride, 1);
        macs += (double)h * w * d[i].inner * d[i].in + (double)oh * ow * d[i].inner * d[i].inner * 9 +
                (double)oh * ow * d[i].out * d[i].inner + (d[i].ds ? (double)oh * ow * d[i].out * d[i].in : 0);
        h = oh, w = ow;
    }
    return macs;
}

// ---------------------------------------------------------------- parameters

// Every parameter in table order; bind, init and the table walk the same list.
enum { SLOT_CONV, SLOT_BN_W, SLOT_BN_B, SLOT_BN_MEAN, SLOT_BN_VAR };
typedef struct {
    char name[PARAM_NAME_MAX];
    float **ptr;
    int kind;
    int64_t shape[4];
} Slot;

#define RESNET_MAX_SLOTS (5 + RESNET_MAX_BLOCKS * 4 * 5)

static int add_conv(Slot *s, int n, const char *name, float **p, int oc, int c, int k) {
    s[n] = (Slot){.ptr = p, .kind = SLOT_CONV, .shape = {oc, c, k, k}};
    snprintf(s[n].name, sizeof s[n].name, "%s", name);
    return n + 1;
}

static int add_bn(Slot *s, int n, const char *name, ResNetBN *bn, int c) {
    static const char *const leaf[] = {"weight", "bias", "running_mean", "running_var"};
    float **ptr[] = {&bn->w, &bn->b, &bn->mean, &bn->var};
    for (int i = 0; i < 4; i++) {
        s[n] = (Slot){.ptr = ptr[i], .kind = SLOT_BN_W + i, .shape = {c}};
        size_t a = strlen(name), b = strlen(leaf[i]);
        DINO_ASSERT(a + 1 + b < sizeof s[n].name);
        memcpy(s[n].name, name, a);
        s[n].name[a] = '.';
        memcpy(s[n].name + a + 1, leaf[i], b + 1);
        n++;
    }
    return n;
}

static int resnet_slots(const ResNetConfig *cfg, ResNetWeights *w, Slot *s) {
    BlockDims d[RESNET_MAX_BLOCKS];
    block_dims(cfg, d);
    int n = 0, k = cfg->stem_kernel, bi = 0;
    n = add_conv(s, n, "conv1.weight", &w->conv1, cfg->stem_width, cfg->in_chans, k);
    n = add_bn(s, n, "bn1", &w->bn1, cfg->stem_width);
    char pre[32], name[PARAM_NAME_MAX];
    for (int st = 0; st < RESNET_STAGES; st++)
        for (int j = 0; j < cfg->blocks[st]; j++, bi++) {
            ResNetBlockWeights *b = &w->blocks[bi];
            const BlockDims *bd = &d[bi];
            snprintf(pre, sizeof pre, "layer%d.%d", st + 1, j);
#define NAME(leaf) (snprintf(name, sizeof name, "%s.%s", pre, leaf), name)
            n = add_conv(s, n, NAME("conv1.weight"), &b->conv1, bd->inner, bd->in, 1);
            n = add_bn(s, n, NAME("bn1"), &b->bn1, bd->inner);
            n = add_conv(s, n, NAME("conv2.weight"), &b->conv2, bd->inner, bd->inner, 3);
            n = add_bn(s, n, NAME("bn2"), &b->bn2, bd->inner);
            n = add_conv(s, n, NAME("conv3.weight"), &b->conv3, bd->out, bd->inner, 1);
            n = add_bn(s, n, NAME("bn3"), &b->bn3, bd->out);
            if (bd->ds) {
                n = add_conv(s, n, NAME("downsample.0.weight"), &b->ds_conv, bd->out, bd->in, 1);
                n = add_bn(s, n, NAME("downsample.1"), &b->ds_bn, bd->out);
            }
#undef NAME
        }
    return n;
}

static size_t slot_numel(const Slot *s) {
    return s->kind == SLOT_CONV ? (size_t)(s->shape[0] * s->shape[1] * s->shape[2] * s->shape[3])
                                : (size_t)s->shape[0];
}

void resnet_param_table(const ResNetConfig *cfg, ParamTable *t, const char *prefix) {
    static ResNetWeights dummy;
    Slot *s = mallocCheck(RESNET_MAX_SLOTS * sizeof *s);
    int n = resnet_slots(cfg, &dummy, s);
    for (int i = 0; i < n; i++) {
        int idx = param_table_add(t, prefix, s[i].name, s[i].kind == SLOT_CONV ? 4 : 1, s[i].shape);
        if (s[i].kind == SLOT_BN_MEAN || s[i].kind == SLOT_BN_VAR) {
            t->p[idx].buffer = 1;
            t->p[idx].trainable = 0;
        }
    }
    free(s);
}

void resnet_weights_bind(ResNetWeights *w, const ResNetConfig *cfg, float *base) {
    memset(w, 0, sizeof *w);
    Slot *s = mallocCheck(RESNET_MAX_SLOTS * sizeof *s);
    int n = resnet_slots(cfg, w, s);
    for (int i = 0; i < n; i++) {
        *s[i].ptr = base;
        base += slot_numel(&s[i]);
    }
    free(s);
}

void resnet_init(const ResNetConfig *cfg, ResNetWeights *w, uint64_t seed) {
    ResNetWeights tmp = *w;
    Slot *s = mallocCheck(RESNET_MAX_SLOTS * sizeof *s);
    int n = resnet_slots(cfg, &tmp, s);
    for (int i = 0; i < n; i++) {
        float *x = *s[i].ptr;
        size_t numel = slot_numel(&s[i]);
        if (s[i].kind == SLOT_CONV) {
            // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std √(2/fan_out).
            double std = sqrt(2.0 / (double)(s[i].shape[0] * s[i].shape[2] * s[i].shape[3]));
            Rng r;
            rng_stream(&r, RNG_INIT_BACKBONE, seed, (uint64_t)i, 0, 0);
            for (size_t j = 0; j < numel; j++) x[j] = (float)(std * rng_normal(&r));
        } else {
            float v = (s[i].kind == SLOT_BN_W || s[i].kind == SLOT_BN_VAR) ? 1.0f : 0.0f;
            for (size_t j = 0; j < numel; j++) x[j] = v;
        }
    }
    free(s);
}

// ---------------------------------------------------------------- activations

typedef struct {
    ConvShape c1, c2, c3, ds;
    float *x;                        // input (in, B, H, W): the previous block's out
    float *t1, *a1, *t2, *a2, *t3;   // conv outputs before / after BatchNorm + ReLU
    float *td, *dn;                  // downsample conv output, its BatchNorm output
    float *out;                      // (out, B, OH, OW)
    float *mean[4], *rstd[4];        // bn1, bn2, bn3, downsample
} BlockActs;

struct ResNetActs {
    ResNetConfig cfg;
    int B, H, W, keep, sync, n_blocks;
    void *mem;
    ConvShape stem;
    int PH, PW;                // after the max-pool (= stem output without one)
    float *img;                // (C, B, H, W)
    float *s_t, *s_a, *s_p;    // stem conv output, BN + ReLU, max-pool
    int *argmax;
    float *s_mean, *s_rstd;
    BlockActs blk[RESNET_MAX_BLOCKS];
    float *feat;               // (B, out_dim)
    float *scratch;            // im2col columns
    float *fold;               // evaluation: a convolution's BatchNorm-folded weights and bias
    // Backward: block-boundary gradients in turn, inner and output-width scratch.
    float *gp[2], *gi1, *gi2, *g3, *gd;
};

// Activations are regions of one block at 64-byte (16-float) boundaries (arena.h).
#define RESNET_ACTS_ALIGN_FLOATS 16

static ConvShape conv_shape(int C, int OC, int k, int stride, int pad, int B, int H, int W) {
    ConvShape s = {.C = C, .OC = OC, .k = k, .stride = stride, .pad = pad};
    conv_shape_set(&s, B, H, W);
    return s;
}

// Shapes for B images, then (when m is given) the buffers.
static void plan(ResNetActs *a, const ResNetConfig *cfg, int B, int H, int W, int keep, Arena *m) {
    BlockDims d[RESNET_MAX_BLOCKS];
    int nb = block_dims(cfg, d), k = cfg->stem_kernel;
    a->n_blocks = nb;
    a->stem = conv_shape(cfg->in_chans, cfg->stem_width, k, cfg->stem_stride, k / 2, B, H, W);
    a->PH = cfg->stem_pool ? conv_out_size(a->stem.OH, 3, 2, 1) : a->stem.OH;
    a->PW = cfg->stem_pool ? conv_out_size(a->stem.OW, 3, 2, 1) : a->stem.OW;
    int h = a->PH, w = a->PW;
    size_t ping = (size_t)cfg->stem_width * B * h * w, s1 = 0, s2 = 0, s3 = 0, scr = conv_scratch_floats(&a->stem);
    size_t fold = conv_fold_floats(&a->stem);
    for (int i = 0; i < nb; i++) {
        BlockActs *b = &a->blk[i];
        const BlockDims *bd = &d[i];
        b->c1 = conv_shape(bd->in, bd->inner, 1, 1, 0, B, h, w);
        b->c2 = conv_shape(bd->inner, bd->inner, 3, bd->stride, 1, B, h, w);
        b->c3 = conv_shape(bd->inner, bd->out, 1, 1, 0, B, b->c2.OH, b->c2.OW);
        if (bd->ds) b->ds = conv_shape(bd->in, bd->out, 1, bd->stride, 0, B, h, w);
        else memset(&b->ds, 0, sizeof b->ds);
        size_t n_in = (size_t)B * h * w, n_out = (size_t)B * b->c2.OH * b->c2.OW;
        h = b->c2.OH, w = b->c2.OW;
        if ((size_t)bd->out * n_out > ping) ping = (size_t)bd->out * n_out;
        if ((size_t)bd->inner * n_in > s1) s1 = (size_t)bd->inner * n_in;
        if ((size_t)bd->inner * n_out > s2) s2 = (size_t)bd->inner * n_out;
        if ((size_t)bd->out * n_out > s3) s3 = (size_t)bd->out * n_out;
        size_t c[] = {conv_scratch_floats(&b->c1), conv_scratch_floats(&b->c2),
                      conv_scratch_floats(&b->c3), bd->ds ? conv_scratch_floats(&b->ds) : 0};
        size_t f[] = {conv_fold_floats(&b->c1), conv_fold_floats(&b->c2), conv_fold_floats(&b->c3),
                      bd->ds ? conv_fold_floats(&b->ds) : 0};
        for (int j = 0; j < 4; j++) {
            if (c[j] > scr) scr = c[j];
            if (f[j] > fold) fold = f[j];
        }
    }
    if (!m) return;
    size_t stem_out = (size_t)cfg->stem_width * B * a->stem.OH * a->stem.OW;
    a->img = arena_take_ptr(m, (size_t)cfg->in_chans * B * H * W);
    a->scratch = arena_take_ptr(m, scr);
    a->feat = arena_take_ptr(m, (size_t)B * resnet_out_dim(cfg));
    a->s_mean = arena_take_ptr(m, cfg->stem_width);
    a->s_rstd = arena_take_ptr(m, cfg->stem_width);
    float *pp[2] = {NULL, NULL}, *S1 = NULL, *S2 = NULL, *S3 = NULL, *S4 = NULL;
    if (keep) {
        a->s_t = arena_take_ptr(m, stem_out);
        a->s_a = arena_take_ptr(m, stem_out);
        if (cfg->stem_pool) {
            a->s_p = arena_take_ptr(m, (size_t)cfg->stem_width * B * a->PH * a->PW);
            a->argmax = (int *)arena_take_ptr(m, (size_t)cfg->stem_width * B * a->PH * a->PW);
        } else {
            a->s_p = a->s_a;
        }
        S4 = arena_take_ptr(m, s3);  // the downsample's BatchNorm output, added at once
    } else {  // evaluation runs only here (training activations need batch statistics)
        a->fold = arena_take_ptr(m, fold);
        pp[0] = arena_take_ptr(m, ping);
        pp[1] = arena_take_ptr(m, ping);
        S1 = arena_take_ptr(m, s1), S2 = arena_take_ptr(m, s2), S3 = arena_take_ptr(m, s3), S4 = arena_take_ptr(m, s3);
        a->s_t = a->s_a = cfg->stem_pool ? arena_take_ptr(m, stem_out) : pp[0];
        a->s_p = pp[0];
    }
    const float *x = a->s_p;
    for (int i = 0; i < nb; i++) {
        BlockActs *b = &a->blk[i];
        const BlockDims *bd = &d[i];
        size_t n_in = (size_t)b->c1.B * b->c1.H * b->c1.W, n_out = (size_t)b->c3.B * b->c3.H * b->c3.W;
        b->x = (float *)x;
        if (keep) {
            b->t1 = arena_take_ptr(m, bd->inner * n_in), b->a1 = arena_take_ptr(m, bd->inner * n_in);
            b->t2 = arena_take_ptr(m, bd->inner * n_out), b->a2 = arena_take_ptr(m, bd->inner * n_out);
            b->t3 = arena_take_ptr(m, (size_t)bd->out * n_out);
            b->td = bd->ds ? arena_take_ptr(m, (size_t)bd->out * n_out) : NULL;
            b->dn = S4;
            b->out = arena_take_ptr(m, (size_t)bd->out * n_out);
        } else {
            b->t1 = b->a1 = S1, b->t2 = b->a2 = S2, b->t3 = S3;
            b->td = b->dn = S4;
            b->out = pp[(i + 1) % 2];
        }
        int ch[4] = {bd->inner, bd->inner, bd->out, bd->out};
        for (int j = 0; j < 4; j++) {
            b->mean[j] = j < 3 || bd->ds ? arena_take_ptr(m, ch[j]) : NULL;
            b->rstd[j] = j < 3 || bd->ds ? arena_take_ptr(m, ch[j]) : NULL;
        }
        x = b->out;
    }
    if (keep) {
        size_t gmax = ping > stem_out ? ping : stem_out;
        a->gp[0] = arena_take_ptr(m, gmax), a->gp[1] = arena_take_ptr(m, gmax);
        a->gi1 = arena_take_ptr(m, s1 > stem_out ? s1 : stem_out), a->gi2 = arena_take_ptr(m, s2);
        a->g3 = arena_take_ptr(m, s3), a->gd = arena_take_ptr(m, s3);
    }
}

size_t resnet_acts_bytes(const ResNetConfig *cfg, int B, int H, int W, int keep) {
    ResNetActs *a = callocCheck(1, sizeof *a);
    Arena m;
    arena_init(&m, NULL, RESNET_ACTS_ALIGN_FLOATS);
    plan(a, cfg, B, H, W, keep, NULL);
    plan(a, cfg, B, H, W, keep, &m);
    free(a);
    return m.total * sizeof(float);
}

ResNetActs *resnet_acts_create(const ResNetConfig *cfg, int B, int H, int W, int keep) {
    DINO_ASSERT(B >= 1 && H >= 1 && W >= 1);
    size_t bytes = resnet_acts_bytes(cfg, B, H, W, keep);
    ResNetActs *a = callocCheck(1, sizeof *a);
    a->cfg = *cfg;
    a->B = B, a->H = H, a->W = W, a->keep = keep;
    a->mem = alignedAllocCheck(bytes ? bytes : 64);
    Arena m;
    arena_init(&m, a->mem, RESNET_ACTS_ALIGN_FLOATS);
    plan(a, cfg, B, H, W, keep, &m);
    return a;
}

void resnet_acts_free(ResNetActs *a) {
    if (!a) return;
    free(a->mem);
    free(a);
}

void resnet_acts_set_sync(ResNetActs *a, int sync) { a->sync = sync; }

const float *resnet_output(const ResNetActs *a) { return a->feat; }

// ---------------------------------------------------------------- forward / backward

// The shapes of the planned activations for B' <= B images.
static void set_batch(ResNetActs *a, int B) {
    conv_shape_set(&a->stem, B, a->H, a->W);
    for (int i = 0; i < a->n_blocks; i++) {
        BlockActs *b = &a->blk[i];
        conv_shape_set(&b->c1, B, b->c1.H, b->c1.W);
        conv_shape_set(&b->c2, B, b->c2.H, b->c2.W);
        conv_shape_set(&b->c3, B, b->c3.H, b->c3.W);
        if (b->ds.C) conv_shape_set(&b->ds, B, b->ds.H, b->ds.W);
    }
}

static size_t out_numel(const ConvShape *s) { return (size_t)s->OC * s->B * s->OH * s->OW; }

// BatchNorm (+ ReLU when relu) of a convolution's output.
static void bn_apply(const ResNetActs *a, float *out, float *mean, float *rstd, const float *x,
                     ResNetBN *bn, const ConvShape *s, int relu) {
    const ResNetConfig *cfg = &a->cfg;
    size_t N = (size_t)s->B * s->OH * s->OW;
    bn_forward_train(out, mean, rstd, x, bn->w, bn->b, bn->mean, bn->var, s->OC, N, cfg->bn_eps,
                     cfg->bn_momentum, a->sync);
    if (relu) relu_forward(out, out, (size_t)s->OC * N);
}

// Convolution, BatchNorm (+ ReLU when relu): out = layers(in). Batch
// statistics keep the convolution's output in t and their mean and rstd;
// evaluation folds BatchNorm into the convolution (conv.h) and writes out only.
static void conv_bn(const ResNetActs *a, float *t, float *out, float *mean, float *rstd, const float *in,
                    const float *cw, ResNetBN *bn, const ConvShape *s, int batch_stats, int relu) {
    if (!batch_stats) {
        conv2d_bn_eval_forward(out, in, cw, bn->w, bn->b, bn->mean, bn->var, a->cfg.bn_eps, relu, s,
                               a->scratch, a->fold);
        return;
    }
    conv2d_forward(t, in, cw, s, a->scratch);
    bn_apply(a, out, mean, rstd, t, bn, s, relu);
}

static ConvBNLayer eval_layer(const ResNetActs *a, const ConvShape *s, const float *cw, const ResNetBN *bn,
                              int relu) {
    return (ConvBNLayer){.s = *s, .w = cw, .bn_w = bn->w, .bn_b = bn->b, .bn_mean = bn->mean,
                         .bn_var = bn->var, .eps = a->cfg.bn_eps, .relu = relu};
}

// The bottlenecks in evaluation with activations in oneDNN's layouts from
// the first block's input to the last one's output (conv.h's slots): the
// residual enters conv3 as a sum into the slot holding x, or the
// downsample's output, before its ReLU. -1 when oneDNN cannot; then only
// the slots have changed.
static int trunk_eval(const ResNetActs *a, ResNetWeights *w) {
    int x = 0, t1 = 1, t2 = 2, d = 3;
    for (int i = 0; i < a->n_blocks; i++) {
        const BlockActs *b = &a->blk[i];
        ResNetBlockWeights *bw = &w->blocks[i];
        ConvBNLayer l1 = eval_layer(a, &b->c1, bw->conv1, &bw->bn1, 1);
        ConvBNLayer l2 = eval_layer(a, &b->c2, bw->conv2, &bw->bn2, 1);
        ConvBNLayer l3 = eval_layer(a, &b->c3, bw->conv3, &bw->bn3, 1);
        if (i == 0 && conv_eval_load(x, b->x, &l1, 0)) return -1;
        if (conv_eval_step(t1, x, &l1, 0, a->fold) || conv_eval_step(t2, t1, &l2, 0, a->fold)) return -1;
        if (bw->ds_conv) {
            ConvBNLayer ld = eval_layer(a, &b->ds, bw->ds_conv, &bw->ds_bn, 0);
            if (conv_eval_step(d, x, &ld, 0, a->fold)) return -1;
            int t = x;
            x = d, d = t;
        }
        if (conv_eval_step(x, t2, &l3, 1, a->fold)) return -1;
    }
    return conv_eval_store(a->blk[a->n_blocks - 1].out, x);
}

// One bottleneck, layer by layer.
static void block_forward(const ResNetActs *a, BlockActs *b, ResNetBlockWeights *bw, int bs) {
    conv_bn(a, b->t1, b->a1, b->mean[0], b->rstd[0], b->x, bw->conv1, &bw->bn1, &b->c1, bs, 1);
    conv_bn(a, b->t2, b->a2, b->mean[1], b->rstd[1], b->a1, bw->conv2, &bw->bn2, &b->c2, bs, 1);
    conv_bn(a, b->t3, b->out, b->mean[2], b->rstd[2], b->a2, bw->conv3, &bw->bn3, &b->c3, bs, 0);
    const float *res = b->x;
    if (bw->ds_conv) {
        conv_bn(a, b->td, b->dn, b->mean[3], b->rstd[3], b->x, bw->ds_conv, &bw->ds_bn, &b->ds, bs, 0);
        res = b->dn;
    }
    size_t n = out_numel(&b->c3);
    float *o = b->out;
#pragma omp parallel for simd if (n > 32768)
    for (size_t j = 0; j < n; j++) {
        float v = o[j] + res[j];
        o[j] = v > 0.0f ? v : 0.0f;
    }
}

void resnet_forward(const ResNetConfig *cfg, ResNetWeights *w, ResNetActs *a,
                    const float *images, int B, int batch_stats) {
    DINO_ASSERT(B >= 1 && B <= a->B);
    DINO_ASSERT(!a->keep || batch_stats);
    int bs = batch_stats;
    set_batch(a, B);
    nchw_to_cnhw(a->img, images, B, cfg->in_chans, a->H * a->W);
    conv_bn(a, a->s_t, a->s_a, a->s_mean, a->s_rstd, a->img, w->conv1, &w->bn1, &a->stem, bs, 1);
    if (cfg->stem_pool)
        maxpool_forward(a->s_p, a->keep ? a->argmax : NULL, a->s_a, cfg->stem_width * B,
                        a->stem.OH, a->stem.OW, a->PH, a->PW, 3, 2, 1);
    if (bs || trunk_eval(a, w))
        for (int i = 0; i < a->n_blocks; i++) block_forward(a, &a->blk[i], &w->blocks[i], bs);
    const BlockActs *last = &a->blk[a->n_blocks - 1];
    avgpool_forward(a->feat, last->out, last->c3.OC, B, last->c3.OH * last->c3.OW);
}

// BatchNorm backward in place on g (the gradient of its output), weights into gbn.
static void bn_back(const ResNetActs *a, float *g, const float *x, const float *mean,
                    const float *rstd, const ResNetBN *bn, ResNetBN *gbn, const ConvShape *s) {
    size_t N = (size_t)s->B * s->OH * s->OW;
    bn_backward_train(g, gbn->w, gbn->b, g, x, bn->w, mean, rstd, s->OC, N, a->sync);
}

void resnet_backward(const ResNetConfig *cfg, const ResNetWeights *w, ResNetWeights *g,
                     ResNetActs *a, const float *dfeat) {
    DINO_ASSERT(a->keep);
    int B = a->stem.B, cur = 0;
    const BlockActs *last = &a->blk[a->n_blocks - 1];
    avgpool_backward(a->gp[cur], dfeat, last->c3.OC, B, last->c3.OH * last->c3.OW);
    for (int i = a->n_blocks - 1; i >= 0; i--) {
        BlockActs *b = &a->blk[i];
        const ResNetBlockWeights *bw = &w->blocks[i];
        ResNetBlockWeights *gw = &g->blocks[i];
        float *gout = a->gp[cur], *gin = a->gp[1 - cur];
        size_t n_out = out_numel(&b->c3);
        relu_backward(gout, gout, b->out, n_out);  // now d(bn3 + residual)
        // The residual branch writes gin; the main branch accumulates into it.
        if (bw->ds_conv) {
            memcpy(a->gd, gout, n_out * sizeof(float));
            bn_back(a, a->gd, b->td, b->mean[3], b->rstd[3], &bw->ds_bn, &gw->ds_bn, &b->ds);
            conv2d_backward(gin, gw->ds_conv, a->gd, b->x, bw->ds_conv, &b->ds, a->scratch, 0);
        } else {
            memcpy(gin, gout, n_out * sizeof(float));
        }
        memcpy(a->g3, gout, n_out * sizeof(float));
        bn_back(a, a->g3, b->t3, b->mean[2], b->rstd[2], &bw->bn3, &gw->bn3, &b->c3);
        conv2d_backward(a->gi2, gw->conv3, a->g3, b->a2, bw->conv3, &b->c3, a->scratch, 0);
        relu_backward(a->gi2, a->gi2, b->a2, out_numel(&b->c2));
        bn_back(a, a->gi2, b->t2, b->mean[1], b->rstd[1], &bw->bn2, &gw->bn2, &b->c2);
        conv2d_backward(a->gi1, gw->conv2, a->gi2, b->a1, bw->conv2, &b->c2, a->scratch, 0);
        relu_backward(a->gi1, a->gi1, b->a1, out_numel(&b->c1));
        bn_back(a, a->gi1, b->t1, b->mean[0], b->rstd[0], &bw->bn1, &gw->bn1, &b->c1);
        conv2d_backward(gin, gw->conv1, a->gi1, b->x, bw->conv1, &b->c1, a->scratch, 1);
        cur = 1 - cur;
    }
    // The stem: the gradient of the max-pool output is in gp[cur].
    float *gs = a->gp[cur];
    size_t stem_out = out_numel(&a->stem);
    if (cfg->stem_pool) {
        maxpool_backward(a->gi1, gs, a->argmax, cfg->stem_width * B, a->stem.OH, a->stem.OW,
                         a->PH, a->PW);
        gs = a->gi1;
    }
    relu_backward(gs, gs, a->s_a, stem_out);
    bn_back(a, gs, a->s_t, a->s_mean, a->s_rstd, &w->bn1, &g->bn1, &a->stem);
    conv2d_backward(NULL, g->conv1, gs, a->img, w->conv1, &a->stem, a->scratch, 0);
}
