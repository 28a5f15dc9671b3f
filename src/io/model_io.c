// Loading and saving DinoModels in every supported format (model_io.h).
// Each file becomes a list of named tensors readable as float32 (a Source);
// names are normalised to the reference's backbone names ("blocks.0.attn.qkv.weight")
// and DINO head names ("head.mlp.0.weight"): prefixes "module." and "backbone."
// are removed anywhere in a key (as load_pretrained_weights does), and Hugging
// Face names are mapped per docs/FORMATS.md §4 with query/key/value fused into qkv.
// The architecture is inferred from the shapes, the model is built, and every
// table entry is filled from exactly one tensor whose shape must agree.
#include "io/model_io.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/key_index.h"
#include "io/pickle.h"
#include "io/pth.h"
#include "io/safetensors.h"

// ---------------------------------------------------------------- sources

typedef enum { SRC_NATIVE, SRC_PTH, SRC_SAFE } SrcKind;

typedef struct Entry Entry;
struct Entry {
    char name[160];  // normalised
    char orig[160];  // as in the file (truncated for display if longer)
    const char *dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    const CkptTensor *ct;
    const PickleValue *pv;
    const SafeTensor *st;
    Entry *parts[3];  // a fused qkv: query, key, value (DINOv3: a missing key bias reads as 0);
                      // a fused SwiGLU w12: w1 (gate), w2 (up)
    int nparts;
    int is_part;      // consumed through a fused entry
    int mask_at;      // DINOv3: 1 + index of the bias_mask multiplied into this bias, or 0
    int used;
};

typedef struct {
    SrcKind kind;
    const char *path;
    Ckpt *ck;
    PthFile *pth;
    SafeFile *sf;
    Entry *e;
    int n, cap;
    int hf;               // Hugging Face names were mapped
    int hf_dinov2;        // ... of a Dinov2Model (LayerScale or registers seen)
    int hf_dinov3;        // ... of a DINOv3ViTModel
    int dinov3;           // a DINOv3 file (RoPE, storage tokens), official or Hugging Face
    int pos_no_cls;       // timm's DINOv2 with registers: pos_embed has no CLS row
    const char *key;      // the checkpoint key that was selected, or NULL
    const PickleValue *dict;  // pth: the selected dict
    KeyIndex names;       // entries by normalised name (not the fused parts), for find()
} Source;

static void source_close(Source *s) {
    ckpt_close(s->ck);
    pth_close(s->pth);
    safetensors_close(s->sf);
    free(s->e);
    key_index_free(&s->names);
    memset(s, 0, sizeof *s);
}

static const char *meta_get(const Source *s, const char *key) {
    if (s->kind == SRC_NATIVE) return ckpt_meta(s->ck, key);
    if (s->kind == SRC_SAFE) return safetensors_meta(s->sf, key);
    return NULL;
}

static Entry *add_entry(Source *s, const char *name) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->e = reallocCheck(s->e, (size_t)s->cap * sizeof *s->e);
    }
    Entry *e = &s->e[s->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->orig, sizeof e->orig, "%s", name);
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static int ends_with(const char *s, const char *suf);

// Removes every occurrence of `pat` from s, in place.
static void remove_all(char *s, const char *pat) {
    size_t pl = strlen(pat);
    char *q;
    while ((q = strstr(s, pat)) != NULL) memmove(q, q + pl, strlen(q + pl) + 1);
}

static Entry *find(Source *s, const char *name) {
    size_t i = key_index_get(&s->names, 0, name, strlen(name));
    return i == KEY_INDEX_NONE ? NULL : &s->e[i];
}

// Hugging Face ViT and Dinov2 names (hub layout and transformers 5 module
// layout) to the reference's. Returns 1 when mapped (name rewritten; *part =
// 0/1/2 for query/key/value, -1 otherwise), 0 for names with no backbone
// meaning (pooler, classifier, mask_token), -1 for names not recognised.
static int hf_map(char *name, size_t cap, int *part) {
    char tmp[160];
    const char *n = name;
    *part = -1;
    if (starts_with(n, "vit.")) n += 4;
    else if (starts_with(n, "dinov2.")) n += 7;  // Dinov2ForImageClassification's backbone
    else if (starts_with(n, "model.layer.")) n += 6;  // DINOv3ViTModel's modules (the hub has layer.N)
    static const char *const fixed[][2] = {
        {"embeddings.cls_token", "cls_token"},
        {"embeddings.register_tokens", "register_tokens"},
        {"embeddings.position_embeddings", "pos_embed"},
        {"embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"},
        {"embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"},
        {"layernorm.weight", "norm.weight"},
        {"layernorm.bias", "norm.bias"},
        // DINOv3ViTModel: a bare Conv2d and the official final-norm name.
        {"embeddings.patch_embeddings.weight", "patch_embed.proj.weight"},
        {"embeddings.patch_embeddings.bias", "patch_embed.proj.bias"},
        {"norm.weight", "norm.weight"},
        {"norm.bias", "norm.bias"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(n, fixed[i][0]) == 0) {
            snprintf(name, cap, "%s", fixed[i][1]);
            return 1;
        }
    if (starts_with(n, "pooler.") || starts_with(n, "classifier.") ||
        strcmp(n, "embeddings.mask_token") == 0 || starts_with(n, "rope_embeddings."))
        return 0;
    int layer, off = 0;
    if (sscanf(n, "encoder.layer.%d.%n", &layer, &off) == 1 && off > 0) {
    } else if (sscanf(n, "layers.%d.%n", &layer, &off) == 1 && off > 0) {
    } else if (sscanf(n, "layer.%d.%n", &layer, &off) == 1 && off > 0) {
    } else {
        return -1;
    }
    const char *rest = n + off;
    static const char *const blk[][2] = {
        {"attention.attention.query.", "attn.qkv.#0"}, {"attention.q_proj.", "attn.qkv.#0"},
        {"attention.attention.key.", "attn.qkv.#1"},   {"attention.k_proj.", "attn.qkv.#1"},
        {"attention.attention.value.", "attn.qkv.#2"}, {"attention.v_proj.", "attn.qkv.#2"},
        {"attention.output.dense.", "attn.proj."},     {"attention.o_proj.", "attn.proj."},
        {"intermediate.dense.", "mlp.fc1."},           {"mlp.fc1.", "mlp.fc1."},
        {"output.dense.", "mlp.fc2."},                 {"mlp.fc2.", "mlp.fc2."},
        {"layernorm_before.", "norm1."},               {"layernorm_after.", "norm2."},
        // Dinov2: its own norm names, LayerScale, the SwiGLU MLP of ViT-g.
        {"norm1.", "norm1."},                          {"norm2.", "norm2."},
        {"layer_scale1.", "ls1."},                     {"layer_scale2.", "ls2."},
        {"mlp.weights_in.", "mlp.w12."},               {"mlp.weights_out.", "mlp.w3."},
        // DINOv3: up/down, and SwiGLU's gate (w1); with a gate, up is w2 and
        // down w3 (map_hf_names renames them).
        {"mlp.up_proj.", "mlp.fc1."},                  {"mlp.down_proj.", "mlp.fc2."},
        {"mlp.gate_proj.", "mlp.w12.#0"},
    };
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++) {
        if (!starts_with(rest, blk[i][0])) continue;
        const char *leaf = rest + strlen(blk[i][0]);  // "weight" / "bias"
        if (!strcmp(leaf, "lambda1")) leaf = "gamma";  // LayerScale's gain
        else if (strcmp(leaf, "weight") && strcmp(leaf, "bias")) return -1;
        const char *to = blk[i][1];
        const char *hash = strchr(to, '#');
        if (hash) {
            *part = hash[1] - '0';
            snprintf(tmp, sizeof tmp, "blocks.%d.%.*s%s", layer, (int)(hash - to), to, leaf);
        } else {
            snprintf(tmp, sizeof tmp, "blocks.%d.%s%s", layer, to, leaf);
        }
        snprintf(name, cap, "%s", tmp);
        return 1;
    }
    return -1;
}

// DINOv3ViTModel's own names: its bare patch Conv2d, its layer.N / model.layer.N blocks.
static int is_hf_dinov3_name(const char *n) {
    return !strcmp(n, "embeddings.patch_embeddings.weight") || starts_with(n, "model.layer.") ||
           (starts_with(n, "layer.") && n[6] >= '0' && n[6] <= '9');
}

static int is_hf_name(const char *n) {
    if (starts_with(n, "vit.")) n += 4;
    else if (starts_with(n, "dinov2.")) n += 7;
    return starts_with(n, "embeddings.") || starts_with(n, "encoder.layer.") ||
           (starts_with(n, "layers.") && strstr(n, "attention.")) || is_hf_dinov3_name(n);
}

// Parts per fused tensor: SwiGLU's w12 has two (w1, w2), qkv three.
static int parts_of(const char *base) { return strstr(base, "mlp.w12.") ? 2 : 3; }

// Pairs every first part "X#0" (a query, SwiGLU's w1) with the others "X#1"
// and "X#2" (the last of each when a name repeats) and checks that they
// agree. A DINOv3 file may lack the key bias (Hugging Face's k_proj has
// none): that part stays -1 and reads as zeros. Writes one triple of entry
// indices per first part into trip; returns how many, or -1 with err filled.
static int match_qkv_parts(Source *s, int (*trip)[3], char *err, size_t errlen) {
    KeyIndex parts = {0};
    // Added from the end: the first add of a name wins, so this keeps the last.
    for (int j = s->n; j-- > 0;)
        if (s->e[j].is_part) key_index_add(&parts, 0, s->e[j].name, strlen(s->e[j].name), (size_t)j);
    int nt = 0;
    for (int i = 0; i < s->n && nt >= 0; i++) {
        Entry *q = &s->e[i];
        size_t l = strlen(q->name);
        if (!q->is_part || l < 2 || strcmp(q->name + l - 2, "#0")) continue;
        char base[160], nm[sizeof base + 16];
        snprintf(base, sizeof base, "%.*s", (int)(l - 2), q->name);
        int at[3] = {i, -1, -1}, np = parts_of(base);
        for (int k = 1; k < np; k++) {
            snprintf(nm, sizeof nm, "%s#%d", base, k);
            size_t j = key_index_get(&parts, 0, nm, strlen(nm));
            if (j != KEY_INDEX_NONE) at[k] = (int)j;
        }
        int no_key_bias = s->dinov3 && at[1] < 0 && at[2] >= 0 && np == 3 && strstr(base, ".bias");
        if ((at[1] < 0 && !no_key_bias) || (np == 3 && at[2] < 0)) {
            dino_errf(err, errlen, "%s: %s has a %s without its %s", s->path, base, np == 3 ? "query" : "gate",
                      np == 3 ? "key or value" : "up projection");
            nt = -1;
            break;
        }
        for (int k = 1; k < np && nt >= 0; k++) {
            if (at[k] < 0) continue;
            const Entry *p = &s->e[at[k]];
            if (p->ndim != q->ndim || p->numel != q->numel || memcmp(p->shape, q->shape, sizeof q->shape)) {
                dino_errf(err, errlen, "%s: query, key and value of %s differ in shape", s->path, base);
                nt = -1;
            }
        }
        if (nt >= 0 && q->ndim < 1) {
            dino_errf(err, errlen, "%s: %s has a 0-d query", s->path, base);
            nt = -1;
        }
        if (nt < 0) break;
        memcpy(trip[nt++], at, sizeof at);
    }
    key_index_free(&parts);
    return nt;
}

// Appends the fused entry of one query/key/value triple, rows [q; k; v]
// (or of SwiGLU's w1/w2 pair, rows [w1; w2]).
static void add_fused(Source *s, const int trip[3]) {
    const char *qname = s->e[trip[0]].name;
    char base[160];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(qname) - 2), qname);
    Entry *f = add_entry(s, base);  // may move s->e
    const Entry *Q = &s->e[trip[0]];
    int np = parts_of(base);
    snprintf(f->orig, sizeof f->orig, "%.140s %s", Q->orig, np == 3 ? "(+ key, value)" : "(+ w2)");
    f->dtype = Q->dtype;
    f->ndim = Q->ndim;
    memcpy(f->shape, Q->shape, sizeof f->shape);
    f->shape[0] *= np;
    f->numel = (size_t)np * Q->numel;
    f->nparts = np;
    for (int k = 0; k < np; k++)  // indices until the array stops moving; 0: a zero part
        f->parts[k] = (Entry *)(intptr_t)(trip[k] + 1);
}

static void rename_in_blocks(Source *s, const char *from, const char *to);

// Maps Hugging Face names (dropping those with no backbone meaning), marking
// query/key/value (and DINOv3's SwiGLU gate/up) as parts for fuse_parts.
static int map_hf_names(Source *s, char *err, size_t errlen) {
    s->hf = 1;
    int kept = 0;
    for (int i = 0; i < s->n; i++) {
        Entry *e = &s->e[i];
        int part;
        int r = hf_map(e->name, sizeof e->name, &part);
        if (r == 0) continue;  // no backbone meaning: dropped
        if (r < 0) {
            dino_errf(err, errlen, "%s: tensor '%s' is not part of a Hugging Face ViT "
                    "(not a supported model)", s->path, e->orig);
            return -1;
        }
        if (!s->hf_dinov3 && (strstr(e->name, ".ls1.") || !strcmp(e->name, "register_tokens"))) s->hf_dinov2 = 1;
        if (s->hf_dinov3 && !strcmp(e->name, "register_tokens")) snprintf(e->name, sizeof e->name, "storage_tokens");
        if (part >= 0) {
            size_t l = strlen(e->name);
            snprintf(e->name + l, sizeof e->name - l, "#%d", part);
            e->is_part = 1;
        }
        s->e[kept++] = *e;
    }
    s->n = kept;
    // DINOv3's SwiGLU: with a gate (w1), up_proj is w2 and down_proj w3.
    int gated = 0;
    for (int i = 0; s->hf_dinov3 && i < s->n; i++) gated |= strstr(s->e[i].name, ".mlp.w12.") != NULL;
    if (gated) {
        for (int i = 0; i < s->n; i++) {
            char *n = s->e[i].name, *at = strstr(n, ".mlp.fc1.");
            if (at) {
                char leaf[64];
                snprintf(leaf, sizeof leaf, "%s", at + 9);
                snprintf(at, sizeof s->e[i].name - (size_t)(at - n), ".mlp.w12.%s#1", leaf);
                s->e[i].is_part = 1;
            }
        }
        rename_in_blocks(s, "mlp.fc2.", "mlp.w3.");
    }
    return 0;
}

// Fuses the parts marked "#k" (query/key/value; SwiGLU's w1/w2) into one
// entry each.
static int fuse_parts(Source *s, char *err, size_t errlen) {
    int (*trip)[3] = mallocCheck((size_t)(s->n ? s->n : 1) * sizeof *trip);
    int nt = match_qkv_parts(s, trip, err, errlen);
    for (int t = 0; t < nt; t++) add_fused(s, trip[t]);
    free(trip);
    if (nt < 0) return -1;
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < 3; k++)
            if (s->e[i].parts[k]) s->e[i].parts[k] = &s->e[(intptr_t)s->e[i].parts[k] - 1];
    return 0;
}

// The official DINOv3 SwiGLU's separate w1 (gate) and w2 (up) as parts of w12.
static void map_dinov3_official(Source *s) {
    for (int i = 0; i < s->n; i++) {
        char *n = s->e[i].name;
        int blk, off = 0;
        if (sscanf(n, "blocks.%d.%n", &blk, &off) != 1 || off == 0) continue;
        int k = starts_with(n + off, "mlp.w1.") ? 0 : starts_with(n + off, "mlp.w2.") ? 1 : -1;
        if (k < 0) continue;
        char tmp[160];
        snprintf(tmp, sizeof tmp, "blocks.%d.mlp.w12.%s#%d", blk, n + off + 7, k);
        snprintf(n, sizeof s->e[i].name, "%s", tmp);
        s->e[i].is_part = 1;
    }
}

// mask_k_bias: each blocks.i.attn.qkv.bias_mask is multiplied into its bias
// when read (the official forward uses bias·bias_mask).
static int link_bias_masks(Source *s, char *err, size_t errlen) {
    for (int i = 0; i < s->n; i++) {
        const char *n = s->e[i].name;
        size_t l = strlen(n);
        if (l < 5 || strcmp(n + l - 5, "_mask") || !strstr(n, ".attn.qkv.bias_mask")) continue;
        char bias[160];
        snprintf(bias, sizeof bias, "%.*s", (int)(l - 5), n);
        Entry *b = find(s, bias);
        if (!b) continue;  // no bias, nothing to mask (left unused: refused as an unknown tensor)
        if (b->numel != s->e[i].numel) {
            dino_errf(err, errlen, "%s: %s has %zu values for a bias of %zu", s->path, s->e[i].orig,
                      s->e[i].numel, b->numel);
            return -1;
        }
        b->mask_at = i + 1;
        s->e[i].used = 1;
    }
    return 0;
}

// DINOv2's training code groups blocks in chunks (block_chunks > 0):
// "blocks.C.I.*", where chunk C holds blocks I (the global index, after
// Identity placeholders). Rewritten to "blocks.I.*".
static void unchunk(char *name) {
    char *b = strstr(name, "blocks.");
    if (!b || (b != name && b[-1] != '.')) return;
    int c, i, off = 0;
    if (sscanf(b, "blocks.%d.%d.%n", &c, &i, &off) != 2 || off == 0) return;
    char tmp[160];
    snprintf(tmp, sizeof tmp, "blocks.%d.%s", i, b + off);
    snprintf(b, 160 - (size_t)(b - name), "%s", tmp);
}

static Entry *find_linear(Source *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!s->e[i].is_part && !strcmp(s->e[i].name, name)) return &s->e[i];
    return NULL;
}

// Renames the prefix `from` to `to` in every name that has it after
// "blocks.N.".
static void rename_in_blocks(Source *s, const char *from, const char *to) {
    for (int i = 0; i < s->n; i++) {
        char *n = s->e[i].name;
        int blk, off = 0;
        if (sscanf(n, "blocks.%d.%n", &blk, &off) != 1 || off == 0 || !starts_with(n + off, from)) continue;
        char tmp[160];
        snprintf(tmp, sizeof tmp, "blocks.%d.%s%s", blk, to, n + off + strlen(from));
        snprintf(n, sizeof s->e[i].name, "%s", tmp);
    }
}

// timm's port of DINOv2 (its _convert_dinov2): registers as `reg_token`,
// with CLS's position embedding added into cls_token and pos_embed without
// its CLS row (no_embed_class); ViT-g's SwiGLU packed as mlp.fc1 (2h, D) and
// mlp.fc2 (D, h). Renamed to the official names; load_from_source puts a zero
// CLS row in front of such a pos_embed, which gives the same sums.
static void map_timm_dinov2(Source *s) {
    Entry *reg = find_linear(s, "reg_token");
    if (reg) {
        snprintf(reg->name, sizeof reg->name, "register_tokens");
        s->pos_no_cls = 1;
    }
    Entry *fc1 = find_linear(s, "blocks.0.mlp.fc1.weight"), *fc2 = find_linear(s, "blocks.0.mlp.fc2.weight");
    if (fc1 && fc2 && fc1->ndim == 2 && fc2->ndim == 2 && fc1->shape[0] == 2 * fc2->shape[1]) {
        rename_in_blocks(s, "mlp.fc1.", "mlp.w12.");
        rename_in_blocks(s, "mlp.fc2.", "mlp.w3.");
    }
}

// Normalises every entry's name, maps Hugging Face names, and indexes the
// names for find(). Two keys that become one name (e.g. "module.x" and "x")
// are ambiguous.
static int normalise(Source *s, char *err, size_t errlen) {
    int hf = 0;
    for (int i = 0; i < s->n; i++) {
        remove_all(s->e[i].name, "module.");
        remove_all(s->e[i].name, "backbone.");
        unchunk(s->e[i].name);
        if (is_hf_name(s->e[i].name)) hf = 1;
    }
    // DINOv3: storage tokens or RoPE periods (official and ours), its Hugging
    // Face names, or our metadata.
    for (int i = 0; i < s->n; i++) {
        const char *n = s->e[i].name;
        if (is_hf_dinov3_name(n)) s->hf_dinov3 = 1;
        if (!strcmp(n, "storage_tokens") || !strcmp(n, "rope_embed.periods")) s->dinov3 = 1;
    }
    if (s->hf_dinov3 || meta_get(s, "vit.rope_base")) s->dinov3 = 1;
    if (hf && map_hf_names(s, err, errlen)) return -1;
    if (!hf) map_timm_dinov2(s);
    if (!hf && s->dinov3) map_dinov3_official(s);
    if (fuse_parts(s, err, errlen)) return -1;
    for (int i = 0; i < s->n; i++) {
        const Entry *e = &s->e[i];
        if (e->is_part) continue;
        size_t j = key_index_add(&s->names, 0, e->name, strlen(e->name), (size_t)i);
        if (j != (size_t)i) {
            dino_errf(err, errlen, "%s: tensors '%s' and '%s' both become '%s'", s->path,
                    s->e[j].orig, e->orig, e->name);
            return -1;
        }
    }
    return s->dinov3 ? link_bias_masks(s, err, errlen) : 0;
}

// Collects the tensors of one dict. A tensor with more elements than its
// storage (a broadcast view with zero strides) is no model parameter and
// could make us allocate without bound: refused.
static int collect_pth_dict(Source *s, const PickleValue *d, char *err, size_t errlen) {
    int count = 0;
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        const PickleValue *k = d->items[i], *v = d->items[i + 1];
        if (k->type != PV_STR || v->type != PV_TENSOR) continue;
        if (pth_tensor_numel(v) > v->storage->numel) {
            dino_errf(err, errlen, "%s: tensor '%.100s' is a broadcast view larger than its storage, "
                    "not a model parameter", s->path, k->s);
            return -1;
        }
        if (pth_storage_check(s->pth, v->storage, err, errlen)) return -1;
        Entry *e = add_entry(s, k->s);
        e->pv = v;
        e->dtype = dtype_traits(v->storage->st)->name;
        e->ndim = v->ndim;
        for (int j = 0; j < v->ndim; j++) e->shape[j] = v->shape[j];
        e->numel = pth_tensor_numel(v);
        count++;
    }
    return count;
}

static int count_tensors(const PickleValue *d) {
    int c = 0;
    if (!d || d->type != PV_DICT) return 0;
    for (size_t i = 0; i + 1 < d->n; i += 2)
        if (d->items[i + 1]->type == PV_TENSOR) c++;
    return c;
}

// A native training checkpoint: ours ("dino.kind" = "train") or the
// trainer's ("format" = "dino.c training checkpoint").
static int native_is_training(const Ckpt *c) {
    const char *k = ckpt_meta(c, "dino.kind"), *f = ckpt_meta(c, "format");
    return (k && !strcmp(k, "train")) || (f && strstr(f, "training checkpoint"));
}

// Opens `path` in whichever format it is and selects the tensors of one model.
static int source_open(Source *s, const char *path, const char *key, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->path = path;
    const char *want = key ? key : "teacher";
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        dino_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    fclose(fp);
    if (ckpt_is_native(path)) {
        s->kind = SRC_NATIVE;
        s->ck = ckpt_open(path, err, errlen);
        if (!s->ck) return -1;
        char prefix[80];
        snprintf(prefix, sizeof prefix, "%s.", want);
        int n = ckpt_n_tensors(s->ck), with_prefix = 0;
        for (int i = 0; i < n; i++)
            if (starts_with(ckpt_tensor_at(s->ck, i)->name, prefix)) with_prefix++;
        if (key && !with_prefix && native_is_training(s->ck)) {
            dino_errf(err, errlen, "%s is a training checkpoint without a '%s' model", path, key);
            source_close(s);
            return -1;
        }
        if (with_prefix) s->key = want;
        for (int i = 0; i < n; i++) {
            const CkptTensor *t = ckpt_tensor_at(s->ck, i);
            if (with_prefix && !starts_with(t->name, prefix)) continue;
            Entry *e = add_entry(s, t->name + (with_prefix ? strlen(prefix) : 0));
            snprintf(e->orig, sizeof e->orig, "%s", t->name);
            e->ct = t;
            e->dtype = dtype_traits(t->dtype)->name;
            e->ndim = t->ndim;
            memcpy(e->shape, t->shape, sizeof e->shape);
            e->numel = t->numel;
        }
    } else if (pth_sniff(path)) {
        s->kind = SRC_PTH;
        s->pth = pth_open(path, err, errlen);
        if (!s->pth) return -1;
        const PickleValue *root = pth_root(s->pth);
        if (root->type != PV_DICT) {
            dino_errf(err, errlen, "%s holds a pickled %s, not a dict of tensors (a whole pickled "
                    "model is not read: save its state_dict())", path,
                    root->type == PV_TENSOR ? "tensor" : "object");
            source_close(s);
            return -1;
        }
        const PickleValue *sub = pickle_dict_get(root, want);
        const PickleValue *d = NULL;
        if (sub && sub->type == PV_DICT) {
            d = sub;
            s->key = want;
        } else if (count_tensors(root) > 0) {
            d = root;
        } else {
            static const char *const wrappers[] = {"model", "state_dict", "teacher", "student"};
            for (size_t i = 0; i < 4 && !d; i++) {
                const PickleValue *w = pickle_dict_get(root, wrappers[i]);
                if (w && w->type == PV_DICT && count_tensors(w) > 0) {
                    d = w;
                    s->key = wrappers[i];
                }
            }
        }
        if (!d) {
            dino_errf(err, errlen, "%s has no tensors at its top level nor under '%s'", path, want);
            source_close(s);
            return -1;
        }
        s->dict = d;
        if (collect_pth_dict(s, d, err, errlen) < 0) {
            source_close(s);
            return -1;
        }
    } else if (safetensors_sniff(path)) {
        s->kind = SRC_SAFE;
        s->sf = safetensors_open(path, err, errlen);
        if (!s->sf) return -1;
        for (int i = 0; i < s->sf->n; i++) {
            const SafeTensor *t = &s->sf->t[i];
            Entry *e = add_entry(s, t->name);
            e->st = t;
            e->dtype = dtype_traits(t->dtype)->safetensors;
            e->ndim = t->ndim;
            for (int j = 0; j < t->ndim; j++) e->shape[j] = t->shape[j];
            e->numel = t->numel;
        }
    } else {
        dino_errf(err, errlen, "%s is not a dino.c native file, a PyTorch .pth or a safetensors file",
                path);
        return -1;
    }
    if (normalise(s, err, errlen)) {
        source_close(s);
        return -1;
    }
    return 0;
}

static int entry_read(Source *s, Entry *e, float *out, char *err, size_t errlen) {
    e->used = 1;
    if (e->parts[0]) {
        size_t per = e->numel / (size_t)e->nparts;
        for (int k = 0; k < e->nparts; k++) {
            if (!e->parts[k]) memset(out + (size_t)k * per, 0, per * sizeof(float));  // DINOv3's absent key bias
            else if (entry_read(s, e->parts[k], out + (size_t)k * per, err, errlen)) return -1;
        }
        return 0;
    }
    if (e->mask_at) {
        Entry *m = &s->e[e->mask_at - 1];
        int at = e->mask_at;
        e->mask_at = 0;
        float *mask = mallocCheck(e->numel * sizeof(float));
        int rc = entry_read(s, e, out, err, errlen) || entry_read(s, m, mask, err, errlen);
        for (size_t i = 0; !rc && i < e->numel; i++) out[i] *= mask[i];
        free(mask);
        e->mask_at = at;
        return rc ? -1 : 0;
    }
    if (e->ct) {
        dtype_read_f32(e->ct->dtype, e->ct->data, out, e->numel);
        return 0;
    }
    if (e->pv) {
        int rc = pth_tensor_read_f32(s->pth, e->pv, out, err, errlen);
        pth_release_storages(s->pth);
        return rc;
    }
    if (e->st) return safetensors_read_f32(s->sf, e->st, out, err, errlen);
    DINO_ASSERT(0);
    return -1;
}

// ---------------------------------------------------------------- inference

static int meta_int(const Source *s, const char *key, int *out) {
    const char *v = meta_get(s, key);
    if (!v) return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 0 || x > (1 << 30)) return 0;
    *out = (int)x;
    return 1;
}

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
static int refuse_unsupported(Source *s, char *err, size_t errlen) {
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
static int infer_pos_interp(Source *s, ViTConfig *cfg, char *err, size_t errlen) {
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
static int infer_heads(Source *s, const ModelLoadOptions *opt, int64_t D, int *heads_out, char *err,
                       size_t errlen) {
    int heads = opt && opt->heads > 0 ? opt->heads : 0;
    if (!heads && !meta_int(s, "vit.heads", &heads)) meta_int(s, "arg.num_heads", &heads);
    Entry *per = s->dinov3 ? find(s, "rope_embed.periods") : NULL;
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
static int dinov3_settings(Source *s, ViTConfig *cfg, char *err, size_t errlen) {
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

static int infer_vit(Source *s, const ModelLoadOptions *opt, ViTConfig *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    if (refuse_unsupported(s, err, errlen)) return -1;
    Entry *pw = find(s, "patch_embed.proj.weight");
    Entry *cls = find(s, "cls_token");
    Entry *pos = find(s, "pos_embed");
    if (s->dinov3 && pos) {
        dino_errf(err, errlen, "%s has DINOv3's storage tokens or RoPE periods and also a pos_embed: "
                  "not a supported ViT", s->path);
        return -1;
    }
    if (!pw || !cls || (!pos && !s->dinov3)) {
        dino_errf(err, errlen, "%s is not a supported ViT: no %s tensor%s", s->path,
                !pw ? "patch_embed.proj.weight" : !cls ? "cls_token" : "pos_embed",
                s->key ? "" : " (for a training checkpoint, choose --checkpoint_key)");
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
    Entry *w12 = find(s, "blocks.0.mlp.w12.weight");
    Entry *fc1 = w12 ? w12 : find(s, "blocks.0.mlp.fc1.weight");
    if (!fc1 || fc1->ndim != 2 || fc1->shape[1] != D || (w12 && fc1->shape[0] % 2)) {
        dino_errf(err, errlen, "%s: blocks.0.mlp.%s.weight is missing or not (%shidden, D)", s->path,
                  w12 ? "w12" : "fc1", w12 ? "2 x " : "");
        return -1;
    }
    // DINOv2: registers (1, R, D), LayerScale on every block, SwiGLU; DINOv3's storage tokens alike.
    const char *regname = s->dinov3 ? "storage_tokens" : "register_tokens";
    Entry *reg = find(s, regname);
    if (reg && (reg->numel % (size_t)D || reg->numel == 0 || reg->numel / (size_t)D > 64)) {
        dino_errf(err, errlen, "%s: %s has %zu values, not (1..64) x D=%lld", s->path, regname,
                  reg->numel, (long long)D);
        return -1;
    }
    cfg->n_registers = reg ? (int)(reg->numel / (size_t)D) : 0;
    cfg->layerscale = find(s, "blocks.0.ls1.gamma") != NULL;
    cfg->swiglu = w12 != NULL;
    if (infer_pos_interp(s, cfg, err, errlen)) return -1;
    // DINOv3's ViT-7B has no qkv bias: read as zeros (load_from_source).
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
static int is_resnet(Source *s) { return find(s, "conv1.weight") && find(s, "layer1.0.conv1.weight"); }

static int entry_dims(const Entry *e, int ndim, int64_t a, int64_t b) {
    return e && e->ndim == ndim && e->shape[0] == a && (b < 0 || e->shape[1] == b);
}

// Stage widths from the first block of each stage: conv1 (inner, in), conv3
// (planes·4, inner), as torchvision's Bottleneck (expansion 4); the stem from
// conv1's kernel (7: torchvision's 7x7/2 + max-pool; 3: the small 3x3/1
// stem) unless the file's metadata says.
static int infer_resnet(Source *s, ResNetConfig *cfg, char *err, size_t errlen) {
    resnet_config_preset(cfg, "resnet50");
    Entry *c1 = find(s, "conv1.weight");
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
        Entry *a = find(s, name);
        snprintf(name, sizeof name, "layer%d.0.conv3.weight", st + 1);
        Entry *c = find(s, name);
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

static int pth_args_bool(const Source *s, const char *name, int *out) {
    if (s->kind != SRC_PTH) return 0;
    const PickleValue *args = pickle_dict_get(pth_root(s->pth), "args");
    const PickleValue *v = pickle_attr(args, name);
    if (!v || (v->type != PV_BOOL && v->type != PV_INT)) return 0;
    *out = v->i != 0;
    return 1;
}

// 1: a DINO head was found and described; 0: none; -1: error.
static int infer_head(Source *s, int D, HeadConfig *h, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    Entry *v = find(s, "head.last_layer.weight_v");
    Entry *gq = find(s, "head.last_layer.weight_g");
    Entry *single = find(s, "head.mlp.weight");
    Entry *first = single ? single : find(s, "head.mlp.0.weight");
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
    Entry *last = first;
    if (!single) {
        char name[64];
        for (nl = 1; nl < HEAD_MAX_LAYERS + 1; nl++) {
            snprintf(name, sizeof name, "head.mlp.%d.weight", stride * nl);
            Entry *e = find(s, name);
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
        pth_args_bool(s, "norm_last_layer", &nll)) {
        h->norm_last_layer = nll != 0;
    } else {
        // Without a record, a weight_g of all ones means it was frozen at 1.
        float *g = mallocCheck(gq->numel * sizeof(float));
        int ones = entry_read(s, gq, g, err, errlen) == 0;
        for (size_t i = 0; ones && i < gq->numel; i++) ones = g[i] == 1.0f;
        gq->used = 0;
        free(g);
        h->norm_last_layer = ones;
    }
    return 1;
}

static void squeeze(const int64_t *shape, int ndim, int64_t *out, int *nout) {
    *nout = 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] != 1) out[(*nout)++] = shape[i];
}

static int same_shape(const ParamInfo *p, const Entry *e) {
    int64_t a[8], b[8];
    int na, nb;
    squeeze(p->shape, p->ndim, a, &na);
    squeeze(e->shape, e->ndim, b, &nb);
    return p->numel == e->numel && na == nb && memcmp(a, b, (size_t)na * sizeof a[0]) == 0;
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

// DINOv3 tensors a file may lack: the RoPE periods (a non-persistent buffer
// in transformers: made from the base) and the qkv bias of ViT-7B (zeros).
static int dinov3_default(const ViTConfig *vit, const char *name) {
    if (vit->rope_base <= 0) return 0;
    size_t l = strlen(name);
    return !strcmp(name, "rope_embed.periods") ||
           (starts_with(name, "blocks.") && l > 14 && !strcmp(name + l - 14, ".attn.qkv.bias"));
}

// Infers, builds and fills. On failure m is zeroed and *params NULL.
static int load_from_source(Source *s, const ModelLoadOptions *opt, DinoModel *m, float **params,
                            char *err, size_t errlen) {
    ModelHeadMode mode = opt ? opt->head : MODEL_HEAD_AUTO;
    ViTConfig vit;
    ResNetConfig rn;
    HeadConfig head;
    int resnet = is_resnet(s);
    memset(&vit, 0, sizeof vit);
    if (resnet ? infer_resnet(s, &rn, err, errlen) : infer_vit(s, opt, &vit, err, errlen)) return -1;
    int has_head = 0;
    if (mode != MODEL_HEAD_NONE) {
        int r = infer_head(s, resnet ? resnet_out_dim(&rn) : vit.dim, &head, err, errlen);
        if (r < 0) return -1;
        has_head = r;
        if (!has_head && mode == MODEL_HEAD_REQUIRE) {
            dino_errf(err, errlen, "%s has no DINO projection head%s", s->path,
                    find(s, "head.weight") ? " (its head.weight is a classifier)" : "");
            return -1;
        }
    }
    if (resnet) model_build_resnet(m, &rn, has_head ? &head : NULL, has_head);
    else model_build(m, &vit, has_head ? &head : NULL, has_head);
    float *p = NULL;
    // Every tensor is found and its shape checked before memory is allocated,
    // so the allocation is bounded by what the file really holds.
    Entry **src = mallocCheck((size_t)m->table.n * sizeof *src);
    for (int i = 0; i < m->table.n; i++) {
        const ParamInfo *pi = &m->table.p[i];
        const char *nm = pi->name;
        if (starts_with(nm, "backbone.")) nm += 9;
        Entry *e = find(s, nm);
        if (!e && dinov3_default(&vit, nm)) {  // filled below
            src[i] = NULL;
            continue;
        }
        if (!e) {
            dino_errf(err, errlen, "%s is missing tensor '%s' for the inferred architecture", s->path, nm);
            goto fail;
        }
        if (s->pos_no_cls && !strcmp(nm, "pos_embed")) {  // checked by infer_vit, read after a zero row
            src[i] = e;
            continue;
        }
        if (!same_shape(pi, e)) {
            char a[96], b[96];
            shape_str(pi->shape, pi->ndim, a, sizeof a);
            shape_str(e->shape, e->ndim, b, sizeof b);
            dino_errf(err, errlen, "%s: tensor '%s' has shape %s, expected %s", s->path, e->orig, b, a);
            goto fail;
        }
        src[i] = e;
    }
    p = alignedAllocCheck(m->table.total * sizeof(float) + 64);
    for (int i = 0; i < m->table.n; i++) {
        float *dst = p + m->table.p[i].offset;
        if (s->pos_no_cls && !strcmp(m->table.p[i].name + (starts_with(m->table.p[i].name, "backbone.") ? 9 : 0),
                                     "pos_embed")) {
            memset(dst, 0, (size_t)vit.dim * sizeof(float));
            dst += vit.dim;
        }
        const char *tn = m->table.p[i].name + (starts_with(m->table.p[i].name, "backbone.") ? 9 : 0);
        if (!src[i] && !strcmp(tn, "rope_embed.periods"))
            vit_rope_default_periods(&vit, dst);
        else if (!src[i])
            memset(dst, 0, m->table.p[i].numel * sizeof(float));  // DINOv3 without qkv bias
        else if (entry_read(s, src[i], dst, err, errlen))
            goto fail;
        if (!strcmp(tn, "rope_embed.periods"))
            for (size_t j = 0; j < m->table.p[i].numel; j++)
                if (!(dst[j] > 0 && dst[j] < 1e30f)) {  // NaN included
                    dino_errf(err, errlen, "%s: rope_embed.periods holds %g, not a positive period", s->path,
                              (double)dst[j]);
                    goto fail;
                }
    }
    // A tensor of the backbone that was not used means a model we do not
    // understand (e.g. more blocks than the numbering suggests).
    for (int i = 0; i < s->n; i++) {
        const Entry *e = &s->e[i];
        if (e->used || e->is_part) continue;
        // (A ResNet's BatchNorm counters are not needed: momentum 0.1 is fixed.)
        if (resnet && !ends_with(e->name, "num_batches_tracked") &&
            (starts_with(e->name, "layer") || starts_with(e->name, "conv1.") || starts_with(e->name, "bn1."))) {
            dino_errf(err, errlen, "%s: tensor '%s' does not belong to the inferred architecture "
                    "(not a supported ResNet)", s->path, e->orig);
            goto fail;
        }
        if (starts_with(e->name, "blocks.") || starts_with(e->name, "patch_embed.") ||
            starts_with(e->name, "norm.")) {
            dino_errf(err, errlen, "%s: tensor '%s' does not belong to the inferred architecture "
                    "(not a supported ViT)", s->path, e->orig);
            goto fail;
        }
        if (has_head && starts_with(e->name, "head.mlp.") && !ends_with(e->name, "num_batches_tracked")) {
            dino_errf(err, errlen, "%s: head tensor '%s' does not belong to the inferred head", s->path,
                    e->orig);
            goto fail;
        }
    }
    free(src);
    *params = p;
    return 0;
fail:
    free(src);
    free(p);
    model_free(m);
    memset(m, 0, sizeof *m);
    *params = NULL;
    return -1;
}

int model_load(const char *path, const ModelLoadOptions *opt, DinoModel *m, float **params,
               char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    *params = NULL;
    Source s;
    if (source_open(&s, path, opt ? opt->checkpoint_key : NULL, err, errlen)) return -1;
    int rc = load_from_source(&s, opt, m, params, err, errlen);
    source_close(&s);
    return rc;
}

// ---------------------------------------------------------------- saving

typedef struct {
    char k[48];
    char v[48];
} KV;

// At most: 10 ViT settings and 6 of the head.
#define CONFIG_KV_MAX 16

static int config_kv(const DinoModel *m, KV *kv) {
    int n = 0;
#define PUT(key, ...) (snprintf(kv[n].k, sizeof kv[n].k, "%s", key), \
                       snprintf(kv[n].v, sizeof kv[n].v, __VA_ARGS__), n++)
    if (m->backbone == MODEL_BACKBONE_RESNET) {
        // The stem's stride and pooling are not in the tensor shapes.
        PUT("backbone", "resnet");
        PUT("resnet.stem_stride", "%d", m->resnet.stem_stride);
        PUT("resnet.stem_pool", "%d", m->resnet.stem_pool);
        PUT("resnet.bn_eps", "%g", (double)m->resnet.bn_eps);
        goto head;
    }
    PUT("vit.img_size", "%d", m->vit.img_size);
    PUT("vit.patch", "%d", m->vit.patch);
    PUT("vit.in_chans", "%d", m->vit.in_chans);
    PUT("vit.dim", "%d", m->vit.dim);
    PUT("vit.depth", "%d", m->vit.depth);
    PUT("vit.heads", "%d", m->vit.heads);
    PUT("vit.mlp_hidden", "%d", m->vit.mlp_hidden);
    if (m->vit.rope_base > 0) PUT("vit.rope_base", "%.9g", (double)m->vit.rope_base);
    if (m->vit.pos_interp != VIT_POS_INTERP_DINO)
        PUT("vit.pos_interp", "%s", m->vit.pos_interp == VIT_POS_INTERP_SIZE ? "size" : "size_aa");
    {
        // The shortest text that reads back as the same float ("1e-06").
        char e[32];
        for (int prec = 1; prec <= 9; prec++) {
            snprintf(e, sizeof e, "%.*g", prec, (double)m->vit.ln_eps);
            if ((float)strtod(e, NULL) == m->vit.ln_eps) break;
        }
        PUT("vit.ln_eps", "%s", e);
    }
head:
    if (m->has_head) {
        PUT("head.out_dim", "%d", m->head.out_dim);
        PUT("head.nlayers", "%d", m->head.nlayers);
        PUT("head.hidden", "%d", m->head.hidden);
        PUT("head.bottleneck", "%d", m->head.bottleneck);
        PUT("head.norm_last_layer", "%d", m->head.norm_last_layer);
        if (m->head.use_bn) PUT("head.use_bn", "1");
    }
#undef PUT
    return n;
}

void model_meta_write(CkptWriter *w, const DinoModel *m) {
    KV kv[CONFIG_KV_MAX];
    int n = config_kv(m, kv);
    for (int i = 0; i < n; i++) ckpt_add_meta(w, kv[i].k, kv[i].v);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int model_save(const char *path, const DinoModel *m, const float *params, char *err, size_t errlen) {
    if (ends_with(path, ".safetensors")) {
        KV kv[CONFIG_KV_MAX];
        int nkv = config_kv(m, kv);
        const char *meta[2 * (CONFIG_KV_MAX + 1)];
        meta[0] = "format";
        meta[1] = "pt";
        for (int i = 0; i < nkv; i++) {
            meta[2 + 2 * i] = kv[i].k;
            meta[3 + 2 * i] = kv[i].v;
        }
        SafeWriteTensor *t = mallocCheck((size_t)m->table.n * sizeof *t);
        for (int i = 0; i < m->table.n; i++) {
            const ParamInfo *pi = &m->table.p[i];
            t[i].name = starts_with(pi->name, "backbone.") ? pi->name + 9 : pi->name;
            t[i].ndim = pi->ndim;
            t[i].shape = pi->shape;
            t[i].data = params + pi->offset;
        }
        int rc = safetensors_write_f32(path, t, m->table.n, meta, nkv + 1, err, errlen);
        free(t);
        return rc;
    }
    CkptWriter *w = ckpt_writer_open(path, err, errlen);
    if (!w) return -1;
    ckpt_add_meta(w, "dino.kind", "model");
    model_meta_write(w, m);
    for (int i = 0; i < m->table.n; i++) {
        const ParamInfo *pi = &m->table.p[i];
        ckpt_add_tensor(w, pi->name, DT_F32, pi->ndim, pi->shape, params + pi->offset);
    }
    return ckpt_writer_commit(w, err, errlen);
}

// ---------------------------------------------------------------- describe

static void print_pth_overview(FILE *out, const PickleValue *root) {
    char buf[512];
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const PickleValue *k = root->items[i], *v = root->items[i + 1];
        if (k->type != PV_STR) continue;
        if (v->type == PV_TENSOR) continue;
        if (v->type == PV_DICT && count_tensors(v) > 0) {
            fprintf(out, "  %s: dict of %d tensors\n", k->s, count_tensors(v));
            continue;
        }
        pickle_repr(v, buf, sizeof buf);
        if (strlen(buf) >= sizeof buf - 1) strcpy(buf + sizeof buf - 5, "...");
        fprintf(out, "  %s: %s\n", k->s, buf);
    }
}

int model_describe(const char *path, const ModelLoadOptions *opt, FILE *out, int all_tensors,
                   char *err, size_t errlen) {
    Source s;
    if (source_open(&s, path, opt ? opt->checkpoint_key : NULL, err, errlen)) return -1;
    fprintf(out, "file: %s\n", path);
    switch (s.kind) {
        case SRC_NATIVE: {
            fprintf(out, "format: dino.c native (%s), %d tensors\n",
                    native_is_training(s.ck) ? "training checkpoint" : "model", ckpt_n_tensors(s.ck));
            break;
        }
        case SRC_PTH: fprintf(out, "format: PyTorch torch.save zip (.pth)\n"); break;
        case SRC_SAFE:
            fprintf(out, "format: safetensors (%s names), %d tensors\n",
                    s.hf_dinov3 ? "Hugging Face DINOv3" : s.hf_dinov2 ? "Hugging Face Dinov2"
                    : s.hf ? "Hugging Face ViT" : s.dinov3 ? "official DINOv3" : "timm/DINO", s.sf->n);
            break;
    }
    if (s.kind == SRC_NATIVE || s.kind == SRC_SAFE) {
        int nm = s.kind == SRC_NATIVE ? 0 : s.sf->n_meta;
        if (s.kind == SRC_NATIVE) {
            // Every entry except the trainer's per-flag "arg.*" copies (its
            // "args" entry holds them all).
            int any = 0;
            for (int i = 0; i < ckpt_n_meta(s.ck); i++) {
                const char *k, *v;
                ckpt_meta_at(s.ck, i, &k, &v);
                if (starts_with(k, "arg.")) continue;
                if (!any++) fprintf(out, "metadata:\n");
                fprintf(out, "  %s: %.300s%s\n", k, v, strlen(v) > 300 ? "..." : "");
            }
        }
        for (int i = 0; i < nm; i++) {
            if (!i) fprintf(out, "metadata:\n");
            fprintf(out, "  %s: %.200s\n", s.sf->meta_key[i], s.sf->meta_value[i]);
        }
    } else {
        fprintf(out, "contents:\n");
        print_pth_overview(out, pth_root(s.pth));
    }
    if (s.key) fprintf(out, "model: '%s'\n", s.key);
    DinoModel m;
    float *params = NULL;
    char lerr[512];
    if (load_from_source(&s, opt, &m, &params, lerr, sizeof lerr) == 0) {
        char desc[256];
        model_describe_backbone(&m, desc, sizeof desc);
        fprintf(out, "architecture: %s\n", desc);
        if (m.has_head)
            fprintf(out, "head: in=%d hidden=%d bottleneck=%d out=%d nlayers=%d norm_last_layer=%d%s\n",
                    m.head.in_dim, m.head.hidden, m.head.bottleneck, m.head.out_dim, m.head.nlayers,
                    m.head.norm_last_layer, m.head.use_bn ? " use_bn=1" : "");
        else
            fprintf(out, "head: none\n");
        size_t bb = 0;
        for (int i = 0; i < m.table.n; i++)
            if (starts_with(m.table.p[i].name, "backbone.")) bb += m.table.p[i].numel;
        fprintf(out, "parameters: %zu (backbone %zu, head %zu)\n", m.table.total, bb, m.table.total - bb);
        free(params);
        model_free(&m);
    } else {
        fprintf(out, "architecture: not loadable: %s\n", lerr);
    }
    int shown = 0, limit = all_tensors ? s.n : 40, count = 0;
    for (int i = 0; i < s.n; i++) count += !s.e[i].is_part;
    fprintf(out, "tensors (%d%s):\n", count, s.key ? " in the selected model" : "");
    for (int i = 0; i < s.n; i++) {
        const Entry *e = &s.e[i];
        if (e->is_part) continue;
        if (shown++ >= limit) {
            fprintf(out, "  ... (--all to list every tensor)\n");
            break;
        }
        char sh[96];
        shape_str(e->shape, e->ndim, sh, sizeof sh);
        fprintf(out, "  %-48s %-9s %s\n", e->orig, e->dtype ? e->dtype : "?", sh);
    }
    source_close(&s);
    return 0;
}
