#include "eval/segvideo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "eval/labelprop.h"
#include "image/ops.h"
#include "image/resize_video.h"

// The reference's color_normalize: note std 0.228 for red, not ImageNet's 0.229.
static const float VOS_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float VOS_STD[3] = {0.228f, 0.224f, 0.225f};

void segvideo_config_default(SegVideoConfig *c) {
    c->image_size = 480;
    c->n_last_frames = 7;
    c->neighborhood = 12;
    c->topk = 5;
}

struct SegVideo {
    SegVideoConfig c;
    const ViTConfig *vc;
    const ViTWeights *vw;
    int w, h;      // original frame size
    int rw, rh;    // resized frame
    int gw, gh;    // patch grid
    int C;         // mask channels
    ViTActs *acts;
    uint8_t *resized;  // (rh, rw, 3)
    float *x;          // (3, gh·p, gw·p)
    float *first_feat, *first_seg;
    // The previous frames, oldest first: features (gh·gw, D) and soft masks (C, gh·gw).
    float **feats, **segs;
    int nqueue;
    float *out_seg, *up;
    uint8_t *small_labels;  // (gh·p, gw·p)
};

// Last-layer patch tokens after the final norm, without CLS, into feat (gh·gw, D).
static void frame_features(SegVideo *s, const uint8_t *rgb, float *feat) {
    int p = s->vc->patch, H = s->gh * p, W = s->gw * p;
    resize_cv_linear(s->resized, s->rw, s->rh, rgb, s->w, s->h, 3);
    // The patch embedding's stride drops what lies beyond whole patches; crop it here.
    uint8_t *crop = s->resized;
    uint8_t *tmp = NULL;
    if (W != s->rw || H != s->rh) {
        tmp = mallocCheck((size_t)W * H * 3);
        for (int y = 0; y < H; y++) memcpy(tmp + (size_t)y * W * 3, s->resized + (size_t)y * s->rw * 3, (size_t)W * 3);
        crop = tmp;
    }
    image_to_tensor(s->x, crop, W, H, VOS_MEAN, VOS_STD);
    free(tmp);
    vit_forward(s->vc, s->vw, s->acts, s->x, 1, NULL);
    const float *tok = vit_output(s->acts);
    memcpy(feat, tok + s->vc->dim, sizeof(float) * (size_t)s->gh * s->gw * s->vc->dim);
}

SegVideo *segvideo_begin(const SegVideoConfig *c, const ViTConfig *vc, const ViTWeights *vw,
                         const uint8_t *rgb, int w, int h, const uint8_t *labels, char *err,
                         size_t errlen) {
    int p = vc->patch, rw, rh;
    if (c->image_size < 1 || c->n_last_frames < 0 || c->n_last_frames > SEGVIDEO_MAX_CONTEXT || c->topk < 1 ||
        c->neighborhood < 0) {
        dino_errf(err, errlen, "bad settings: image_size %d, n_last_frames %d, topk %d, neighborhood %d",
                  c->image_size, c->n_last_frames, c->topk, c->neighborhood);
        return NULL;
    }
    video_frame_size(w, h, c->image_size, &rw, &rh);
    if (rw / p < 1 || rh / p < 1) {
        dino_errf(err, errlen, "a %dx%d frame resized for --image_size %d is %dx%d, smaller than one %dx%d patch",
                  w, h, c->image_size, rw, rh, p, p);
        return NULL;
    }
    SegVideo *s = callocCheck(1, sizeof *s);
    s->c = *c, s->vc = vc, s->vw = vw, s->w = w, s->h = h, s->rw = rw, s->rh = rh;
    s->gw = rw / p, s->gh = rh / p;
    int hw = s->gw * s->gh, D = vc->dim;
    // read_seg: the mask resized to the grid with Pillow's nearest, one channel per label up to its maximum.
    uint8_t *small = mallocCheck((size_t)hw);
    resize_pil_nearest(small, s->gw, s->gh, labels, w, h);
    int maxl = 0;
    for (int i = 0; i < hw; i++)
        if (small[i] > maxl) maxl = small[i];
    s->C = maxl + 1;
    s->first_seg = callocCheck((size_t)s->C * hw, sizeof(float));
    for (int i = 0; i < hw; i++) s->first_seg[(size_t)small[i] * hw + i] = 1.0f;
    free(small);

    s->acts = vit_acts_create(vc, 1, s->gh * p, s->gw * p, 0);
    s->resized = mallocCheck((size_t)rw * rh * 3);
    s->x = mallocCheck(sizeof(float) * 3 * (size_t)s->gh * p * s->gw * p);
    s->first_feat = mallocCheck(sizeof(float) * (size_t)hw * D);
    s->feats = callocCheck((size_t)c->n_last_frames + 1, sizeof(float *));
    s->segs = callocCheck((size_t)c->n_last_frames + 1, sizeof(float *));
    s->out_seg = mallocCheck(sizeof(float) * (size_t)s->C * hw);
    s->up = mallocCheck(sizeof(float) * (size_t)s->C * hw * p * p);
    s->small_labels = mallocCheck((size_t)hw * p * p);
    frame_features(s, rgb, s->first_feat);
    return s;
}

int segvideo_next(SegVideo *s, const uint8_t *rgb, uint8_t *labels, char *err, size_t errlen) {
    int p = s->vc->patch, hw = s->gw * s->gh, D = s->vc->dim;
    float *feat = mallocCheck(sizeof(float) * (size_t)hw * D);
    frame_features(s, rgb, feat);
    // Context: the first frame, then the previous ones oldest first (the reference's queue order).
    const float *cf[64], *cs[64];
    const float **ctx_f = cf, **ctx_s = cs;
    int n = 1 + s->nqueue;
    if (n > 64) {
        ctx_f = mallocCheck(sizeof(float *) * n);
        ctx_s = mallocCheck(sizeof(float *) * n);
    }
    ctx_f[0] = s->first_feat, ctx_s[0] = s->first_seg;
    for (int i = 0; i < s->nqueue; i++) ctx_f[1 + i] = s->feats[i], ctx_s[1 + i] = s->segs[i];
    LabelProp lp = {.h = s->gh, .w = s->gw, .dim = D, .n_classes = s->C, .neighborhood = s->c.neighborhood,
                    .topk = s->c.topk, .temperature = 0.1f};
    int rc = labelprop_propagate(&lp, feat, ctx_f, ctx_s, n, s->out_seg, err, errlen);
    if (ctx_f != cf) free(ctx_f), free(ctx_s);
    if (rc != 0) {
        free(feat);
        return -1;
    }
    labelprop_upsample(s->out_seg, s->C, s->gh, s->gw, p, s->up);
    labelprop_argmax(s->up, s->C, (size_t)hw * p * p, s->small_labels);
    resize_pil_nearest(labels, s->w, s->h, s->small_labels, s->gw * p, s->gh * p);
    // Queue the frame: drop the oldest when full.
    if (s->c.n_last_frames == 0) {
        free(feat);
        return 0;
    }
    float *seg = mallocCheck(sizeof(float) * (size_t)s->C * hw);
    memcpy(seg, s->out_seg, sizeof(float) * (size_t)s->C * hw);
    if (s->nqueue == s->c.n_last_frames) {
        free(s->feats[0]), free(s->segs[0]);
        memmove(s->feats, s->feats + 1, sizeof(float *) * (size_t)(s->nqueue - 1));
        memmove(s->segs, s->segs + 1, sizeof(float *) * (size_t)(s->nqueue - 1));
        s->nqueue--;
    }
    s->feats[s->nqueue] = feat, s->segs[s->nqueue] = seg;
    s->nqueue++;
    return 0;
}

void segvideo_grid(const SegVideo *s, int *resized_w, int *resized_h, int *grid_w, int *grid_h,
                   int *n_classes) {
    *resized_w = s->rw, *resized_h = s->rh, *grid_w = s->gw, *grid_h = s->gh, *n_classes = s->C;
}

const float *segvideo_soft_mask(const SegVideo *s) { return s->out_seg; }

void segvideo_free(SegVideo *s) {
    if (!s) return;
    for (int i = 0; i < s->nqueue; i++) free(s->feats[i]), free(s->segs[i]);
    free(s->feats), free(s->segs);
    vit_acts_free(s->acts);
    free(s->resized), free(s->x), free(s->first_feat), free(s->first_seg);
    free(s->out_seg), free(s->up), free(s->small_labels);
    free(s);
}

void segvideo_overlay(const uint8_t *rgb, const uint8_t *labels, int w, int h,
                      const uint8_t *palette, int ncolors, uint8_t *out) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            int l = labels[i];
            for (int c = 0; c < 3; c++) out[3 * i + c] = rgb[3 * i + c];
            if (l == 0) continue;
            uint8_t col[3] = {255, 255, 255};
            if (l < ncolors) memcpy(col, palette + 3 * l, 3);
            // The outline: where a neighbour (4-connected) has another label.
            int edge = (x > 0 && labels[i - 1] != l) || (x + 1 < w && labels[i + 1] != l) ||
                       (y > 0 && labels[i - w] != l) || (y + 1 < h && labels[i + w] != l);
            for (int c = 0; c < 3; c++)
                out[3 * i + c] = edge ? col[c] : (uint8_t)((rgb[3 * i + c] + col[c] + 1) / 2);
        }
}
