// Multi-crop augmentation: parameter drawing mirrors the order and the
// float32/double arithmetic of torchvision's RandomResizedCrop, flip,
// RandomApply(ColorJitter), RandomGrayscale and DINO's GaussianBlur and
// Solarization (docs/AUGMENTATION.md), but from our keyed stream, not torch's
// MT19937. Pixel operations are the Pillow-exact ones of src/image/.
#include "data/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "image/ops.h"

void augment_config_default(AugmentConfig *cfg) {
    cfg->global_size = 224;
    cfg->local_size = 96;
    cfg->n_local = 8;
    cfg->global_scale[0] = 0.4f;
    cfg->global_scale[1] = 1.0f;
    cfg->local_scale[0] = 0.05f;
    cfg->local_scale[1] = 0.4f;
    cfg->blur_sigma[0] = 0.1;
    cfg->blur_sigma[1] = 2.0;
    cfg->solarize_p = 0.2;
}

int augment_num_crops(const AugmentConfig *cfg) { return 2 + cfg->n_local; }

int augment_crop_size(const AugmentConfig *cfg, int crop) {
    return crop < 2 ? cfg->global_size : cfg->local_size;
}

// torch's uniform_(a, b) on float32: x·(b−a) + a. The product of a 24-bit
// x and a float32 is exact in double, so computing in double and rounding
// once gives the same float whether or not the compiler fuses the add.
static float uniform_f32(Rng *r, float a, float b) {
    float x = rng_uniform(r);
    return (float)((double)x * (double)(b - a) + (double)a);
}

void augment_rrc_params(Rng *r, int W, int H, float s0, float s1, int *oi, int *oj, int *oh,
                        int *ow) {
    double area = (double)((int64_t)W * H);
    const float lr0 = logf(0.75f), lr1 = logf(4.0f / 3.0f);
    for (int attempt = 0; attempt < 10; attempt++) {
        float s = uniform_f32(r, s0, s1);
        double target = area * (double)s;
        float e = uniform_f32(r, lr0, lr1);
        double aspect = (double)expf(e);
        int w = (int)nearbyint(sqrt(target * aspect));  // Python round: half to even
        int h = (int)nearbyint(sqrt(target / aspect));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            *oi = (int)rng_below(r, (uint32_t)(H - h + 1));
            *oj = (int)rng_below(r, (uint32_t)(W - w + 1));
            *oh = h;
            *ow = w;
            return;
        }
    }
    double ratio = (double)W / (double)H;
    int w, h;
    if (ratio < 0.75) {
        w = W;
        h = (int)nearbyint(W / 0.75);
    } else if (ratio > 4.0 / 3.0) {
        h = H;
        w = (int)nearbyint(H * (4.0 / 3.0));
    } else {
        w = W;
        h = H;
    }
    // Python floor division; h may exceed H by rounding, giving a negative offset.
    int di = H - h, dj = W - w;
    *oi = di >= 0 ? di / 2 : -((-di + 1) / 2);
    *oj = dj >= 0 ? dj / 2 : -((-dj + 1) / 2);
    *oh = h;
    *ow = w;
}

void augment_draw(const AugmentConfig *cfg, int crop, int W, int H, Rng *r, CropParams *p) {
    memset(p, 0, sizeof *p);
    const float *sc = crop < 2 ? cfg->global_scale : cfg->local_scale;
    augment_rrc_params(r, W, H, sc[0], sc[1], &p->i, &p->j, &p->h, &p->w);
    p->flip = rng_uniform(r) < 0.5f;
    // RandomApply: skipped when p < u, i.e. applied when u <= f32(0.8).
    p->jitter = rng_uniform(r) <= 0.8f;
    for (int k = 0; k < 4; k++) p->perm[k] = k;
    p->brightness = p->contrast = p->saturation = 1.0f;
    p->hue = 0.0f;
    if (p->jitter) {
        for (int k = 0; k < 3; k++) {  // torch randperm(4)
            int z = k + (int)rng_below(r, (uint32_t)(4 - k));
            int t = p->perm[k];
            p->perm[k] = p->perm[z];
            p->perm[z] = t;
        }
        // Current torchvision order: brightness, contrast, saturation, hue.
        p->brightness = uniform_f32(r, (float)(1.0 - 0.4), (float)(1.0 + 0.4));
        p->contrast = uniform_f32(r, (float)(1.0 - 0.4), (float)(1.0 + 0.4));
        p->saturation = uniform_f32(r, (float)(1.0 - 0.2), (float)(1.0 + 0.2));
        p->hue = uniform_f32(r, -0.1f, 0.1f);
    }
    p->gray = rng_uniform(r) < 0.2f;
    double blur_p = crop == 0 ? 1.0 : crop == 1 ? 0.1 : 0.5;
    // DINO's GaussianBlur: random.random() <= p, then uniform(0.1, 2.0).
    p->blur = rng_uniform_double(r) <= blur_p;
    double s0 = cfg->blur_sigma[0], s1 = cfg->blur_sigma[1];
    if (p->blur) p->sigma = (float)(s0 + (s1 - s0) * rng_uniform_double(r));
    if (p->blur && p->sigma <= 0) p->blur = 0;
    if (crop == 1) p->solarize = rng_uniform_double(r) < cfg->solarize_p;
}

void augment_params_for(const AugmentConfig *cfg, uint64_t seed, int epoch, int64_t index,
                        int crop, int W, int H, CropParams *p) {
    Rng r;
    rng_stream(&r, RNG_AUGMENT, seed, (uint64_t)epoch, (uint64_t)index, (uint64_t)crop);
    augment_draw(cfg, crop, W, H, &r, p);
}

void augment_apply_u8(const Image *src, const CropParams *p, int size, uint8_t *out) {
    DINO_ASSERT(p->i >= 0 && p->j >= 0 && p->i + p->h <= src->h && p->j + p->w <= src->w);
    image_resize_region(out, size, size, src->rgb, src->w * 3, p->j, p->i, p->w, p->h,
                        RESAMPLE_BICUBIC);
    int n = size * size;
    if (p->flip) image_hflip(out, size, size);
    if (p->jitter)
        for (int k = 0; k < 4; k++) {
            switch (p->perm[k]) {
            case 0: image_brightness(out, n, p->brightness); break;
            case 1: image_contrast(out, n, p->contrast); break;
            case 2: image_saturation(out, n, p->saturation); break;
            default: image_hue(out, n, (double)p->hue); break;
            }
        }
    if (p->gray) image_grayscale(out, n);
    if (p->blur) image_gaussian_blur(out, size, size, p->sigma);
    if (p->solarize) image_solarize(out, n);
}

void augment_apply(const Image *src, const CropParams *p, int size, float *out, uint8_t *scratch) {
    augment_apply_u8(src, p, size, scratch);
    image_to_tensor(out, scratch, size, size, IMAGENET_MEAN, IMAGENET_STD);
}

// ---------------------------------------------------------------- evaluation

int eval_resize_size(int crop) { return crop * 256 / 224; }

int eval_resize_dims(int W, int H, int crop, int *nw, int *nh, char *err, size_t errlen) {
    // torchvision Resize(int): the shorter side becomes s, the longer
    // int(s·long/short), computed in double and checked before the cast
    // (an 89,000,000x1 image gives a long side past INT_MAX).
    int s = eval_resize_size(crop);
    int wide = W > H;
    double longer = floor(wide ? (double)s * W / H : (double)s * H / W);
    if (!(longer * s <= (double)EVAL_MAX_RESIZED_PIXELS))
        return dino_errf(err, errlen,
                         "a %dx%d image resized to %d pixels on its shorter side (for crop %d) "
                         "would have %.0f pixels, above the limit of %lld",
                         W, H, s, crop, longer * s, (long long)EVAL_MAX_RESIZED_PIXELS);
    *nw = wide ? (int)longer : s;
    *nh = wide ? s : (int)longer;
    return 0;
}

void eval_transform_u8(const Image *src, int crop, uint8_t *out) {
    // Resize(int), then CenterCrop with Python-rounded offsets.
    int W = src->w, H = src->h, nw, nh;
    char err[256];
    if (eval_resize_dims(W, H, crop, &nw, &nh, err, sizeof err) != 0)
        dino_fatal_at(__FILE__, __LINE__, "%s (callers check eval_resize_dims first)", err);
    uint8_t *tmp = mallocCheck((size_t)nw * nh * 3);
    image_resize_region(tmp, nw, nh, src->rgb, W * 3, 0, 0, W, H, RESAMPLE_BICUBIC);
    // If the resized image is smaller than the crop (only for crop > s),
    // torchvision pads with zeros first; s >= crop always here.
    DINO_ASSERT(nw >= crop && nh >= crop);
    int top = (int)nearbyint((nh - crop) / 2.0), left = (int)nearbyint((nw - crop) / 2.0);
    for (int y = 0; y < crop; y++)
        memcpy(out + (size_t)y * crop * 3, tmp + ((size_t)(y + top) * nw + left) * 3, (size_t)crop * 3);
    free(tmp);
}

void eval_transform(const Image *src, int crop, float *out) {
    uint8_t *u = mallocCheck((size_t)crop * crop * 3);
    eval_transform_u8(src, crop, u);
    image_to_tensor(out, u, crop, crop, IMAGENET_MEAN, IMAGENET_STD);
    free(u);
}
