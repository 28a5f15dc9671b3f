// Row-norm twins (ops.h): F.normalize (l2norm) and the weight-normalised last
// layer of the DINO head (weightnorm), one warp per row. Same formulas and
// operation order per element as the CPU; the row sums differ only in order.
#include "cuda/cuda_common.cuh"

#define ROWS_PER_BLOCK 8

static unsigned row_blocks(int N) { return (unsigned)((N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

// The row of the calling warp (ROWS_PER_BLOCK warps per block); *lane its lane.
__device__ __forceinline__ int warp_row(int *lane) {
    *lane = threadIdx.x % WARP;
    return blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
}

// ||x||₂ of one row of C floats, summed by the warp (every lane gets it).
__device__ __forceinline__ float row_norm(const float *x, int C, int lane) {
    float ss = 0.0f;
    for (int j = lane; j < C; j += WARP) ss += x[j] * x[j];
    return __fsqrt_rn(warp_sum(ss));
}

__global__ void l2norm_forward_kernel(float *out, float *norm, const float *inp, int N, int C,
                                      float eps) {
    int lane, row = warp_row(&lane);
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float n = row_norm(x, C, lane);
    if (norm && lane == 0) norm[row] = n;
    float d = n > eps ? n : eps;
    for (int j = lane; j < C; j += WARP) out[(size_t)row * C + j] = __fdiv_rn(x[j], d);
}

__global__ void l2norm_backward_kernel(float *dinp, const float *dout, const float *out,
                                       const float *norm, int N, int C, float eps) {
    int lane, row = warp_row(&lane);
    if (row >= N) return;
    const float *y = out + (size_t)row * C, *dy = dout + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    float n = norm[row];
    if (n > eps) {
        float dot = 0.0f;
        for (int j = lane; j < C; j += WARP) dot += y[j] * dy[j];
        dot = warp_sum(dot);
        float inv = __fdiv_rn(1.0f, n);
        for (int j = lane; j < C; j += WARP) dx[j] = (dy[j] - y[j] * dot) * inv;
    } else {
        for (int j = lane; j < C; j += WARP) dx[j] = __fdiv_rn(dy[j], eps);
    }
}

extern "C" void l2norm_forward_cuda(float *out, float *norm, const float *inp, int N, int C,
                                    float eps, cudaStream_t stream) {
    if (N == 0) return;
    l2norm_forward_kernel<<<row_blocks(N), ROWS_PER_BLOCK * WARP, 0, stream>>>(out, norm, inp, N, C,
                                                                               eps);
    CUDA_CHECK_LAUNCH();
}

extern "C" void l2norm_backward_cuda(float *dinp, const float *dout, const float *out,
                                     const float *norm, int N, int C, float eps,
                                     cudaStream_t stream) {
    if (N == 0) return;
    l2norm_backward_kernel<<<row_blocks(N), ROWS_PER_BLOCK * WARP, 0, stream>>>(dinp, dout, out,
                                                                                norm, N, C, eps);
    CUDA_CHECK_LAUNCH();
}

__global__ void weightnorm_forward_kernel(float *w, float *vnorm, const float *g, const float *v,
                                          int O, int In) {
    int lane, o = warp_row(&lane);
    if (o >= O) return;
    const float *vr = v + (size_t)o * In;
    float n = row_norm(vr, In, lane);
    if (lane == 0) vnorm[o] = n;
    float f = __fdiv_rn(g[o], n);
    for (int j = lane; j < In; j += WARP) w[(size_t)o * In + j] = __fmul_rn(vr[j], f);
}

__global__ void weightnorm_backward_kernel(float *dg, float *dv, const float *dw, const float *g,
                                           const float *v, const float *vnorm, int O, int In) {
    int lane, o = warp_row(&lane);
    if (o >= O) return;
    const float *vr = v + (size_t)o * In, *dwr = dw + (size_t)o * In;
    float *dvr = dv + (size_t)o * In;
    float s = 0.0f;
    for (int j = lane; j < In; j += WARP) s += dwr[j] * vr[j];
    s = warp_sum(s);
    float n = vnorm[o];
    if (dg && lane == 0) dg[o] += __fdiv_rn(s, n);
    float f = __fdiv_rn(g[o], n), c = __fdiv_rn(s, n * n);
    for (int j = lane; j < In; j += WARP) dvr[j] += f * (dwr[j] - vr[j] * c);
}

extern "C" void weightnorm_forward_cuda(float *w, float *vnorm, const float *g, const float *v,
                                        int O, int In, cudaStream_t stream) {
    if (O == 0) return;
    weightnorm_forward_kernel<<<row_blocks(O), ROWS_PER_BLOCK * WARP, 0, stream>>>(w, vnorm, g, v, O,
                                                                                   In);
    CUDA_CHECK_LAUNCH();
}

extern "C" void weightnorm_backward_cuda(float *dg, float *dv, const float *dw, const float *g,
                                         const float *v, const float *vnorm, int O, int In,
                                         cudaStream_t stream) {
    if (O == 0) return;
    weightnorm_backward_kernel<<<row_blocks(O), ROWS_PER_BLOCK * WARP, 0, stream>>>(
        dg, dv, dw, g, v, vnorm, O, In);
    CUDA_CHECK_LAUNCH();
}
