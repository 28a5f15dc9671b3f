// Opening a model file as named entries (model_source.h).
#include "io/model_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "io/hf_names.h"

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

// Removes every occurrence of `pat` from s, in place.
static void remove_all(char *s, const char *pat) {
    size_t pl = strlen(pat);
    char *q;
    while ((q = strstr(s, pat)) != NULL) memmove(q, q + pl, strlen(q + pl) + 1);
}

void model_source_close(ModelSource *s) {
    tensor_source_close(&s->src);
    free(s->e);
    key_index_free(&s->names);
    memset(s, 0, sizeof *s);
}

const char *model_source_meta(ModelSource *s, const char *key) { return tensor_source_meta(&s->src, key); }

static ModelEntry *add_entry(ModelSource *s, const char *name) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->e = reallocCheck(s->e, (size_t)s->cap * sizeof *s->e);
    }
    ModelEntry *e = &s->e[s->n++];
    memset(e, 0, sizeof *e);
    e->at = -1;
    snprintf(e->orig, sizeof e->orig, "%s", name);
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

ModelEntry *model_source_find(ModelSource *s, const char *name) {
    size_t i = key_index_get(&s->names, 0, name, strlen(name));
    return i == KEY_INDEX_NONE ? NULL : &s->e[i];
}

// Parts per fused tensor: SwiGLU's w12 has two (w1, w2), qkv three.
static int parts_of(const char *base) { return strstr(base, "mlp.w12.") ? 2 : 3; }

// Pairs every first part "X#0" (a query, SwiGLU's w1) with the others "X#1"
// and "X#2" (the last of each when a name repeats) and checks that they
// agree. A DINOv3 file may lack the key bias (Hugging Face's k_proj has
// none): that part stays -1 and reads as zeros. Writes one triple of entry
// indices per first part into trip; returns how many, or -1 with err filled.
static int match_qkv_parts(ModelSource *s, int (*trip)[3], char *err, size_t errlen) {
    KeyIndex parts = {0};
    // Added from the end: the first add of a name wins, so this keeps the last.
    for (int j = s->n; j-- > 0;)
        if (s->e[j].is_part) key_index_add(&parts, 0, s->e[j].name, strlen(s->e[j].name), (size_t)j);
    int nt = 0;
    for (int i = 0; i < s->n && nt >= 0; i++) {
        ModelEntry *q = &s->e[i];
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
            const ModelEntry *p = &s->e[at[k]];
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
static void add_fused(ModelSource *s, const int trip[3]) {
    const char *qname = s->e[trip[0]].name;
    char base[160];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(qname) - 2), qname);
    ModelEntry *f = add_entry(s, base);  // may move s->e
    const ModelEntry *Q = &s->e[trip[0]];
    int np = parts_of(base);
    snprintf(f->orig, sizeof f->orig, "%.140s %s", Q->orig, np == 3 ? "(+ key, value)" : "(+ w2)");
    f->dtype = Q->dtype;
    f->ndim = Q->ndim;
    memcpy(f->shape, Q->shape, sizeof f->shape);
    f->shape[0] *= np;
    f->numel = (size_t)np * Q->numel;
    f->nparts = np;
    for (int k = 0; k < np; k++)  // indices until the array stops moving; 0: a zero part
        f->parts[k] = (ModelEntry *)(intptr_t)(trip[k] + 1);
}

static void rename_in_blocks(ModelSource *s, const char *from, const char *to);

// Maps Hugging Face names (dropping those with no backbone meaning), marking
// query/key/value (and DINOv3's SwiGLU gate/up) as parts for fuse_parts.
static int map_hf_names(ModelSource *s, char *err, size_t errlen) {
    s->hf = 1;
    int kept = 0;
    for (int i = 0; i < s->n; i++) {
        ModelEntry *e = &s->e[i];
        int part;
        int r = hf_name_map(e->name, sizeof e->name, &part);
        if (r == 0) continue;  // no backbone meaning: dropped
        if (r < 0) {
            dino_errf(err, errlen, "%s: tensor '%s' is not part of a Hugging Face ViT "
                    "(not a supported model)", s->path, e->orig);
            return -1;
        }
        if (!s->hf_dinov3 && (strstr(e->name, ".ls1.") || !strcmp(e->name, "register_tokens"))) s->hf_dinov2 = 1;
        if (s->hf_dinov3 && !strcmp(e->name, "register_tokens"))
            snprintf(e->name, sizeof e->name, "storage_tokens");
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
static int fuse_parts(ModelSource *s, char *err, size_t errlen) {
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
static void map_dinov3_official(ModelSource *s) {
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
static int link_bias_masks(ModelSource *s, char *err, size_t errlen) {
    for (int i = 0; i < s->n; i++) {
        const char *n = s->e[i].name;
        size_t l = strlen(n);
        if (l < 5 || strcmp(n + l - 5, "_mask") || !strstr(n, ".attn.qkv.bias_mask")) continue;
        char bias[160];
        snprintf(bias, sizeof bias, "%.*s", (int)(l - 5), n);
        ModelEntry *b = model_source_find(s, bias);
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

static ModelEntry *find_linear(ModelSource *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!s->e[i].is_part && !strcmp(s->e[i].name, name)) return &s->e[i];
    return NULL;
}

// Renames the prefix `from` to `to` in every name that has it after
// "blocks.N.".
static void rename_in_blocks(ModelSource *s, const char *from, const char *to) {
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
// mlp.fc2 (D, h). Renamed to the official names; model_io.c puts a zero
// CLS row in front of such a pos_embed, which gives the same sums.
static void map_timm_dinov2(ModelSource *s) {
    ModelEntry *reg = find_linear(s, "reg_token");
    if (reg) {
        snprintf(reg->name, sizeof reg->name, "register_tokens");
        s->pos_no_cls = 1;
    }
    ModelEntry *fc1 = find_linear(s, "blocks.0.mlp.fc1.weight"), *fc2 = find_linear(s, "blocks.0.mlp.fc2.weight");
    if (fc1 && fc2 && fc1->ndim == 2 && fc2->ndim == 2 && fc1->shape[0] == 2 * fc2->shape[1]) {
        rename_in_blocks(s, "mlp.fc1.", "mlp.w12.");
        rename_in_blocks(s, "mlp.fc2.", "mlp.w3.");
    }
}

// Normalises every entry's name, maps Hugging Face names, and indexes the
// names. Two keys that become one name (e.g. "module.x" and "x")
// are ambiguous.
static int normalise(ModelSource *s, char *err, size_t errlen) {
    int hf = 0;
    for (int i = 0; i < s->n; i++) {
        remove_all(s->e[i].name, "module.");
        remove_all(s->e[i].name, "backbone.");
        unchunk(s->e[i].name);
        if (hf_name_is_hf(s->e[i].name)) hf = 1;
    }
    // DINOv3: storage tokens or RoPE periods (official and ours), its Hugging
    // Face names, or our metadata.
    for (int i = 0; i < s->n; i++) {
        const char *n = s->e[i].name;
        if (hf_name_is_dinov3(n)) s->hf_dinov3 = 1;
        if (!strcmp(n, "storage_tokens") || !strcmp(n, "rope_embed.periods")) s->dinov3 = 1;
    }
    if (s->hf_dinov3 || model_source_meta(s, "vit.rope_base")) s->dinov3 = 1;
    if (hf && map_hf_names(s, err, errlen)) return -1;
    if (!hf) map_timm_dinov2(s);
    if (!hf && s->dinov3) map_dinov3_official(s);
    if (fuse_parts(s, err, errlen)) return -1;
    for (int i = 0; i < s->n; i++) {
        const ModelEntry *e = &s->e[i];
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

// Opens `path` in whichever format it is, lists the tensors of one model
// and normalises their names.
int model_source_open(ModelSource *s, const char *path, const char *key, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->path = path;
    if (tensor_source_open(&s->src, path, key, err, errlen)) return -1;
    int n = tensor_source_count(&s->src);
    for (int i = 0; i < n; i++) {
        TensorInfo t;
        tensor_source_info(&s->src, i, &t);
        ModelEntry *e = add_entry(s, t.name);
        snprintf(e->orig, sizeof e->orig, "%s", t.file_name);
        e->at = i;
        e->dtype = t.dtype;
        e->ndim = t.ndim;
        memcpy(e->shape, t.shape, sizeof e->shape);
        e->numel = t.numel;
    }
    if (normalise(s, err, errlen)) {
        model_source_close(s);
        return -1;
    }
    return 0;
}

int model_entry_read(ModelSource *s, ModelEntry *e, float *out, char *err, size_t errlen) {
    e->used = 1;
    if (e->parts[0]) {
        size_t per = e->numel / (size_t)e->nparts;
        for (int k = 0; k < e->nparts; k++) {
            if (!e->parts[k]) memset(out + (size_t)k * per, 0, per * sizeof(float));  // DINOv3's absent key bias
            else if (model_entry_read(s, e->parts[k], out + (size_t)k * per, err, errlen)) return -1;
        }
        return 0;
    }
    if (e->mask_at) {
        ModelEntry *m = &s->e[e->mask_at - 1];
        int at = e->mask_at;
        e->mask_at = 0;
        float *mask = mallocCheck(e->numel * sizeof(float));
        int rc = model_entry_read(s, e, out, err, errlen) || model_entry_read(s, m, mask, err, errlen);
        for (size_t i = 0; !rc && i < e->numel; i++) out[i] *= mask[i];
        free(mask);
        e->mask_at = at;
        return rc ? -1 : 0;
    }
    DINO_ASSERT(e->at >= 0);
    return tensor_source_read_f32(&s->src, e->at, out, e->numel, err, errlen);
}

int model_source_meta_int(ModelSource *s, const char *key, int *out) {
    const char *v = model_source_meta(s, key);
    if (!v) return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 0 || x > (1 << 30)) return 0;
    *out = (int)x;
    return 1;
}

const char *model_source_naming(const ModelSource *s) {
    return s->hf_dinov3 ? "Hugging Face DINOv3" : s->hf_dinov2 ? "Hugging Face Dinov2"
           : s->hf ? "Hugging Face ViT" : s->dinov3 ? "official DINOv3" : "timm/DINO";
}
