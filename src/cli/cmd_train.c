// `dino train`: self-supervised DINO training. Parses the reference's flags
// (main_dino.py names and defaults) plus our own, and runs train_run.
// Floating-point hyper-parameters that feed the schedules are parsed as
// doubles (ARG_DOUBLE), as Python does, so the schedules equal the reference's.
// Every number has a range; combinations the model needs (crop sizes on the
// patch grid, ...) are checked before any data is read.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "cuda/train_plan.h"
#include "train/trainer.h"

// Ranges of the training flags beyond those args.h shares, each with its reason.
// Prototypes: 4x the reference's 65536; the last layer, the logits of every
// crop and the centre grow with it.
#define TRAIN_MAX_OUT_DIM 262144
// Backbone width: 2.7x ViT-g's 1536.
#define TRAIN_MAX_EMBED_DIM 4096
// DINO head widths: 8x the reference's 2048 (hidden) and 256 (bottleneck).
#define TRAIN_MAX_HEAD_HIDDEN 16384
#define TRAIN_MAX_HEAD_BOTTLENECK 2048
// Blur radius in pixels: beyond the largest crop side, the image is one colour.
#define TRAIN_MAX_BLUR_SIGMA 1000
// Learning rates and weight decays: 20000x the reference's lr 0.0005 and 25x
// its final weight decay 0.4; past these every step diverges.
#define TRAIN_MAX_LR 10
#define TRAIN_MAX_WEIGHT_DECAY 10
// Gradient-norm clip: any positive norm means something; 0 is off.
#define TRAIN_MAX_CLIP 1e9
// KoLeo weight: 1000x DINOv2's 0.1.
#define TRAIN_MAX_KOLEO 100
// Loader threads (capped to the cores anyway).
#define TRAIN_MAX_WORKERS 1024
// --local_rank from a launcher: any rank of a job.
#define TRAIN_MAX_LOCAL_RANK 65535

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
        {"patch_size", ARG_INT, &c.patch_size, "patch size in pixels", ARG_RANGE(1, ARG_MAX_PATCH)},
        {"out_dim", ARG_INT, &c.out_dim, "dimensionality of the DINO head output", ARG_RANGE(1, TRAIN_MAX_OUT_DIM)},
        {"norm_last_layer", ARG_BOOL, &c.norm_last_layer, "weight-normalise the last layer with g fixed at 1"},
        {"embed_dim", ARG_INT, &c.embed_dim, "override the arch's width (0: from --arch)", ARG_RANGE(0, TRAIN_MAX_EMBED_DIM)},
        {"depth", ARG_INT, &c.depth, "override the arch's number of blocks (0: from --arch)", ARG_RANGE(0, VIT_MAX_DEPTH)},
        {"num_heads", ARG_INT, &c.num_heads, "override the arch's attention heads (0: from --arch)", ARG_RANGE(0, ARG_MAX_HEADS)},
        {"img_size", ARG_INT, &c.img_size, "image size the position-embedding grid is built for (0: 224)", ARG_RANGE(0, ARG_MAX_IMAGE_SIDE)},
        {"head_hidden_dim", ARG_INT, &c.head_hidden_dim, "DINO head hidden width", ARG_RANGE(0, TRAIN_MAX_HEAD_HIDDEN)},
        {"head_bottleneck_dim", ARG_INT, &c.head_bottleneck_dim, "DINO head bottleneck width", ARG_RANGE(0, TRAIN_MAX_HEAD_BOTTLENECK)},
        {"head_nlayers", ARG_INT, &c.head_nlayers, "DINO head MLP layers", ARG_RANGE(0, HEAD_MAX_LAYERS)},
        {"use_bn_in_head", ARG_BOOL, &use_bn_in_head, "BatchNorm in the head (not supported)"},
        {"momentum_teacher", ARG_DOUBLE, &c.momentum_teacher, "base EMA momentum of the teacher (cosine to 1)", ARG_RANGE(0, 1)},
        {"warmup_teacher_temp", ARG_DOUBLE, &c.warmup_teacher_temp, "initial teacher temperature", ARG_RANGE(0, 1)},
        {"teacher_temp", ARG_DOUBLE, &c.teacher_temp, "final teacher temperature", ARG_RANGE(0, 1)},
        {"warmup_teacher_temp_epochs", ARG_INT, &c.warmup_teacher_temp_epochs, "epochs of teacher-temperature warm-up", ARG_RANGE(0, ARG_MAX_EPOCHS)},
        {"centering", ARG_STRING, &c.centering, "teacher normalisation: centering (the reference's running centre) or sinkhorn_knopp (DINOv2's, balances the prototypes over the batch)"},
        {"koleo_loss_weight", ARG_FLOAT, &c.koleo_loss_weight, "weight of DINOv2's KoLeo regulariser on the student's global CLS features (0: off, as the reference; DINOv2 and --preset fmnist use 0.1); the global crops then run as one chunk, which takes more memory", ARG_RANGE(0, TRAIN_MAX_KOLEO)},
        {"use_fp16", ARG_BOOL, &use_fp16, "mixed precision (accepted; ignored on the CPU)"},
        {"weight_decay", ARG_DOUBLE, &c.weight_decay, "initial weight decay", ARG_RANGE(0, TRAIN_MAX_WEIGHT_DECAY)},
        {"weight_decay_end", ARG_DOUBLE, &c.weight_decay_end, "final weight decay (cosine)", ARG_RANGE(0, TRAIN_MAX_WEIGHT_DECAY)},
        {"clip_grad", ARG_DOUBLE, &c.clip_grad, "per-tensor gradient norm clip (0: off)", ARG_RANGE(0, TRAIN_MAX_CLIP)},
        {"batch_size_per_gpu", ARG_INT, &c.batch_size_per_gpu, "images per batch", ARG_RANGE(1, ARG_MAX_BATCH)},
        {"epochs", ARG_INT, &c.epochs, "training epochs", ARG_RANGE(1, ARG_MAX_EPOCHS)},
        {"freeze_last_layer", ARG_INT, &c.freeze_last_layer, "epochs during which the last layer is frozen (1000000: the whole run, as in --preset fmnist)", ARG_RANGE(0, TRAIN_FREEZE_ALWAYS)},
        {"lr", ARG_DOUBLE, &c.lr, "peak learning rate at batch 256 (scaled linearly with the batch)", ARG_RANGE(0, TRAIN_MAX_LR)},
        {"warmup_epochs", ARG_INT, &c.warmup_epochs, "linear learning-rate warm-up epochs", ARG_RANGE(0, ARG_MAX_EPOCHS)},
        {"min_lr", ARG_DOUBLE, &c.min_lr, "final learning rate (cosine)", ARG_RANGE(0, TRAIN_MAX_LR)},
        {"optimizer", ARG_STRING, &c.optimizer, "adamw, sgd or lars"},
        {"drop_path_rate", ARG_FLOAT, &c.drop_path_rate, "stochastic depth rate of the student", ARG_RANGE(0, 1)},
        {"global_crops_scale", ARG_FLOAT_LIST, &gscale, "RandomResizedCrop scale range of the global crops", ARG_RANGE(0, 1)},
        {"local_crops_number", ARG_INT, &c.local_crops_number, "local crops per image", ARG_RANGE(0, TRAIN_MAX_LOCAL_CROPS)},
        {"local_crops_scale", ARG_FLOAT_LIST, &lscale, "RandomResizedCrop scale range of the local crops", ARG_RANGE(0, 1)},
        {"global_crop_size", ARG_INT, &c.global_crop_size, "global crop size in pixels (a multiple of --patch_size)", ARG_RANGE(1, ARG_MAX_IMAGE_SIDE)},
        {"blur_sigma", ARG_FLOAT_LIST, &blur, "Gaussian blur radius range (the reference's 0.1 2 suits 224-px crops)", ARG_RANGE(0, TRAIN_MAX_BLUR_SIGMA)},
        {"solarization_prob", ARG_FLOAT, &solarize, "solarization probability of the second global crop", ARG_RANGE(0, 1)},
        {"jpeg_min_side", ARG_INT, &c.jpeg_min_side, "> 0: decode JPEGs at a reduced DCT scale while both sides stay >= this (faster on large photos; pixels then differ from PIL's)", ARG_RANGE(0, ARG_MAX_COUNT)},
        {"local_crop_size", ARG_INT, &c.local_crop_size, "local crop size in pixels (a multiple of --patch_size)", ARG_RANGE(1, ARG_MAX_IMAGE_SIDE)},
        {"data_path", ARG_STRING, &c.data_path, "image folder, IDX or CIFAR files"},
        {"output_dir", ARG_STRING, &c.output_dir, "where checkpoints and log.txt go (and resume from)"},
        {"saveckp_freq", ARG_INT, &c.saveckp_freq, "also keep checkpointNNNN.dino every this many epochs (0: never)", ARG_RANGE(0, ARG_MAX_EPOCHS)},
        {"seed", ARG_INT, &c.seed, "random seed", ARG_RANGE(-ARG_MAX_COUNT, ARG_MAX_COUNT)},
        {"num_workers", ARG_INT, &c.num_workers, "data loading threads (capped to the cores)", ARG_RANGE(0, TRAIN_MAX_WORKERS)},
        {"checkpoint_every_steps", ARG_INT, &c.checkpoint_every_steps, "also write checkpoint.dino every N iterations (0: epoch ends only)", ARG_RANGE(0, ARG_MAX_COUNT)},
        {"log_every_steps", ARG_INT, &c.log_every_steps, "progress line and log.txt record every N iterations (0: epoch records only)", ARG_RANGE(0, ARG_MAX_COUNT)},
        {"stop_after_steps", ARG_INT, &stop_after, "write a checkpoint and stop once the run has done this many iterations, counted from its start, not from this resume: running the same command again does nothing (0: run to the end)", ARG_RANGE(0, ARG_MAX_COUNT)},
        {"eval_knn_every", ARG_INT, &c.eval_knn_every, "k-NN evaluation every N epochs (0: off)", ARG_RANGE(0, ARG_MAX_EPOCHS)},
        {"quiet", ARG_BOOL, &c.quiet, "no progress lines"},
        {"device", ARG_STRING, &device, "cpu, or cuda (a build with make CUDA=1; docs/GPU.md)"},
        {"dist", ARG_BOOL, &c.dist_report, "report every rank (host, pid, threads) at start-up; run under mpirun for data parallelism (docs/DISTRIBUTED.md)"},
        {"dist_url", ARG_STRING, &dist_url, "accepted for compatibility; single process"},
        {"local_rank", ARG_INT, &local_rank, "accepted for compatibility; single process", ARG_RANGE(0, TRAIN_MAX_LOCAL_RANK)},
        {NULL, 0, NULL, NULL},
    };
    args_parse("train", "[flags]   (resumes from OUTPUT_DIR/checkpoint.dino when it exists)", specs, argc,
               argv, NULL, 0);
    char derr[256];
    DeviceKind dk;
    if (device_parse(device, &dk, derr, sizeof derr)) dino_die("%s", derr);
    c.device = (int)dk;
    c.stop_after_steps = stop_after;
    parse_scale("global_crops_scale", &gscale, c.global_crops_scale);
    parse_scale("local_crops_scale", &lscale, c.local_crops_scale);
    if (blur.n != 2 || !(blur.v[0] <= blur.v[1])) dino_die("--blur_sigma expects two numbers min <= max");
    // Kept exact when left at the default, so the draws equal the reference's formula.
    if (blur.v[0] != (float)c.blur_sigma[0] || blur.v[1] != (float)c.blur_sigma[1]) {
        c.blur_sigma[0] = blur.v[0];
        c.blur_sigma[1] = blur.v[1];
    }
    if (solarize != (float)c.solarization_prob) c.solarization_prob = solarize;
    if (use_bn_in_head) dino_die("--use_bn_in_head true is not supported (BatchNorm in the head is not implemented)");
    if (use_fp16 == 1) dino_info("--use_fp16 is ignored: training runs in float32 on the CPU");
    if (!(c.teacher_temp > 0 && c.warmup_teacher_temp > 0)) dino_die("--teacher_temp and --warmup_teacher_temp must be positive");
    if (c.teacher_temp > 0.07) dino_warn("--teacher_temp %g is above 0.07, which the reference calls usually unstable", c.teacher_temp);
    char err[512];
    if (train_config_check(&c, err, sizeof err)) dino_die("%s", err);
    return train_run(&c);
}
