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

#endif
