// Patch embedding layout twins (unfold/fold, pure copies, bit-identical to
// the CPU) and the bicubic resize of the position embedding (forward and its
// adjoint), computed with the CPU's float operations in the CPU's order and
// explicitly rounded intrinsics, so both are bit-identical to ops_cpu.c. The
// adjoint is a gather: one thread per input cell walks the outputs in the
// CPU's (oy, ox, tap y, tap x) order, so it is deterministic with no atomics.
#include "cuda/cuda_common.cuh"
#include "cuda/cuda_elem.h"

__global__ void patch_unfold_kernel(float *cols, const float *img, int B, int C, int H, int W,
                                    int p) {
    size_t total = (size_t)B * (H / p) * (W / p) * C * p * p;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        cols[i] = img[el_unfold_offset(i, C, H, W, p)];
}

// One thread per image pixel; pixels outside the patch grid get 0.
__global__ void patch_fold_kernel(float *dimg, const float *dcols, int B, int C, int H, int W,
                                  int p) {
    size_t total = (size_t)B * C * H * W;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t o = el_fold_offset(i, C, H, W, p);
        dimg[i] = o == (size_t)-1 ? 0.0f : dcols[o];
    }
}

extern "C" void patch_unfold_cuda(float *cols, const float *img, int B, int C, int H, int W, int p,
                                  cudaStream_t stream) {
    size_t n = (size_t)B * (H / p) * (W / p) * C * p * p;
    if (n == 0) return;
    patch_unfold_kernel<<<grid_for(n, 256), 256, 0, stream>>>(cols, img, B, C, H, W, p);
    CUDA_CHECK_LAUNCH();
}

extern "C" void patch_fold_cuda(float *dimg, const float *dcols, int B, int C, int H, int W, int p,
                                cudaStream_t stream) {
    size_t n = (size_t)B * C * H * W;
    if (n == 0) return;
    patch_fold_kernel<<<grid_for(n, 256), 256, 0, stream>>>(dimg, dcols, B, C, H, W, p);
    CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- bicubic

// ops_cpu.c cubic_taps, operation for operation (no contraction).
__device__ void cubic_taps_dev(int out_idx, float scale, int in_size, int idx[4], float wt[4]) {
    const float A = -0.75f;
    float real = __fsub_rn(__fmul_rn(scale, __fadd_rn((float)out_idx, 0.5f)), 0.5f);
    long long i0 = (long long)floorf(real);
    if (i0 > in_size - 1) i0 = in_size - 1;
    float t = __fsub_rn(real, (float)i0);
    if (t < 0.0f) t = 0.0f;
    if (t > 1.0f) t = 1.0f;
    float x1 = __fadd_rn(t, 1.0f), x2 = __fsub_rn(1.0f, t), x3 = __fsub_rn(2.0f, t);
    // ((A·x − 5A)·x + 8A)·x − 4A for the outer taps
    wt[0] = __fsub_rn(__fmul_rn(__fadd_rn(__fmul_rn(__fsub_rn(__fmul_rn(A, x1), 5.0f * A), x1), 8.0f * A), x1), 4.0f * A);
    // ((A+2)·t − (A+3))·t·t + 1 for the inner taps
    wt[1] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(__fmul_rn(A + 2.0f, t), A + 3.0f), t), t), 1.0f);
    wt[2] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(__fmul_rn(A + 2.0f, x2), A + 3.0f), x2), x2), 1.0f);
    wt[3] = __fsub_rn(__fmul_rn(__fadd_rn(__fmul_rn(__fsub_rn(__fmul_rn(A, x3), 5.0f * A), x3), 8.0f * A), x3), 4.0f * A);
    for (int j = 0; j < 4; j++) {
        long long k = i0 - 1 + j;
        idx[j] = (int)(k < 0 ? 0 : (k > in_size - 1 ? in_size - 1 : k));
    }
}

__global__ void bicubic_forward_kernel(float *out, const float *in, int IH, int IW, int OH, int OW,
                                       int C, float scale_h, float scale_w) {
    size_t total = (size_t)OH * OW * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C), ox = (int)((i / C) % OW), oy = (int)(i / ((size_t)C * OW));
        int iy[4], ix[4];
        float wy[4], wx[4];
        cubic_taps_dev(oy, scale_h, IH, iy, wy);
        cubic_taps_dev(ox, scale_w, IW, ix, wx);
        float acc = 0.0f;
        for (int j = 0; j < 4; j++) {
            const float *row = in + (size_t)iy[j] * IW * C + c;
            float r = __fmul_rn(row[(size_t)ix[0] * C], wx[0]);
            r = __fadd_rn(r, __fmul_rn(row[(size_t)ix[1] * C], wx[1]));
            r = __fadd_rn(r, __fmul_rn(row[(size_t)ix[2] * C], wx[2]));
            r = __fadd_rn(r, __fmul_rn(row[(size_t)ix[3] * C], wx[3]));
            acc = __fadd_rn(acc, __fmul_rn(r, wy[j]));
        }
        out[i] = acc;
    }
}

__global__ void bicubic_backward_kernel(float *din, const float *dout, int IH, int IW, int OH,
                                        int OW, int C, float scale_h, float scale_w) {
    size_t total = (size_t)IH * IW * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C), mx = (int)((i / C) % IW), my = (int)(i / ((size_t)C * IW));
        float acc = din[i];
        for (int oy = 0; oy < OH; oy++) {
            int iy[4], ix[4];
            float wy[4], wx[4];
            cubic_taps_dev(oy, scale_h, IH, iy, wy);
            if (iy[0] != my && iy[1] != my && iy[2] != my && iy[3] != my) continue;
            for (int ox = 0; ox < OW; ox++) {
                cubic_taps_dev(ox, scale_w, IW, ix, wx);
                if (ix[0] != mx && ix[1] != mx && ix[2] != mx && ix[3] != mx) continue;
                float g = dout[((size_t)oy * OW + ox) * C + c];
                for (int j = 0; j < 4; j++) {
                    if (iy[j] != my) continue;
                    for (int k = 0; k < 4; k++)
                        if (ix[k] == mx) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy[j], wx[k]), g));
                }
            }
        }
        din[i] = acc;
    }
}

extern "C" void bicubic_forward_cuda(float *out, const float *in, int IH, int IW, int OH, int OW,
                                     int C, float scale_h, float scale_w, cudaStream_t stream) {
    size_t n = (size_t)OH * OW * C;
    if (n == 0) return;
    bicubic_forward_kernel<<<grid_for(n, 256), 256, 0, stream>>>(out, in, IH, IW, OH, OW, C, scale_h,
                                                                 scale_w);
    CUDA_CHECK_LAUNCH();
}

extern "C" void bicubic_backward_cuda(float *din, const float *dout, int IH, int IW, int OH, int OW,
                                      int C, float scale_h, float scale_w, cudaStream_t stream) {
    size_t n = (size_t)IH * IW * C;
    if (n == 0) return;
    bicubic_backward_kernel<<<grid_for(n, 128), 128, 0, stream>>>(din, dout, IH, IW, OH, OW, C,
                                                                  scale_h, scale_w);
    CUDA_CHECK_LAUNCH();
}
