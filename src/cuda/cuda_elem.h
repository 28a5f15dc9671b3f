// Element arithmetic shared by the CUDA optimizer/loss kernels and their CPU
// simulation (cuda_plan.c). On the device every operation is an explicitly
// rounded intrinsic, so nvcc cannot contract a multiply and an add into an
// FMA that the CPU code does not have; on the host the same expressions are
// plain C, compiled with -std=c11 (no contraction). Each function repeats,
// operation for operation, the CPU code it names, so the GPU results are
// bit-identical to src/train/optim.c and src/train/loss.c.
#ifndef DINO_CUDA_ELEM_H
#define DINO_CUDA_ELEM_H

#include <math.h>
#include <stddef.h>

#if defined(__CUDACC__)
#define CUDA_ELEM_FN static __host__ __device__ __forceinline__
#else
#define CUDA_ELEM_FN static inline
#endif

#if defined(__CUDA_ARCH__)
#define EL_ADD(a, b) __fadd_rn((a), (b))
#define EL_SUB(a, b) __fsub_rn((a), (b))
#define EL_MUL(a, b) __fmul_rn((a), (b))
#define EL_DIV(a, b) __fdiv_rn((a), (b))
#define EL_SQRT(a) __fsqrt_rn(a)
#define EL_FMA(a, b, c) __fmaf_rn((a), (b), (c))
#else
#define EL_ADD(a, b) ((a) + (b))
#define EL_SUB(a, b) ((a) - (b))
#define EL_MUL(a, b) ((a) * (b))
#define EL_DIV(a, b) ((a) / (b))
#define EL_SQRT(a) sqrtf(a)
#define EL_FMA(a, b, c) fmaf((a), (b), (c))
#endif

// optim.c adamw_tensor, one element: decoupled decay, lerp of m, v, update.
CUDA_ELEM_FN void el_adamw(float *p, float *m, float *v, float g, float neg_ss, float bc2s,
                           float decay, int do_decay, float w1, float b2f, float w2, float eps) {
    float pi = *p;
    if (do_decay) pi = EL_MUL(pi, decay);
    float mi = EL_FMA(w1, EL_SUB(g, *m), *m);
    float vi = EL_MUL(*v, b2f);
    vi = EL_FMA(EL_MUL(w2, g), g, vi);
    float denom = EL_ADD(EL_DIV(EL_SQRT(vi), bc2s), eps);
    *m = mi;
    *v = vi;
    *p = EL_ADD(pi, EL_DIV(EL_MUL(neg_ss, mi), denom));
}

// optim.c ema_update: t·m + (1−m)·s.
CUDA_ELEM_FN float el_ema(float t, float s, float mf, float om) {
    return EL_ADD(EL_MUL(t, mf), EL_MUL(om, s));
}

// loss.c dino_center_update: c·m + (sum/count)·(1−m).
CUDA_ELEM_FN float el_center(float c, float sum, float cnt, float mf, float om) {
    return EL_ADD(EL_MUL(c, mf), EL_MUL(EL_DIV(sum, cnt), om));
}

// ---- layout index maps, shared with the CPU tests ----

// Element i of a head-major (Bc,NH,T,hd) tensor comes from (goes to) this
// offset of a token-major (Bc,T,ld) tensor whose part `part` (q 0, k 1, v 2)
// is D wide, head h at columns h·hd.
CUDA_ELEM_FN size_t el_head_offset(size_t i, int ld, int part, int T, int D, int NH) {
    int hd = D / NH;
    int d = (int)(i % (size_t)hd);
    size_t r = i / (size_t)hd;
    int t = (int)(r % (size_t)T);
    size_t bh = r / (size_t)T;
    int h = (int)(bh % (size_t)NH);
    size_t b = bh / (size_t)NH;
    return (b * T + t) * (size_t)ld + (size_t)part * D + (size_t)h * hd + d;
}

// Element i of cols (B·GH·GW, C·p·p) comes from this offset of img (B,C,H,W).
CUDA_ELEM_FN size_t el_unfold_offset(size_t i, int C, int H, int W, int p) {
    int GH = H / p, GW = W / p, K = C * p * p;
    int e = (int)(i % (size_t)K);
    size_t patch = i / (size_t)K;
    int c = (int)(patch % (size_t)GW), r = (int)((patch / (size_t)GW) % (size_t)GH);
    size_t b = patch / ((size_t)GW * GH);
    int kx = e % p, ky = (e / p) % p, ch = e / (p * p);
    return ((b * C + ch) * H + (size_t)r * p + ky) * W + (size_t)c * p + kx;
}

// Pixel i of dimg (B,C,H,W) comes from this offset of dcols, or is outside
// the patch grid (returns (size_t)-1: the pixel gets 0).
CUDA_ELEM_FN size_t el_fold_offset(size_t i, int C, int H, int W, int p) {
    int GH = H / p, GW = W / p, K = C * p * p;
    int x = (int)(i % (size_t)W), y = (int)((i / (size_t)W) % (size_t)H);
    size_t bc = i / ((size_t)W * H);
    int ch = (int)(bc % (size_t)C);
    size_t b = bc / (size_t)C;
    int r = y / p, c = x / p;
    if (r >= GH || c >= GW) return (size_t)-1;
    return ((b * GH + r) * GW + c) * (size_t)K + (size_t)(ch * p + y % p) * p + x % p;
}

#endif
