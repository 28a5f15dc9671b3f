// The table of training settings (train_settings.h) as data, and what walks
// it: defaults, the preset, the recorded form of a value, and the checks of
// a configuration (its ranges, then what the model and the loss need).
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "device.h"
#include "train/engine.h"
#include "train/trainer.h"

#define X(name_, field, kind_, def_, fmnist_, lo, hi, resume_, ranks, help_)                       \
    {.name = #name_, .kind = TS_##kind_, .offset = offsetof(TrainConfig, field), .def = def_,       \
     .fmnist = fmnist_, .min = (lo), .max = (hi), TS_RESUME_##resume_,                                \
     TS_RANKS_##ranks, .help = help_},
const TrainSetting train_settings[] = {TRAIN_SETTINGS(X)};
#undef X
const int train_settings_count = (int)(sizeof train_settings / sizeof *train_settings);

static void set_value(const TrainSetting *s, TrainConfig *c, const TrainSettingValue *v) {
    char *p = (char *)c + s->offset;
    switch (s->kind) {
    case TS_INT: case TS_BOOL: case TS_DEVICE: *(int *)p = (int)v->num[0]; break;
    case TS_I64: *(int64_t *)p = (int64_t)v->num[0]; break;
    case TS_FLOAT: *(float *)p = (float)v->num[0]; break;
    case TS_DOUBLE: case TS_FDOUBLE: *(double *)p = v->num[0]; break;
    case TS_STRING: *(const char **)p = v->str; break;
    case TS_FLOAT2: ((float *)p)[0] = (float)v->num[0], ((float *)p)[1] = (float)v->num[1]; break;
    case TS_FDOUBLE2: ((double *)p)[0] = v->num[0], ((double *)p)[1] = v->num[1]; break;
    }
}

void train_config_default(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < train_settings_count; i++) set_value(&train_settings[i], c, &train_settings[i].def);
    c->world_size = 1;
}

void train_config_preset_fmnist(TrainConfig *c) {
    for (int i = 0; i < train_settings_count; i++)
        if (!train_settings[i].fmnist.same) set_value(&train_settings[i], c, &train_settings[i].fmnist);
}

void train_setting_format(const TrainSetting *s, const TrainConfig *c, char *buf, size_t n) {
    const char *p = (const char *)c + s->offset;
    switch (s->kind) {
    case TS_INT: case TS_BOOL: snprintf(buf, n, "%d", *(const int *)p); break;
    case TS_I64: snprintf(buf, n, "%" PRId64, *(const int64_t *)p); break;
    case TS_FLOAT: snprintf(buf, n, "%.9g", *(const float *)p); break;
    case TS_DOUBLE: case TS_FDOUBLE: snprintf(buf, n, "%.17g", *(const double *)p); break;
    case TS_STRING: snprintf(buf, n, "%s", *(const char *const *)p ? *(const char *const *)p : ""); break;
    case TS_FLOAT2: snprintf(buf, n, "%.9g %.9g", ((const float *)p)[0], ((const float *)p)[1]); break;
    case TS_FDOUBLE2: snprintf(buf, n, "%.17g %.17g", ((const double *)p)[0], ((const double *)p)[1]); break;
    case TS_DEVICE: snprintf(buf, n, "%s", device_name((DeviceKind) * (const int *)p)); break;
    }
}

int train_config_is_resnet(const TrainConfig *c) {
    ResNetConfig rn;
    return c->arch && resnet_config_preset(&rn, c->arch) == 0;
}

// The DINO head on a backbone of width in_dim, as the head flags shape it.
static int head_from_flags(const TrainConfig *c, int in_dim, HeadConfig *head, char *err, size_t errlen) {
    if (c->out_dim <= 0) return snprintf(err, errlen, "--out_dim must be positive"), -1;
    head_config_default(head, in_dim, c->out_dim);
    if (c->head_hidden_dim > 0) head->hidden = c->head_hidden_dim;
    if (c->head_bottleneck_dim > 0) head->bottleneck = c->head_bottleneck_dim;
    if (c->head_nlayers > 0) head->nlayers = c->head_nlayers;
    if (head->nlayers > HEAD_MAX_LAYERS)
        return snprintf(err, errlen, "--head_nlayers %d is more than %d", head->nlayers, HEAD_MAX_LAYERS), -1;
    head->norm_last_layer = c->norm_last_layer;
    head->use_bn = c->use_bn_in_head;
    return 0;
}

int train_config_resnet(const TrainConfig *c, ResNetConfig *rn, HeadConfig *head, char *err,
                        size_t errlen) {
    if (!c->arch || resnet_config_preset(rn, c->arch) != 0)
        return snprintf(err, errlen, "--arch '%s' is not a ResNet (resnet50, resnet_tiny)", c->arch ? c->arch : ""), -1;
    // Any crop size passes through a ResNet (every stage keeps at least one
    // pixel); the ViT's patch grid does not apply.
    if (c->global_crop_size <= 0 || c->local_crop_size <= 0)
        return snprintf(err, errlen, "--global_crop_size and --local_crop_size must be positive"), -1;
    return head_from_flags(c, resnet_out_dim(rn), head, err, errlen);
}

int train_config_build_model(const TrainConfig *c, DinoModel *m, char *err, size_t errlen) {
    HeadConfig head;
    if (train_config_is_resnet(c)) {
        ResNetConfig rn;
        if (train_config_resnet(c, &rn, &head, err, errlen)) return -1;
        model_build_resnet(m, &rn, &head, 1);
        return 0;
    }
    ViTConfig vit;
    if (train_config_model(c, &vit, &head, err, errlen)) return -1;
    model_build(m, &vit, &head, 1);
    return 0;
}

int train_config_model(const TrainConfig *c, ViTConfig *vit, HeadConfig *head, char *err,
                       size_t errlen) {
    if (train_config_is_resnet(c))
        return snprintf(err, errlen, "--arch %s is a ResNet, not a ViT", c->arch), -1;
    if (c->patch_size <= 0) return snprintf(err, errlen, "--patch_size must be positive, got %d", c->patch_size), -1;
    if (vit_config_preset(vit, c->arch, c->patch_size) != 0) {
        snprintf(err, errlen, "unknown --arch '%s' (vit_tiny, vit_small, vit_base, deit_tiny, deit_small, resnet50, resnet_tiny)", c->arch);
        return -1;
    }
    if (c->embed_dim > 0) vit->dim = c->embed_dim;
    if (c->num_heads > 0) vit->heads = c->num_heads;
    if (c->depth > 0) vit->depth = c->depth;
    if (c->img_size > 0) vit->img_size = c->img_size;
    vit->mlp_hidden = 4 * vit->dim;
    vit->drop_path_rate = c->drop_path_rate;
    if (vit->depth > VIT_MAX_DEPTH)
        return snprintf(err, errlen, "--depth %d is more than the %d blocks supported", vit->depth, VIT_MAX_DEPTH), -1;
    if (vit->dim % vit->heads != 0)
        return snprintf(err, errlen, "--embed_dim %d is not divisible by --num_heads %d", vit->dim, vit->heads), -1;
    if (vit->img_size % vit->patch != 0)
        return snprintf(err, errlen, "--img_size %d is not a multiple of --patch_size %d", vit->img_size, vit->patch), -1;
    if (c->global_crop_size <= 0 || c->global_crop_size % vit->patch)
        return snprintf(err, errlen, "--global_crop_size %d is not a positive multiple of --patch_size %d",
                        c->global_crop_size, vit->patch), -1;
    if (c->local_crop_size <= 0 || c->local_crop_size % vit->patch)
        return snprintf(err, errlen, "--local_crop_size %d is not a positive multiple of --patch_size %d",
                        c->local_crop_size, vit->patch), -1;
    if (c->drop_path_rate < 0 || c->drop_path_rate >= 1)
        return snprintf(err, errlen, "--drop_path_rate must be in [0, 1), got %g", c->drop_path_rate), -1;
    return head_from_flags(c, vit->dim, head, err, errlen);
}

// A value for a message: floats as the flag was typed (%g), doubles exactly.
static void shown(char *buf, size_t n, const TrainSetting *s, double v) {
    if (s->kind == TS_FLOAT || s->kind == TS_FLOAT2) snprintf(buf, n, "%g", v);
    else dino_format_double(buf, n, v);
}

// Every number within its table range (the flags' own ranges), and every
// pair in order: a caller of the library gets the checks the CLI makes.
static int check_ranges(const TrainConfig *c, char *err, size_t errlen) {
    for (int i = 0; i < train_settings_count; i++) {
        const TrainSetting *s = &train_settings[i];
        const char *p = (const char *)c + s->offset;
        double v[2] = {0, 0};
        int n = 1;
        switch (s->kind) {
        case TS_INT: case TS_BOOL: case TS_DEVICE: v[0] = *(const int *)p; break;
        case TS_I64: v[0] = (double)*(const int64_t *)p; break;
        case TS_FLOAT: v[0] = *(const float *)p; break;
        case TS_DOUBLE: case TS_FDOUBLE: v[0] = *(const double *)p; break;
        case TS_STRING: n = 0; break;
        case TS_FLOAT2: n = 2, v[0] = ((const float *)p)[0], v[1] = ((const float *)p)[1]; break;
        case TS_FDOUBLE2: n = 2, v[0] = ((const double *)p)[0], v[1] = ((const double *)p)[1]; break;
        }
        if (s->min == 0 && s->max == 0) n = 0;  // no range
        for (int k = 0; k < n; k++) {
            if (v[k] >= s->min && v[k] <= s->max) continue;
            char x[32], lo[32], hi[32];
            shown(x, sizeof x, s, v[k]);
            dino_format_double(lo, sizeof lo, s->min);
            dino_format_double(hi, sizeof hi, s->max);
            snprintf(err, errlen, "--%s expects numbers from %s to %s, got %s", s->name, lo, hi, x);
            return -1;
        }
        if (n == 2 && !(v[0] <= v[1])) {
            char a[32], b[32];
            shown(a, sizeof a, s, v[0]);
            shown(b, sizeof b, s, v[1]);
            snprintf(err, errlen, "--%s expects two numbers min <= max, got %s %s", s->name, a, b);
            return -1;
        }
    }
    return 0;
}

int train_config_check(const TrainConfig *cfg, char *err, size_t errlen) {
    if (check_ranges(cfg, err, errlen)) return -1;
    // RandomResizedCrop needs a crop of some area.
    if (!(cfg->global_crops_scale[0] > 0) || !(cfg->local_crops_scale[0] > 0)) {
        const int g = !(cfg->global_crops_scale[0] > 0);
        const float *sc = g ? cfg->global_crops_scale : cfg->local_crops_scale;
        snprintf(err, errlen, "--%s expects 0 < min <= max <= 1, got %g %g",
                 g ? "global_crops_scale" : "local_crops_scale", sc[0], sc[1]);
        return -1;
    }
    if (!(cfg->teacher_temp > 0 && cfg->warmup_teacher_temp > 0)) {
        snprintf(err, errlen, "--teacher_temp and --warmup_teacher_temp must be positive");
        return -1;
    }
    ViTConfig vit;
    ResNetConfig rn;
    HeadConfig head;
    if (train_config_is_resnet(cfg)) {
        if (train_config_resnet(cfg, &rn, &head, err, errlen)) return -1;
        if (!train_engine_supports(cfg->device, ENGINE_RESNET)) {
            snprintf(err, errlen, "--device %s trains ViTs only; --arch %s (a ResNet) trains on --device cpu",
                     device_name(cfg->device), cfg->arch);
            return -1;
        }
    } else if (train_config_model(cfg, &vit, &head, err, errlen)) {
        return -1;
    }
    if (head.use_bn && !train_engine_supports(cfg->device, ENGINE_BN_HEAD)) {
        snprintf(err, errlen, "--device %s has no BatchNorm in the head; --use_bn_in_head true trains on --device cpu",
                 device_name(cfg->device));
        return -1;
    }
    OptimKind kind;
    if (optim_kind_parse(cfg->optimizer, &kind)) {
        snprintf(err, errlen, "unknown --optimizer '%s' (adamw, sgd, lars)", cfg->optimizer);
        return -1;
    }
    if (kind != OPTIM_ADAMW &&
        !train_engine_supports(cfg->device, kind == OPTIM_SGD ? ENGINE_OPTIM_SGD : ENGINE_OPTIM_LARS)) {
        snprintf(err, errlen, "--device %s trains with --optimizer adamw only, got '%s'",
                 device_name(cfg->device), cfg->optimizer);
        return -1;
    }
    if (cfg->warmup_epochs > cfg->epochs || cfg->warmup_teacher_temp_epochs > cfg->epochs) {
        snprintf(err, errlen, "--warmup_epochs (%d) and --warmup_teacher_temp_epochs (%d) cannot exceed --epochs (%d)",
                 cfg->warmup_epochs, cfg->warmup_teacher_temp_epochs, cfg->epochs);
        return -1;
    }
    if (cfg->koleo_loss_weight > 0 && cfg->batch_size_per_gpu < 2) {
        snprintf(err, errlen, "--koleo_loss_weight needs --batch_size_per_gpu of at least 2 (each "
                              "feature's nearest neighbour is another image of the batch)");
        return -1;
    }
    if (cfg->koleo_loss_weight > 0 && !train_engine_supports(cfg->device, ENGINE_KOLEO)) {
        snprintf(err, errlen, "--koleo_loss_weight (on in --preset fmnist) runs on the CPU only; "
                              "pass --koleo_loss_weight 0 with --device cuda");
        return -1;
    }
    const int sinkhorn = cfg->centering && !strcmp(cfg->centering, "sinkhorn_knopp");
    if (!sinkhorn && !(cfg->centering && !strcmp(cfg->centering, "centering"))) {
        snprintf(err, errlen, "unknown --centering '%s' (centering, sinkhorn_knopp)",
                 cfg->centering ? cfg->centering : "");
        return -1;
    }
    if (sinkhorn && !train_engine_supports(cfg->device, ENGINE_SINKHORN_KNOPP)) {
        snprintf(err, errlen, "--centering sinkhorn_knopp (--preset fmnist's) runs on the CPU only; "
                      "pass --centering centering for the GPU's loss, the reference's");
        return -1;
    }
    return 0;
}

