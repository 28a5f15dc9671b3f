// Inferring the architecture from a file's tensors (model_infer.h).
#include "io/model_infer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// Short names for the look-ups this file makes on every other line.
static ModelEntry *find(ModelSource *s, const char *name) { return model_source_find(s, name); }
static const char *meta_get(ModelSource *s, const char *key) { return model_source_meta(s, key); }
static int meta_int(ModelSource *s, const char *key, int *out) { return model_source_meta_int(s, key, out); }

static int isqrt_exact(int64_t n, int64_t *r) {
    int64_t g = (int64_t)llround(sqrt((double)n));
    for (int64_t c = g > 1 ? g - 1 : 0; c <= g + 1; c++)
        if (c * c == n) {
            *r = c;
            return 1;
        }
    return 0;
}

// Layouts we recognise but do not run, refused with what they have.
static int refuse_unsupported(ModelSource *s, char *err, size_t errlen) {
    static const char *const unsupported[][2] = {
        {"dist_token", "a distillation token (DeiT-distilled)"},
        {"blocks.0.ls1.weight", "LayerScale named as open_clip does"},
        {"blocks.0.attn.q_norm.weight", "q/k normalisation"},
        {"fc_norm.weight", "average pooling with fc_norm"},
        {"cls_norm.weight", "a separate norm for CLS and storage tokens (untie_cls_and_patch_norms)"},
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (find(s, unsupported[i][0])) {
            dino_errf(err, errlen, "%s is not a supported ViT: it has %s", s->path, unsupported[i][1]);
            return -1;
        }
    return 0;
}

// Position embeddings are resized as the file's own code does: the official
// models with registers and Hugging Face's by output size (with antialiasing
// for registers), the others by DINO's scale factor; a recorded
// vit.pos_interp wins. Needs cfg->n_registers.
static int infer_pos_interp(ModelSource *s, ViTConfig *cfg, char *err, size_t errlen) {
    cfg->pos_interp = cfg->n_registers ? VIT_POS_INTERP_SIZE_AA
                      : s->hf_dinov2 ? VIT_POS_INTERP_SIZE : VIT_POS_INTERP_DINO;
    const char *pi = meta_get(s, "vit.pos_interp");
    if (pi) {
        static const char *const modes[] = {"dino", "size", "size_aa"};
        int k = 0;
        while (k < 3 && strcmp(pi, modes[k])) k++;
        if (k == 3) {
            dino_errf(err, errlen, "%s: unknown vit.pos_interp '%.40s' (dino, size, size_aa)", s->path, pi);
            return -1;
        }
        cfg->pos_interp = k;
    }
    return 0;
}

// The number of heads: --heads, else the file's record, else (DINOv3) from
// rope_embed.periods (head_dim/4 values), else head size 64 as every DINO
// release but DINOv3's ViT-7B (4096 = 32 x 128).
static int infer_heads(ModelSource *s, const ModelLoadOptions *opt, int64_t D, int *heads_out, char *err,
                       size_t errlen) {
    int heads = opt && opt->heads > 0 ? opt->heads : 0;
    if (!heads && !meta_int(s, "vit.heads", &heads)) meta_int(s, "arg.num_heads", &heads);
    ModelEntry *per = s->dinov3 ? find(s, "rope_embed.periods") : NULL;
    if (per && (per->numel == 0 || D % (int64_t)(4 * per->numel))) {
        dino_errf(err, errlen, "%s: rope_embed.periods has %zu values, which fits no head size of D=%lld",
                  s->path, per->numel, (long long)D);
        return -1;
    }
    if (!heads && per) heads = (int)(D / (int64_t)(4 * per->numel));
    if (!heads && s->dinov3 && D == 4096) heads = 32;
    if (!heads) {
        if (D % 64) {
            dino_errf(err, errlen, "%s: cannot infer the number of attention heads for D=%lld (not a "
                    "multiple of 64, the head size of every DINO ViT); give it with --heads",
                    s->path, (long long)D);
            return -1;
        }
        heads = (int)(D / 64);
    }
    if (heads <= 0 || D % heads) {
        dino_errf(err, errlen, "%s: D=%lld is not divisible into %d heads", s->path, (long long)D, heads);
        return -1;
    }
    if (s->dinov3 && (D / heads) % 4) {
        dino_errf(err, errlen, "%s: head size %lld is not a multiple of 4, which 2D RoPE needs", s->path,
                  (long long)(D / heads));
        return -1;
    }
    if (per && (size_t)(D / heads / 4) != per->numel) {
        dino_errf(err, errlen, "%s: %d heads give head size %lld, but rope_embed.periods is for head size %zu",
                  s->path, heads, (long long)(D / heads), 4 * per->numel);
        return -1;
    }
    *heads_out = heads;
    return 0;
}

// DINOv3: no position grid (img_size: the size it was made for, 224, unless
// recorded) and the RoPE base (100 in every release, unless recorded).
static int dinov3_settings(ModelSource *s, ViTConfig *cfg, char *err, size_t errlen) {
    int img = 224;
    if (meta_int(s, "vit.img_size", &img) && (img < cfg->patch || img > (1 << 16))) img = 224;
    cfg->img_size = img;
    cfg->rope_base = 100.0f;  // every release (pos_embed_rope_base)
    const char *rb = meta_get(s, "vit.rope_base");
    if (rb) {
        char *end;
        double v = strtod(rb, &end);
        if (end == rb || *end || !(v > 1 && v < 1e9)) {
            dino_errf(err, errlen, "%s: vit.rope_base '%.40s' is not a base > 1", s->path, rb);
            return -1;
        }
        cfg->rope_base = (float)v;
    }
    cfg->pos_interp = VIT_POS_INTERP_DINO;  // unused: no pos_embed
    return 0;
}

int model_infer_vit(ModelSource *s, const ModelLoadOptions *opt, ViTConfig *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    if (refuse_unsupported(s, err, errlen)) return -1;
    ModelEntry *pw = find(s, "patch_embed.proj.weight");
    ModelEntry *cls = find(s, "cls_token");
    ModelEntry *pos = find(s, "pos_embed");
    if (s->dinov3 && pos) {
        dino_errf(err, errlen, "%s has DINOv3's storage tokens or RoPE periods and also a pos_embed: "
                  "not a supported ViT", s->path);
        return -1;
    }
    if (!pw || !cls || (!pos && !s->dinov3)) {
        dino_errf(err, errlen, "%s is not a supported ViT: no %s tensor%s", s->path,
                !pw ? "patch_embed.proj.weight" : !cls ? "cls_token" : "pos_embed",
                s->src.key ? "" : " (for a training checkpoint, choose --checkpoint_key)");
        return -1;
    }
    if (pw->ndim != 4 || pw->shape[2] != pw->shape[3] || pw->shape[0] <= 0 || pw->shape[1] <= 0 ||
        pw->shape[2] <= 0) {
        dino_errf(err, errlen, "%s: patch_embed.proj.weight is not a square convolution kernel", s->path);
        return -1;
    }
    int64_t D = pw->shape[0];
    if (D > (1 << 16) || pw->shape[1] > 64 || pw->shape[2] > 1024) {
        dino_errf(err, errlen, "%s: patch_embed.proj.weight has implausible dimensions", s->path);
        return -1;
    }
    if ((int64_t)cls->numel != D) {
        dino_errf(err, errlen, "%s: cls_token has %zu values, expected D=%lld", s->path, cls->numel,
                (long long)D);
        return -1;
    }
    int64_t T = pos ? (int64_t)(pos->numel / (size_t)D) : 0, g = 0, cls_row = s->pos_no_cls ? 0 : 1;
    if (pos && ((int64_t)pos->numel != T * D || T < 1 + cls_row || !isqrt_exact(T - cls_row, &g))) {
        dino_errf(err, errlen, "%s: pos_embed has %zu values, not (%sa square grid) x D=%lld", s->path,
                pos->numel, cls_row ? "1 + " : "", (long long)D);
        return -1;
    }
    int depth = 0;
    char name[160];
    for (;;) {
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", depth);
        if (!find(s, name)) break;
        depth++;
        if (depth > VIT_MAX_DEPTH) {
            dino_errf(err, errlen, "%s has more than %d blocks", s->path, VIT_MAX_DEPTH);
            return -1;
        }
    }
    if (depth == 0) {
        dino_errf(err, errlen, "%s is not a supported ViT: no blocks.0.* tensors", s->path);
        return -1;
    }
    ModelEntry *w12 = find(s, "blocks.0.mlp.w12.weight");
    ModelEntry *fc1 = w12 ? w12 : find(s, "blocks.0.mlp.fc1.weight");
    if (!fc1 || fc1->ndim != 2 || fc1->shape[1] != D || (w12 && fc1->shape[0] % 2)) {
        dino_errf(err, errlen, "%s: blocks.0.mlp.%s.weight is missing or not (%shidden, D)", s->path,
                  w12 ? "w12" : "fc1", w12 ? "2 x " : "");
        return -1;
    }
    // DINOv2: registers (1, R, D), LayerScale on every block, SwiGLU; DINOv3's storage tokens alike.
    const char *regname = s->dinov3 ? "storage_tokens" : "register_tokens";
    ModelEntry *reg = find(s, regname);
    if (reg && (reg->numel % (size_t)D || reg->numel == 0 || reg->numel / (size_t)D > 64)) {
        dino_errf(err, errlen, "%s: %s has %zu values, not (1..64) x D=%lld", s->path, regname,
                  reg->numel, (long long)D);
        return -1;
    }
    cfg->n_registers = reg ? (int)(reg->numel / (size_t)D) : 0;
    cfg->layerscale = find(s, "blocks.0.ls1.gamma") != NULL;
    cfg->swiglu = w12 != NULL;
    if (infer_pos_interp(s, cfg, err, errlen)) return -1;
    // DINOv3's ViT-7B has no qkv bias: read as zeros (model_io.c).
    if (!find(s, "blocks.0.attn.qkv.bias") && !s->dinov3) {
        dino_errf(err, errlen, "%s is not a supported ViT: its attention has no qkv bias", s->path);
        return -1;
    }
    int heads;
    if (infer_heads(s, opt, D, &heads, err, errlen)) return -1;
    cfg->dim = (int)D;
    cfg->in_chans = (int)pw->shape[1];
    cfg->patch = (int)pw->shape[2];
    cfg->img_size = (int)(g * pw->shape[2]);
    if (s->dinov3 && dinov3_settings(s, cfg, err, errlen)) return -1;
    cfg->depth = depth;
    cfg->heads = heads;
    cfg->mlp_hidden = (int)(w12 ? fc1->shape[0] / 2 : fc1->shape[0]);
    // transformers' ViTConfig says 1e-12, its Dinov2Config 1e-6 as the
    // reference; DINOv3 uses 1e-5 ("layernormbf16") in every release.
    cfg->ln_eps = s->dinov3 ? 1e-5f : s->hf && !s->hf_dinov2 ? 1e-12f : 1e-6f;
    const char *eps = meta_get(s, "vit.ln_eps");
    if (eps) {
        char *end;
        double v = strtod(eps, &end);
        if (end != eps && !*end && v > 0 && v < 1) cfg->ln_eps = (float)v;
    }
    cfg->drop_path_rate = 0;
    return 0;
}

// A torchvision ResNet state_dict (conv1, bn1, layer1..4 of Bottlenecks).
int model_is_resnet(ModelSource *s) { return find(s, "conv1.weight") && find(s, "layer1.0.conv1.weight"); }

static int entry_dims(const ModelEntry *e, int ndim, int64_t a, int64_t b) {
    return e && e->ndim == ndim && e->shape[0] == a && (b < 0 || e->shape[1] == b);
}

// Stage widths from the first block of each stage: conv1 (inner, in), conv3
// (planes·4, inner), as torchvision's Bottleneck (expansion 4); the stem from
// conv1's kernel (7: torchvision's 7x7/2 + max-pool; 3: the small 3x3/1
// stem) unless the file's metadata says.
int model_infer_resnet(ModelSource *s, ResNetConfig *cfg, char *err, size_t errlen) {
    resnet_config_preset(cfg, "resnet50");
    ModelEntry *c1 = find(s, "conv1.weight");
    if (c1->ndim != 4 || c1->shape[2] != c1->shape[3] || c1->shape[0] < 1 || c1->shape[0] > 4096 ||
        c1->shape[1] < 1 || c1->shape[1] > 64 || c1->shape[2] < 1 || c1->shape[2] > 15)
        return dino_errf(err, errlen, "%s: conv1.weight is not a plausible ResNet stem kernel", s->path);
    cfg->in_chans = (int)c1->shape[1];
    cfg->stem_width = (int)c1->shape[0];
    cfg->stem_kernel = (int)c1->shape[2];
    if (cfg->stem_kernel == 3) resnet_config_small_stem(cfg);
    else if (cfg->stem_kernel != 7 && !meta_get(s, "resnet.stem_stride"))
        return dino_errf(err, errlen, "%s: a %dx%d stem is neither torchvision's 7x7 nor the small 3x3",
                         s->path, cfg->stem_kernel, cfg->stem_kernel);
    int v;
    if (meta_int(s, "resnet.stem_stride", &v) && v >= 1 && v <= 8) cfg->stem_stride = v;
    if (meta_int(s, "resnet.stem_pool", &v)) cfg->stem_pool = v != 0;
    const char *eps = meta_get(s, "resnet.bn_eps");
    if (eps) {
        char *end;
        double x = strtod(eps, &end);
        if (end != eps && !*end && x > 0 && x < 1) cfg->bn_eps = (float)x;
    }
    if (!find(s, "layer1.0.conv3.weight"))
        return dino_errf(err, errlen, "%s is a ResNet of basic blocks (resnet18/34), not of bottlenecks "
                         "(resnet50): not supported", s->path);
    char name[64];
    int64_t in = cfg->stem_width, wpg = 0, total = 0;
    for (int st = 0; st < RESNET_STAGES; st++) {
        int n = 0;
        for (;; n++) {
            snprintf(name, sizeof name, "layer%d.%d.conv1.weight", st + 1, n);
            if (!find(s, name)) break;
            if (++total > RESNET_MAX_BLOCKS)
                return dino_errf(err, errlen, "%s has more than %d ResNet blocks", s->path, RESNET_MAX_BLOCKS);
        }
        snprintf(name, sizeof name, "layer%d.0.conv1.weight", st + 1);
        ModelEntry *a = find(s, name);
        snprintf(name, sizeof name, "layer%d.0.conv3.weight", st + 1);
        ModelEntry *c = find(s, name);
        if (!n || !entry_dims(a, 4, a ? a->shape[0] : 0, in) || !c || c->ndim != 4 ||
            c->shape[1] != a->shape[0] || c->shape[0] % 4 || c->shape[0] < 4 || a->shape[0] > (1 << 16))
            return dino_errf(err, errlen, "%s: layer%d.0 is missing or is not a bottleneck taking %lld "
                             "channels", s->path, st + 1, (long long)in);
        int64_t planes = c->shape[0] / 4, inner = a->shape[0];
        if ((inner * 64) % planes || (wpg && inner * 64 / planes != wpg))
            return dino_errf(err, errlen, "%s: layer%d's inner width %lld does not follow the other "
                             "stages' width per group", s->path, st + 1, (long long)inner);
        wpg = inner * 64 / planes;
        cfg->planes[st] = (int)planes;
        cfg->blocks[st] = n;
        in = c->shape[0];
    }
    cfg->width_per_group = (int)wpg;
    return 0;
}

// A flag recorded as any integer (a .pth's args.* are bools or integers).
static int meta_flag(ModelSource *s, const char *key, int *out) {
    const char *v = meta_get(s, key);
    if (!v) return 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end) return 0;
    *out = x != 0;
    return 1;
}

// 1: a DINO head was found and described; 0: none; -1: error.
int model_infer_head(ModelSource *s, int D, HeadConfig *h, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    ModelEntry *v = find(s, "head.last_layer.weight_v");
    ModelEntry *gq = find(s, "head.last_layer.weight_g");
    ModelEntry *single = find(s, "head.mlp.weight");
    ModelEntry *first = single ? single : find(s, "head.mlp.0.weight");
    if (!v && !first) return 0;
    if (!v || !gq || !first) {
        dino_errf(err, errlen, "%s has an incomplete DINO head (needs head.mlp.*, "
                "head.last_layer.weight_g and weight_v)", s->path);
        return -1;
    }
    // use_bn_in_head: a BatchNorm1d at index 1 of the Sequential (a GELU,
    // without tensors, otherwise), and the Linears at 0, 3, 6, ...
    h->use_bn = !single && (find(s, "head.mlp.1.weight") || find(s, "head.mlp.1.running_mean"));
    int stride = h->use_bn ? 3 : 2;
    if (first->ndim != 2 || first->shape[1] != D) {
        dino_errf(err, errlen, "%s: the head's first layer does not take D=%d inputs", s->path, D);
        return -1;
    }
    int nl = 1;
    ModelEntry *last = first;
    if (!single) {
        char name[64];
        for (nl = 1; nl < HEAD_MAX_LAYERS + 1; nl++) {
            snprintf(name, sizeof name, "head.mlp.%d.weight", stride * nl);
            ModelEntry *e = find(s, name);
            if (!e) break;
            last = e;
        }
        if (nl > HEAD_MAX_LAYERS) {
            dino_errf(err, errlen, "%s: the head has more than %d layers", s->path, HEAD_MAX_LAYERS);
            return -1;
        }
    }
    if (last->ndim != 2 || v->ndim != 2 || v->shape[1] != last->shape[0] || gq->numel != (size_t)v->shape[0]) {
        dino_errf(err, errlen, "%s: the head's last layer does not match its MLP", s->path);
        return -1;
    }
    h->in_dim = D;
    h->nlayers = nl;
    h->hidden = nl > 1 ? (int)first->shape[0] : (int)last->shape[0];
    h->bottleneck = (int)last->shape[0];
    h->out_dim = (int)v->shape[0];
    int nll;
    if (meta_int(s, "head.norm_last_layer", &nll) || meta_int(s, "arg.norm_last_layer", &nll) ||
        meta_flag(s, "args.norm_last_layer", &nll)) {
        h->norm_last_layer = nll != 0;
    } else {
        // Without a record, a weight_g of all ones means it was frozen at 1.
        float *g = mallocCheck(gq->numel * sizeof(float));
        int ones = model_entry_read(s, gq, g, err, errlen) == 0;
        for (size_t i = 0; ones && i < gq->numel; i++) ones = g[i] == 1.0f;
        gq->used = 0;
        free(g);
        h->norm_last_layer = ones;
    }
    return 1;
}

