// `dino train`: self-supervised DINO training. Parses the reference's flags
// (main_dino.py names and defaults) plus our own, and runs train_run.
// Floating-point hyper-parameters that feed the schedules are parsed as
// doubles, as Python does, so the schedules equal the reference's.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "cuda/train_plan.h"
#include "train/trainer.h"

static double parse_double(const char *flag, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) dino_die("--%s expects a number, got '%s'", flag, s);
    return v;
}

static void parse_scale(const char *flag, const FloatList *l, float out[2]) {
    if (l->n != 2) dino_die("--%s expects two numbers (min max), got %d", flag, l->n);
    if (!(l->v[0] > 0 && l->v[0] <= l->v[1] && l->v[1] <= 1))
        dino_die("--%s expects 0 < min <= max <= 1, got %g %g", flag, l->v[0], l->v[1]);
    out[0] = l->v[0];
    out[1] = l->v[1];
}

int cmd_train(int argc, char **argv) {
    TrainConfig c;
    train_config_default(&c);
    // A preset changes the defaults; explicit flags then override it.
    const char *preset = NULL;
    int has_data_path = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[i + 1];
        else if (!strncmp(argv[i], "--preset=", 9)) preset = argv[i] + 9;
        if (!strcmp(argv[i], "--data_path") || !strncmp(argv[i], "--data_path=", 12) ||
            !strcmp(argv[i], "--data-path") || !strncmp(argv[i], "--data-path=", 12))
            has_data_path = 1;
    }
    if (preset && strcmp(preset, "fmnist") != 0) dino_die("--preset: unknown preset '%s' (known: fmnist)", preset);
    if (preset || !has_data_path) train_config_preset_fmnist(&c);

    char s_mt[32], s_wtt[32], s_tt[32], s_wd[32], s_wde[32], s_clip[32], s_lr[32], s_minlr[32];
    dino_format_double(s_mt, sizeof s_mt, c.momentum_teacher);
    dino_format_double(s_wtt, sizeof s_wtt, c.warmup_teacher_temp);
    dino_format_double(s_tt, sizeof s_tt, c.teacher_temp);
    dino_format_double(s_wd, sizeof s_wd, c.weight_decay);
    dino_format_double(s_wde, sizeof s_wde, c.weight_decay_end);
    dino_format_double(s_clip, sizeof s_clip, c.clip_grad);
    dino_format_double(s_lr, sizeof s_lr, c.lr);
    dino_format_double(s_minlr, sizeof s_minlr, c.min_lr);
    const char *mt = s_mt, *wtt = s_wtt, *tt = s_tt, *wd = s_wd, *wde = s_wde, *clip = s_clip,
               *lr = s_lr, *minlr = s_minlr;
    FloatList gscale = {2, {c.global_crops_scale[0], c.global_crops_scale[1]}};
    FloatList lscale = {2, {c.local_crops_scale[0], c.local_crops_scale[1]}};
    FloatList blur = {2, {(float)c.blur_sigma[0], (float)c.blur_sigma[1]}};
    float solarize = (float)c.solarization_prob;
    int use_fp16 = 2, use_bn_in_head = 0, stop_after = 0;  // 2: left at the default (true)
    const char *dist_url = "env://", *preset_flag = preset ? preset : "", *device = "cpu";
    int local_rank = 0;

    const ArgSpec specs[] = {
        {"preset", ARG_STRING, &preset_flag, "fmnist: small-data defaults for Fashion-MNIST (also used when --data_path is omitted)"},
        {"arch", ARG_STRING, &c.arch, "vit_tiny, vit_small, vit_base (deit_tiny, deit_small)"},
        {"patch_size", ARG_INT, &c.patch_size, "patch size in pixels"},
        {"out_dim", ARG_INT, &c.out_dim, "dimensionality of the DINO head output"},
        {"norm_last_layer", ARG_BOOL, &c.norm_last_layer, "weight-normalise the last layer with g fixed at 1"},
        {"embed_dim", ARG_INT, &c.embed_dim, "override the arch's width (0: from --arch)"},
        {"depth", ARG_INT, &c.depth, "override the arch's number of blocks (0: from --arch)"},
        {"num_heads", ARG_INT, &c.num_heads, "override the arch's attention heads (0: from --arch)"},
        {"img_size", ARG_INT, &c.img_size, "image size the position-embedding grid is built for"},
        {"head_hidden_dim", ARG_INT, &c.head_hidden_dim, "DINO head hidden width"},
        {"head_bottleneck_dim", ARG_INT, &c.head_bottleneck_dim, "DINO head bottleneck width"},
        {"head_nlayers", ARG_INT, &c.head_nlayers, "DINO head MLP layers"},
        {"use_bn_in_head", ARG_BOOL, &use_bn_in_head, "BatchNorm in the head (not supported)"},
        {"momentum_teacher", ARG_STRING, &mt, "base EMA momentum of the teacher (cosine to 1)"},
        {"warmup_teacher_temp", ARG_STRING, &wtt, "initial teacher temperature"},
        {"teacher_temp", ARG_STRING, &tt, "final teacher temperature"},
        {"warmup_teacher_temp_epochs", ARG_INT, &c.warmup_teacher_temp_epochs, "epochs of teacher-temperature warm-up"},
        {"centering", ARG_STRING, &c.centering, "teacher normalisation: centering (the reference's running centre) or sinkhorn_knopp (DINOv2's, balances the prototypes over the batch)"},
        {"koleo_loss_weight", ARG_FLOAT, &c.koleo_loss_weight, "weight of DINOv2's KoLeo regulariser on the student's global CLS features (0: off, as the reference; DINOv2 and --preset fmnist use 0.1); the global crops then run as one chunk, which takes more memory"},
        {"use_fp16", ARG_BOOL, &use_fp16, "mixed precision (accepted; ignored on the CPU)"},
        {"weight_decay", ARG_STRING, &wd, "initial weight decay"},
        {"weight_decay_end", ARG_STRING, &wde, "final weight decay (cosine)"},
        {"clip_grad", ARG_STRING, &clip, "per-tensor gradient norm clip (0: off)"},
        {"batch_size_per_gpu", ARG_INT, &c.batch_size_per_gpu, "images per batch"},
        {"epochs", ARG_INT, &c.epochs, "training epochs"},
        {"freeze_last_layer", ARG_INT, &c.freeze_last_layer, "epochs during which the last layer is frozen (1000000: the whole run, as in --preset fmnist)"},
        {"lr", ARG_STRING, &lr, "peak learning rate at batch 256 (scaled linearly with the batch)"},
        {"warmup_epochs", ARG_INT, &c.warmup_epochs, "linear learning-rate warm-up epochs"},
        {"min_lr", ARG_STRING, &minlr, "final learning rate (cosine)"},
        {"optimizer", ARG_STRING, &c.optimizer, "adamw, sgd or lars"},
        {"drop_path_rate", ARG_FLOAT, &c.drop_path_rate, "stochastic depth rate of the student"},
        {"global_crops_scale", ARG_FLOAT_LIST, &gscale, "RandomResizedCrop scale range of the global crops"},
        {"local_crops_number", ARG_INT, &c.local_crops_number, "local crops per image"},
        {"local_crops_scale", ARG_FLOAT_LIST, &lscale, "RandomResizedCrop scale range of the local crops"},
        {"global_crop_size", ARG_INT, &c.global_crop_size, "global crop size in pixels"},
        {"blur_sigma", ARG_FLOAT_LIST, &blur, "Gaussian blur radius range (the reference's 0.1 2 suits 224-px crops)"},
        {"solarization_prob", ARG_FLOAT, &solarize, "solarization probability of the second global crop"},
        {"jpeg_min_side", ARG_INT, &c.jpeg_min_side, "> 0: decode JPEGs at a reduced DCT scale while both sides stay >= this (faster on large photos; pixels then differ from PIL's)"},
        {"local_crop_size", ARG_INT, &c.local_crop_size, "local crop size in pixels"},
        {"data_path", ARG_STRING, &c.data_path, "image folder, IDX or CIFAR files"},
        {"output_dir", ARG_STRING, &c.output_dir, "where checkpoints and log.txt go (and resume from)"},
        {"saveckp_freq", ARG_INT, &c.saveckp_freq, "also keep checkpointNNNN.dino every this many epochs"},
        {"seed", ARG_INT, &c.seed, "random seed"},
        {"num_workers", ARG_INT, &c.num_workers, "data loading threads (capped to the cores)"},
        {"checkpoint_every_steps", ARG_INT, &c.checkpoint_every_steps, "also write checkpoint.dino every N iterations (0: epoch ends only)"},
        {"log_every_steps", ARG_INT, &c.log_every_steps, "progress line and log.txt record every N iterations"},
        {"stop_after_steps", ARG_INT, &stop_after, "write a checkpoint and stop at this global iteration (0: run to the end)"},
        {"eval_knn_every", ARG_INT, &c.eval_knn_every, "k-NN evaluation every N epochs (0: off)"},
        {"quiet", ARG_BOOL, &c.quiet, "no progress lines"},
        {"device", ARG_STRING, &device, "cpu, or cuda (a build with make CUDA=1; docs/GPU.md)"},
        {"dist", ARG_BOOL, &c.dist_report, "report every rank (host, pid, threads) at start-up; run under mpirun for data parallelism (docs/DISTRIBUTED.md)"},
        {"dist_url", ARG_STRING, &dist_url, "accepted for compatibility; single process"},
        {"local_rank", ARG_INT, &local_rank, "accepted for compatibility; single process"},
        {NULL, 0, NULL, NULL},
    };
    args_parse("train", "[flags]   (resumes from OUTPUT_DIR/checkpoint.dino when it exists)", specs, argc,
               argv, NULL, 0);
    char derr[256];
    DeviceKind dk;
    if (device_parse(device, &dk, derr, sizeof derr)) dino_die("%s", derr);
    c.device = (int)dk;
    c.momentum_teacher = parse_double("momentum_teacher", mt);
    c.warmup_teacher_temp = parse_double("warmup_teacher_temp", wtt);
    c.teacher_temp = parse_double("teacher_temp", tt);
    c.weight_decay = parse_double("weight_decay", wd);
    c.weight_decay_end = parse_double("weight_decay_end", wde);
    c.clip_grad = parse_double("clip_grad", clip);
    c.lr = parse_double("lr", lr);
    c.min_lr = parse_double("min_lr", minlr);
    c.stop_after_steps = stop_after;
    parse_scale("global_crops_scale", &gscale, c.global_crops_scale);
    parse_scale("local_crops_scale", &lscale, c.local_crops_scale);
    if (blur.n != 2 || !(blur.v[0] >= 0 && blur.v[0] <= blur.v[1]))
        dino_die("--blur_sigma expects two numbers 0 <= min <= max");
    // Kept exact when left at the default, so the draws equal the reference's formula.
    if (blur.v[0] != (float)c.blur_sigma[0] || blur.v[1] != (float)c.blur_sigma[1]) {
        c.blur_sigma[0] = blur.v[0];
        c.blur_sigma[1] = blur.v[1];
    }
    if (!(solarize >= 0 && solarize <= 1)) dino_die("--solarization_prob expects a probability in [0, 1]");
    if (solarize != (float)c.solarization_prob) c.solarization_prob = solarize;
    if (use_bn_in_head) dino_die("--use_bn_in_head true is not supported (BatchNorm in the head is not implemented)");
    if (use_fp16 == 1) dino_info("--use_fp16 is ignored: training runs in float32 on the CPU");
    if (!(c.teacher_temp > 0 && c.warmup_teacher_temp > 0)) dino_die("--teacher_temp and --warmup_teacher_temp must be positive");
    if (c.teacher_temp > 0.07) dino_warn("--teacher_temp %g is above 0.07, which the reference calls usually unstable", c.teacher_temp);
    if (c.batch_size_per_gpu <= 0) dino_die("--batch_size_per_gpu must be positive");
    if (c.epochs <= 0) dino_die("--epochs must be positive");
    return train_run(&c);
}
