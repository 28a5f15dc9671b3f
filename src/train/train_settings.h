// The training settings, written once. Each line of TRAIN_SETTINGS gives a
// setting's flag name (the reference's main_dino.py name where it has one),
// its TrainConfig field, its kind, its default, its value in --preset fmnist,
// the range of a number, what resuming a checkpoint with another value does,
// whether MPI ranks must agree on it, and the help text. From this one table
// come the TrainConfig struct (trainer.h), the defaults and the preset, the
// `dino train` flags (cli/cmd_train.c), the range checks of
// train_config_check, the configuration a checkpoint records and compares on
// resume (train_checkpoint.c), and the configuration ranks compare at start-up
// (dist_train.c). Adding a setting is one line here (and, when resuming
// compares it, one line in train_checkpoint.c's recorded_later, for the checkpoints
// written before it was recorded).
#ifndef DINO_TRAIN_TRAIN_SETTINGS_H
#define DINO_TRAIN_TRAIN_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "arg_limits.h"
#include "head.h"
#include "vit.h"

// A --freeze_last_layer that outlasts any run: the last layer never trains.
#define TRAIN_FREEZE_ALWAYS 1000000
// Local crops per image: 8x the reference's 8 (each is a pass of the student).
#define TRAIN_MAX_LOCAL_CROPS 64
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

// Kinds: the field's C type and how the flag reads it.
//   INT, BOOL (int), I64 (int64_t, read as an int), FLOAT (float), DOUBLE
//   (double: the reference's Python floats, so schedules equal its own),
//   STRING (const char *), FLOAT2 (float[2], a list of two numbers),
//   DEVICE (int, a DeviceKind read by name: cpu, cuda).
//   FDOUBLE and FDOUBLE2 are a double and a double[2] that the flag reads as
//   float32: a value left at the default stays exact (the reference's
//   formula), one given on the command line is rounded to float32 as it has
//   always been, so that runs stay bit-identical.
// Values: TS_N(x) a number, TS_N2(a, b) a pair, TS_S("...") a string;
// TS_SAME in the preset column keeps the default.
// Resume: MUST (another value refuses to resume: it changes the model's
// shape, the optimizer's state or the batch), WARN (resumes with a warning:
// the run will not match an uninterrupted one), RECORD (recorded, never
// compared), PER_RUN("why") (not recorded: a choice of one invocation that
// leaves the trained weights alone, so that a checkpoint of a resumed run
// stays byte-identical to an uninterrupted run's).
// Ranks: AGREE (every rank must have rank 0's value), or MAY_DIFFER("why").
//
//  X(flag, field, kind, default, fmnist preset, min, max, resume, ranks, help)
#define TRAIN_SETTINGS(X) \
    X(arch, arch, STRING, TS_S("vit_small"), TS_S("vit_tiny"), 0, 0, MUST, AGREE, \
      "vit_tiny, vit_small, vit_base (deit_tiny, deit_small); resnet50 (torchvision's), or resnet_tiny (a reduced ResNet for 28 px images: resnet50's widths / 16, one bottleneck per stage, a 16-channel conv 3x3/1 stem without max-pool, 128-d); a ResNet ignores the ViT's --patch_size, --embed_dim, --depth, --num_heads, --img_size and --drop_path_rate, and trains on the CPU only") \
    /* A 4-block ViT of width 128 on 7-px patches: 16 tokens + CLS (4-px patches, 49 tokens, cost 3x the time per image). */ \
    X(patch_size, patch_size, INT, TS_N(16), TS_N(7), 1, ARG_MAX_PATCH, MUST, AGREE, \
      "patch size in pixels") \
    /* 1024 prototypes: k-NN as with 4096 at about 10% more images/s (docs/TRAINING.md). */ \
    X(out_dim, out_dim, INT, TS_N(65536), TS_N(1024), 1, TRAIN_MAX_OUT_DIM, MUST, AGREE, \
      "dimensionality of the DINO head output") \
    X(norm_last_layer, norm_last_layer, BOOL, TS_N(1), TS_SAME, 0, 0, MUST, AGREE, \
      "weight-normalise the last layer with g fixed at 1") \
    X(embed_dim, embed_dim, INT, TS_N(0), TS_N(128), 0, TRAIN_MAX_EMBED_DIM, MUST, AGREE, \
      "override the arch's width (0: from --arch)") \
    X(depth, depth, INT, TS_N(0), TS_N(4), 0, VIT_MAX_DEPTH, MUST, AGREE, \
      "override the arch's number of blocks (0: from --arch)") \
    X(num_heads, num_heads, INT, TS_N(0), TS_N(4), 0, ARG_MAX_HEADS, MUST, AGREE, \
      "override the arch's attention heads (0: from --arch)") \
    X(img_size, img_size, INT, TS_N(224), TS_N(28), 0, ARG_MAX_IMAGE_SIDE, MUST, AGREE, \
      "image size the position-embedding grid is built for (0: 224)") \
    X(head_hidden_dim, head_hidden_dim, INT, TS_N(2048), TS_N(512), 0, TRAIN_MAX_HEAD_HIDDEN, MUST, AGREE, \
      "DINO head hidden width") \
    X(head_bottleneck_dim, head_bottleneck_dim, INT, TS_N(256), TS_N(128), 0, TRAIN_MAX_HEAD_BOTTLENECK, MUST, AGREE, \
      "DINO head bottleneck width") \
    X(head_nlayers, head_nlayers, INT, TS_N(3), TS_SAME, 0, HEAD_MAX_LAYERS, MUST, AGREE, \
      "DINO head MLP layers") \
    X(use_bn_in_head, use_bn_in_head, BOOL, TS_N(0), TS_SAME, 0, 0, MUST, AGREE, \
      "BatchNorm1d after each hidden layer of the head, with batch statistics over all crops of the batch (synchronised over ranks), as the reference's DINOHead(use_bn=True); --device cpu only") \
    /* A faster teacher than 0.996, for a run of thousands of steps rather than hundreds of thousands. */ \
    X(momentum_teacher, momentum_teacher, DOUBLE, TS_N(0.996), TS_N(0.99), 0, 1, WARN, AGREE, \
      "base EMA momentum of the teacher (cosine to 1)") \
    /* Sinkhorn-Knopp with a sharper temperature keeps all prototypes in use; with centring at 0.04 the teacher used a handful per batch (docs/TRAINING.md). */ \
    X(warmup_teacher_temp, warmup_teacher_temp, DOUBLE, TS_N(0.04), TS_N(0.01), 0, 1, WARN, AGREE, \
      "initial teacher temperature") \
    X(teacher_temp, teacher_temp, DOUBLE, TS_N(0.04), TS_N(0.01), 0, 1, WARN, AGREE, \
      "final teacher temperature") \
    X(warmup_teacher_temp_epochs, warmup_teacher_temp_epochs, INT, TS_N(0), TS_N(0), 0, ARG_MAX_EPOCHS, WARN, AGREE, \
      "epochs of teacher-temperature warm-up") \
    X(centering, centering, STRING, TS_S("centering"), TS_S("sinkhorn_knopp"), 0, 0, WARN, AGREE, \
      "teacher normalisation: centering (the reference's running centre) or sinkhorn_knopp (DINOv2's, balances the prototypes over the batch)") \
    /* DINOv2's KoLeo at DINOv2's weight spreads the CLS features over the sphere: k-NN rises (docs/TRAINING.md). */ \
    X(koleo_loss_weight, koleo_loss_weight, FLOAT, TS_N(0), TS_N(0.1), 0, TRAIN_MAX_KOLEO, WARN, AGREE, \
      "weight of DINOv2's KoLeo regulariser on the student's global CLS features (0: off, as the reference; DINOv2 and --preset fmnist use 0.1); the global crops then run as one chunk, which takes more memory") \
    X(weight_decay, weight_decay, DOUBLE, TS_N(0.04), TS_SAME, 0, TRAIN_MAX_WEIGHT_DECAY, WARN, AGREE, \
      "initial weight decay") \
    X(weight_decay_end, weight_decay_end, DOUBLE, TS_N(0.4), TS_SAME, 0, TRAIN_MAX_WEIGHT_DECAY, WARN, AGREE, \
      "final weight decay (cosine)") \
    X(clip_grad, clip_grad, DOUBLE, TS_N(3.0), TS_SAME, 0, TRAIN_MAX_CLIP, WARN, AGREE, \
      "per-tensor gradient norm clip (0: off)") \
    /* recorded through global_batch (train_checkpoint.c): a run may resume on another number of ranks */ \
    X(batch_size_per_gpu, batch_size_per_gpu, INT, TS_N(64), TS_N(64), 1, ARG_MAX_BATCH, RECORD, AGREE, \
      "images per batch") \
    /* The short schedule: 2 epochs, about 10 minutes on 2 cores (docs/TRAINING.md). */ \
    X(epochs, epochs, INT, TS_N(100), TS_N(2), 1, ARG_MAX_EPOCHS, WARN, AGREE, \
      "training epochs") \
    /* The prototypes stay at their random initialisation: once trained, the teacher drifted to a uniform output (docs/TRAINING.md). */ \
    X(freeze_last_layer, freeze_last_layer, INT, TS_N(1), TS_N(TRAIN_FREEZE_ALWAYS), 0, TRAIN_FREEZE_ALWAYS, WARN, AGREE, \
      "epochs during which the last layer is frozen (1000000: the whole run, as in --preset fmnist)") \
    /* 0.004 per 256 images (1e-3 at batch 64): with 0.0005 the teacher stayed near uniform for 500 steps (docs/TRAINING.md). */ \
    X(lr, lr, DOUBLE, TS_N(0.0005), TS_N(0.004), 0, TRAIN_MAX_LR, WARN, AGREE, \
      "peak learning rate at batch 256 (scaled linearly with the batch)") \
    X(warmup_epochs, warmup_epochs, INT, TS_N(10), TS_N(1), 0, ARG_MAX_EPOCHS, WARN, AGREE, \
      "linear learning-rate warm-up epochs") \
    X(min_lr, min_lr, DOUBLE, TS_N(1e-6), TS_SAME, 0, TRAIN_MAX_LR, WARN, AGREE, \
      "final learning rate (cosine)") \
    X(optimizer, optimizer, STRING, TS_S("adamw"), TS_SAME, 0, 0, MUST, AGREE, \
      "adamw, sgd or lars") \
    X(drop_path_rate, drop_path_rate, FLOAT, TS_N(0.1f), TS_N(0.05f), 0, 1, WARN, AGREE, \
      "stochastic depth rate of the student") \
    X(global_crops_scale, global_crops_scale, FLOAT2, TS_N2(0.4f, 1.0f), TS_N2(0.4f, 1.0f), 0, 1, WARN, AGREE, \
      "RandomResizedCrop scale range of the global crops") \
    X(local_crops_number, local_crops_number, INT, TS_N(8), TS_N(4), 0, TRAIN_MAX_LOCAL_CROPS, MUST, AGREE, \
      "local crops per image") \
    X(local_crops_scale, local_crops_scale, FLOAT2, TS_N2(0.05f, 0.4f), TS_N2(0.1f, 0.4f), 0, 1, WARN, AGREE, \
      "RandomResizedCrop scale range of the local crops") \
    /* Crops keep the reference's proportions to the image: 96/224 of 28 px is 12 px, rounded up to the patch grid (14). */ \
    X(global_crop_size, global_crop_size, INT, TS_N(224), TS_N(28), 1, ARG_MAX_IMAGE_SIDE, MUST, AGREE, \
      "global crop size in pixels (a multiple of --patch_size)") \
    /* So do the blur radii: (0.1, 2.0) px at 224 px is (0.0125, 0.25) px at 28 px. */ \
    X(blur_sigma, blur_sigma, FDOUBLE2, TS_N2(0.1, 2.0), TS_N2(0.0125, 0.25), 0, TRAIN_MAX_BLUR_SIGMA, WARN, AGREE, \
      "Gaussian blur radius range (the reference's 0.1 2 suits 224-px crops)") \
    X(solarization_prob, solarization_prob, FDOUBLE, TS_N(0.2), TS_SAME, 0, 1, WARN, AGREE, \
      "solarization probability of the second global crop") \
    X(jpeg_min_side, jpeg_min_side, INT, TS_N(0), TS_SAME, 0, ARG_MAX_COUNT, WARN, AGREE, \
      "> 0: decode JPEGs at a reduced DCT scale while both sides stay >= this (faster on large photos; pixels then differ from PIL's)") \
    X(local_crop_size, local_crop_size, INT, TS_N(96), TS_N(14), 1, ARG_MAX_IMAGE_SIDE, MUST, AGREE, \
      "local crop size in pixels (a multiple of --patch_size)") \
    X(data_path, data_path, STRING, TS_S("/path/to/imagenet/train/"), TS_S("/usr/share/datasets/fashion-mnist"), 0, 0, WARN, \
      MAY_DIFFER("each host may keep the data elsewhere; ranks compare the dataset's size instead"), \
      "image folder, IDX or CIFAR files") \
    X(output_dir, output_dir, STRING, TS_S("."), TS_SAME, 0, 0, PER_RUN("the checkpoint lies in it"), \
      MAY_DIFFER("only rank 0 writes or reads output_dir"), \
      "where checkpoints and log.txt go (and resume from)") \
    X(saveckp_freq, saveckp_freq, INT, TS_N(20), TS_N(5), 0, ARG_MAX_EPOCHS, PER_RUN("which copies to keep"), AGREE, \
      "also keep checkpointNNNN.dino every this many epochs (0: never)") \
    X(seed, seed, INT, TS_N(0), TS_SAME, -ARG_MAX_COUNT, ARG_MAX_COUNT, WARN, AGREE, \
      "random seed") \
    X(num_workers, num_workers, INT, TS_N(10), TS_SAME, 0, TRAIN_MAX_WORKERS, PER_RUN("the speed of the loader"), \
      MAY_DIFFER("loader threads change how fast batches come, never what they hold"), \
      "data loading threads (capped to the cores)") \
    X(checkpoint_every_steps, checkpoint_every_steps, INT, TS_N(0), TS_SAME, 0, ARG_MAX_COUNT, PER_RUN("when to write"), AGREE, \
      "also write checkpoint.dino every N iterations (0: epoch ends only)") \
    X(log_every_steps, log_every_steps, INT, TS_N(10), TS_SAME, 0, ARG_MAX_COUNT, PER_RUN("what to log"), \
      MAY_DIFFER("only rank 0 writes log.txt and progress lines"), \
      "progress line and log.txt record every N iterations (0: epoch records only)") \
    X(stop_after_steps, stop_after_steps, I64, TS_N(0), TS_SAME, 0, ARG_MAX_COUNT, PER_RUN("where this invocation stops"), AGREE, \
      "write a checkpoint and stop once the run has done this many iterations, counted from its start, not from this resume: running the same command again does nothing (0: run to the end)") \
    X(eval_knn_every, eval_knn_every, INT, TS_N(0), TS_SAME, 0, ARG_MAX_EPOCHS, PER_RUN("what to log"), AGREE, \
      "k-NN evaluation every N epochs (0: off)") \
    X(quiet, quiet, BOOL, TS_N(0), TS_SAME, 0, 0, PER_RUN("what to print"), \
      MAY_DIFFER("only rank 0 prints; the others are always quiet"), \
      "no progress lines") \
    X(device, device, DEVICE, TS_N(0), TS_SAME, 0, 0, WARN, AGREE, \
      "cpu, or cuda (a build with make CUDA=1; docs/GPU.md)") \
    /* Master weights, gradients, AdamW moments, EMA and checkpoints stay fp32, so a run may resume in the other precision. */ \
    X(use_bf16, use_bf16, BOOL, TS_N(0), TS_SAME, 0, 0, RECORD, AGREE, \
      "bf16 mixed precision (PyTorch CPU autocast): every Linear and attention matmul of the forward and backward passes takes bf16 inputs and sums in fp32; LayerNorm, softmax, GELU, the loss, the optimizer, the EMA and the weights stay fp32. Default false: fp32 throughout. CPUs without AVX512-BF16 or AMX run fp32 and say so (docs/ENGINE.md)") \
    X(dist, dist_report, BOOL, TS_N(0), TS_SAME, 0, 0, PER_RUN("what to print"), \
      MAY_DIFFER("only rank 0 prints the report"), \
      "report every rank (host, pid, threads) at start-up; run under mpirun for data parallelism (docs/DISTRIBUTED.md)")

// The field declarations of each kind (trainer.h's TrainConfig).
#define TS_FIELD_INT(f) int f;
#define TS_FIELD_BOOL(f) int f;
#define TS_FIELD_I64(f) int64_t f;
#define TS_FIELD_FLOAT(f) float f;
#define TS_FIELD_DOUBLE(f) double f;
#define TS_FIELD_FDOUBLE(f) double f;
#define TS_FIELD_STRING(f) const char *f;
#define TS_FIELD_FLOAT2(f) float f[2];
#define TS_FIELD_FDOUBLE2(f) double f[2];
#define TS_FIELD_DEVICE(f) int f;

typedef enum {
    TS_INT, TS_BOOL, TS_I64, TS_FLOAT, TS_DOUBLE, TS_FDOUBLE, TS_STRING, TS_FLOAT2, TS_FDOUBLE2, TS_DEVICE
} TrainSettingKind;

typedef enum {
    TS_MUST_MATCH,     // another value refuses to resume
    TS_WARN,           // another value resumes with a warning
    TS_RECORDED,       // recorded only
    TS_NOT_RECORDED,   // not in the checkpoint (not_recorded says why)
} TrainSettingResume;

typedef struct {
    double num[2];
    const char *str;
    int same;  // preset column only: keep the default
} TrainSettingValue;

typedef struct {
    const char *name;  // the flag, without dashes
    TrainSettingKind kind;
    size_t offset;     // of the field in TrainConfig
    TrainSettingValue def, fmnist;
    double min, max;   // both 0: no range (strings, booleans, the device)
    TrainSettingResume resume;
    const char *not_recorded;  // TS_NOT_RECORDED: why
    const char *may_differ;  // NULL: ranks must agree; else why they need not
    const char *help;
} TrainSetting;

#define TS_N(x) {{(x), 0}, NULL, 0}
#define TS_N2(a, b) {{(a), (b)}, NULL, 0}
#define TS_S(s) {{0, 0}, (s), 0}
#define TS_SAME {{0, 0}, NULL, 1}
// The resume and ranks columns as designated initialisers of TrainSetting.
#define TS_RESUME_MUST .resume = TS_MUST_MATCH
#define TS_RESUME_WARN .resume = TS_WARN
#define TS_RESUME_RECORD .resume = TS_RECORDED
#define TS_RESUME_PER_RUN(why) .resume = TS_NOT_RECORDED, .not_recorded = why
#define TS_RANKS_AGREE .may_differ = NULL
#define TS_RANKS_MAY_DIFFER(why) .may_differ = why

extern const TrainSetting train_settings[];
extern const int train_settings_count;

#endif
