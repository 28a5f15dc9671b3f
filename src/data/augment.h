// DINO's multi-crop augmentation (docs/DINO.md §5, docs/AUGMENTATION.md): 2 global + N local
// RandomResizedCrops (bicubic), flip, colour jitter, grayscale, Gaussian
// blur, solarize (global 2), ToTensor+Normalize. Split into drawing the
// random parameters of one crop (from a stream keyed by seed, epoch, dataset
// index and crop) and applying given parameters, so tests can feed the
// parameters that torchvision used and compare pixels exactly.
#ifndef DINO_AUGMENT_H
#define DINO_AUGMENT_H

#include <stdint.h>

#include "data/dataset.h"
#include "image/decode.h"
#include "rng.h"

typedef struct {
    int global_size;         // 224
    int local_size;          // 96
    int n_local;             // local_crops_number, 8
    float global_scale[2];   // (0.4, 1.0)
    float local_scale[2];    // (0.05, 0.4)
    // Gaussian blur radius range. The reference's (0.1, 2.0) is meant for
    // 224-px crops; small images want it scaled with the crop size.
    double blur_sigma[2];    // (0.1, 2.0)
    double solarize_p;       // probability on global crop 2: 0.2
} AugmentConfig;

void augment_config_default(AugmentConfig *cfg);

typedef struct {
    int i, j, h, w;          // crop box: top, left, height, width in the source
    int flip;
    int jitter;              // colour jitter applied (RandomApply p = 0.8)
    int perm[4];             // operation order: 0 brightness, 1 contrast, 2 saturation, 3 hue
    float brightness, contrast, saturation, hue;
    int gray;
    int blur;
    float sigma;             // Gaussian blur radius (σ) when blur
    int solarize;
} CropParams;

// Crops are numbered 0, 1 (global) and 2 .. 1+n_local (local).
int augment_num_crops(const AugmentConfig *cfg);
int augment_crop_size(const AugmentConfig *cfg, int crop);

// RandomResizedCrop.get_params (docs/AUGMENTATION.md §2) for a W×H image with scale
// range [s0, s1] and ratio (3/4, 4/3): float32 draws, half-to-even rounding,
// 10 attempts then the centre fallback.
void augment_rrc_params(Rng *r, int W, int H, float s0, float s1, int *i, int *j, int *h, int *w);
// All random parameters of crop `crop`, drawn from r in the order of the reference.
void augment_draw(const AugmentConfig *cfg, int crop, int W, int H, Rng *r, CropParams *p);
// The keyed stream: rng_stream(RNG_AUGMENT, seed, epoch, index, crop).
void augment_params_for(const AugmentConfig *cfg, uint64_t seed, int epoch, int64_t index,
                        int crop, int W, int H, CropParams *p);

// Applies p to src, producing size×size×3 uint8 in out (before ToTensor).
void augment_apply_u8(const Image *src, const CropParams *p, int size, uint8_t *out);
// The same, then ToTensor + ImageNet Normalize into out (3, size, size);
// scratch holds size·size·3 bytes.
void augment_apply(const Image *src, const CropParams *p, int size, float *out, uint8_t *scratch);

// The evaluation transform of eval_knn/eval_linear/`dino features`:
// Resize(shorter side -> crop·256/224, bicubic), CenterCrop(crop), ToTensor,
// Normalize. out is (3, crop, crop).
int eval_resize_size(int crop);
// The Resize's intermediate image may hold at most as many pixels as the
// largest image decoded: only aspect ratios past about 1:1365 at crop 224
// reach it, and a 100,000x1 image would otherwise need 19.7 GB.
#define EVAL_MAX_RESIZED_PIXELS IMAGE_MAX_PIXELS
// The Resize's output size for a W×H image (*nw, *nh). Returns 0, or -1 with
// err filled when it would exceed EVAL_MAX_RESIZED_PIXELS: the image cannot
// be transformed, and eval_transform_u8 must not be called on it.
int eval_resize_dims(int W, int H, int crop, int *nw, int *nh, char *err, size_t errlen);
void eval_transform_u8(const Image *src, int crop, uint8_t *out);
void eval_transform(const Image *src, int crop, float *out);

#endif
