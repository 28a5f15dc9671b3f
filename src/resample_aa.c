// The antialiased bicubic resize declared in resample_aa.h. Per output index,
// PyTorch's _compute_weights_aa: a Keys cubic with a = -0.5 (not the -0.75
// of the plain bicubic), stretched by the scale when shrinking, evaluated on
// the source pixels within the support, clipped at the borders and
// normalised to sum 1. Arithmetic mixes float and double at the same points
// as PyTorch's float kernel, so the taps and weights agree bit for bit.
#include "resample_aa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static float cubic_aa(float x) {
    const float a = -0.5f;
    x = fabsf(x);
    if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f) return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
    return 0.0f;
}

// Taps of every output index along one dimension: first source index, count
// and weights (stride `maxw` per output index).
typedef struct {
    int *first, *count;
    float *w;
    int maxw;
} Taps;

static void taps_make(Taps *t, int in, int out) {
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? 2.0f * scale : 2.0f;  // interp_size 4, halved
    t->maxw = (int)ceilf(support) * 2 + 1;
    t->first = mallocCheck((size_t)out * sizeof(int));
    t->count = mallocCheck((size_t)out * sizeof(int));
    t->w = callocCheck((size_t)out * t->maxw, sizeof(float));
    float invscale = scale >= 1.0f ? (float)(1.0 / scale) : 1.0f;
    for (int i = 0; i < out; i++) {
        float center = (float)(scale * (i + 0.5));
        int64_t lo = (int64_t)(center - support + 0.5);
        if (lo < 0) lo = 0;
        int64_t hi = (int64_t)(center + support + 0.5);
        if (hi > in) hi = in;
        int64_t n = hi - lo;
        if (n < 0) n = 0;
        if (n > t->maxw) n = t->maxw;
        float *w = t->w + (size_t)i * t->maxw, total = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            w[j] = cubic_aa((float)(((float)(j + lo) - center + 0.5) * invscale));
            total += w[j];
        }
        if (total != 0.0f)
            for (int64_t j = 0; j < n; j++) w[j] /= total;
        t->first[i] = (int)lo;
        t->count[i] = (int)n;
    }
}

static void taps_free(Taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
}

// One dimension: `outer` independent lines, each of `in` (then `out`) items
// of `inner` floats; sums in tap order as PyTorch's interpolate_aa_single_dim.
static void resample_dim(float *dst, const float *src, int outer, int in, int out, size_t inner) {
    Taps t;
    taps_make(&t, in, out);
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < outer; o++)
        for (int i = 0; i < out; i++) {
            const float *w = t.w + (size_t)i * t.maxw;
            const float *s = src + ((size_t)o * in + t.first[i]) * inner;
            float *d = dst + ((size_t)o * out + i) * inner;
            for (size_t c = 0; c < inner; c++) {
                float acc = s[c] * w[0];
                for (int j = 1; j < t.count[i]; j++) acc += s[(size_t)j * inner + c] * w[j];
                d[c] = acc;
            }
        }
    taps_free(&t);
}

void bicubic_aa_forward(float *out, const float *in, int IH, int IW, int OH, int OW, int C) {
    DINO_ASSERT(IH >= 1 && IW >= 1 && OH >= 1 && OW >= 1 && C >= 1);
    float *tmp = mallocCheck((size_t)IH * OW * C * sizeof(float));
    if (OW != IW) resample_dim(tmp, in, IH, IW, OW, (size_t)C);
    else memcpy(tmp, in, (size_t)IH * IW * C * sizeof(float));
    if (OH != IH) resample_dim(out, tmp, 1, IH, OH, (size_t)OW * C);
    else memcpy(out, tmp, (size_t)IH * OW * C * sizeof(float));
    free(tmp);
}
