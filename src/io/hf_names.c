// Hugging Face names to the reference's (hf_names.h).
#include "io/hf_names.h"

#include <stdio.h>
#include <string.h>

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

// Hugging Face ViT and Dinov2 names (hub layout and transformers 5 module
// layout) to the reference's. Returns 1 when mapped (name rewritten; *part =
// 0/1/2 for query/key/value, -1 otherwise), 0 for names with no backbone
// meaning (pooler, classifier, mask_token), -1 for names not recognised.
int hf_name_map(char *name, size_t cap, int *part) {
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
int hf_name_is_dinov3(const char *n) {
    return !strcmp(n, "embeddings.patch_embeddings.weight") || starts_with(n, "model.layer.") ||
           (starts_with(n, "layer.") && n[6] >= '0' && n[6] <= '9');
}

int hf_name_is_hf(const char *n) {
    if (starts_with(n, "vit.")) n += 4;
    else if (starts_with(n, "dinov2.")) n += 7;
    return starts_with(n, "embeddings.") || starts_with(n, "encoder.layer.") ||
           (starts_with(n, "layers.") && strstr(n, "attention.")) || hf_name_is_dinov3(n);
}

