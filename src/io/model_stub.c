// Temporary stand-in for the model's parameter tables (model_build,
// model_free, vit_param_table, head_param_table, vit_config_describe) so that
// src/io builds and is tested before the engine branch is merged. Each part
// compiles to nothing as soon as the real file (src/model.c, src/vit.c,
// src/head.c) exists; delete this file once they are all in main.
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "model.h"

#if !__has_include("vit.c")
void vit_param_table(const ViTConfig *cfg, ParamTable *t, const char *prefix) {
    int64_t D = cfg->dim, p = cfg->patch, g = cfg->img_size / cfg->patch, H = cfg->mlp_hidden;
    param_table_add(t, prefix, "cls_token", 3, (int64_t[]){1, 1, D});
    param_table_add(t, prefix, "pos_embed", 3, (int64_t[]){1, 1 + g * g, D});
    param_table_add(t, prefix, "patch_embed.proj.weight", 4, (int64_t[]){D, cfg->in_chans, p, p});
    param_table_add(t, prefix, "patch_embed.proj.bias", 1, (int64_t[]){D});
    const char *names[12] = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                             "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
                             "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"};
    int64_t shapes[12][2] = {{D, 0}, {D, 0}, {3 * D, D}, {3 * D, 0}, {D, D}, {D, 0},
                             {D, 0}, {D, 0}, {H, D},     {H, 0},     {D, H}, {D, 0}};
    char name[PARAM_NAME_MAX];
    for (int l = 0; l < cfg->depth; l++)
        for (int k = 0; k < 12; k++) {
            snprintf(name, sizeof name, "blocks.%d.%s", l, names[k]);
            param_table_add(t, prefix, name, shapes[k][1] ? 2 : 1, shapes[k]);
        }
    param_table_add(t, prefix, "norm.weight", 1, (int64_t[]){D});
    param_table_add(t, prefix, "norm.bias", 1, (int64_t[]){D});
}

void vit_config_describe(const ViTConfig *cfg, char *buf, size_t n) {
    snprintf(buf, n, "vit/%d: D=%d depth=%d heads=%d mlp=%d img=%d in_chans=%d eps=%g", cfg->patch,
             cfg->dim, cfg->depth, cfg->heads, cfg->mlp_hidden, cfg->img_size, cfg->in_chans,
             (double)cfg->ln_eps);
}
#endif

#if !__has_include("head.c")
void head_param_table(const HeadConfig *cfg, ParamTable *t, const char *prefix) {
    char name[PARAM_NAME_MAX];
    for (int i = 0; i < cfg->nlayers; i++) {
        int64_t in = i == 0 ? cfg->in_dim : cfg->hidden;
        int64_t out = i == cfg->nlayers - 1 ? cfg->bottleneck : cfg->hidden;
        if (cfg->nlayers == 1) snprintf(name, sizeof name, "mlp.weight");
        else snprintf(name, sizeof name, "mlp.%d.weight", 2 * i);
        param_table_add(t, prefix, name, 2, (int64_t[]){out, in});
        if (cfg->nlayers == 1) snprintf(name, sizeof name, "mlp.bias");
        else snprintf(name, sizeof name, "mlp.%d.bias", 2 * i);
        param_table_add(t, prefix, name, 1, (int64_t[]){out});
    }
    int ig = param_table_add(t, prefix, "last_layer.weight_g", 2, (int64_t[]){cfg->out_dim, 1});
    t->p[ig].trainable = !cfg->norm_last_layer;
    param_table_add(t, prefix, "last_layer.weight_v", 2, (int64_t[]){cfg->out_dim, cfg->bottleneck});
}
#endif

#if !__has_include("model.c")
void model_build(DinoModel *m, const ViTConfig *vit, const HeadConfig *head, int has_head) {
    memset(m, 0, sizeof *m);
    m->vit = *vit;
    if (head) m->head = *head;
    m->has_head = has_head;
    param_table_init(&m->table);
    vit_param_table(vit, &m->table, "backbone.");
    if (has_head) head_param_table(head, &m->table, "head.");
}

void model_free(DinoModel *m) { param_table_free(&m->table); }
#endif
