// LayerNorm twins (ops.h): one warp per row, two passes in float like the CPU
// (mean, then the biased variance of x − mean), 1/sqrt rounded as IEEE. The
// backward's dw/db are per-block partial sums over CUDA_LN_ROWS_PER_BLOCK
// rows (each lane owns the columns j ≡ lane mod 32, rows added in order),
// then one thread per column adds the blocks in order: deterministic, and
// the partition depends only on N.
#include "cuda/cuda_common.cuh"

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *w, const float *b, int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float *y = out + (size_t)row * C;
    float s = 0.0f;
    for (int j = lane; j < C; j += WARP) s += x[j];
    float m = warp_sum(s) / (float)C;
    float v = 0.0f;
    for (int j = lane; j < C; j += WARP) {
        float d = x[j] - m;
        v += d * d;
    }
    v = warp_sum(v) / (float)C;
    float r = __fdiv_rn(1.0f, __fsqrt_rn(v + eps));
    for (int j = lane; j < C; j += WARP) y[j] = (x[j] - m) * r * w[j] + b[j];
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

extern "C" void layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                                       const float *w, const float *b, int N, int C, float eps,
                                       cudaStream_t stream) {
    if (N == 0) return;
    const int rows_per_block = 8;
    layernorm_forward_kernel<<<(N + rows_per_block - 1) / rows_per_block, rows_per_block * WARP, 0,
                               stream>>>(out, mean, rstd, inp, w, b, N, C, eps);
    CUDA_CHECK_LAUNCH();
}

// One warp per block, CUDA_LN_ROWS_PER_BLOCK rows in order; dynamic shared
// memory holds this block's dw (C) and db (C) partial sums.
__global__ void layernorm_backward_kernel(float *dinp, float *part, const float *dout,
                                          const float *inp, const float *w, const float *mean,
                                          const float *rstd, int N, int C) {
    extern __shared__ float acc[];  // (2C)
    int lane = threadIdx.x;
    for (int j = lane; j < 2 * C; j += WARP) acc[j] = 0.0f;
    __syncwarp();  // acc[C + j] below belongs to another lane's zeroing when C % 32 != 0
    int r0 = blockIdx.x * CUDA_LN_ROWS_PER_BLOCK;
    int r1 = min(r0 + CUDA_LN_ROWS_PER_BLOCK, N);
    for (int i = r0; i < r1; i++) {
        const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        float m = mean[i], s = rstd[i];
        float sdn = 0.0f, sdnx = 0.0f;
        for (int j = lane; j < C; j += WARP) {
            float xh = (x[j] - m) * s, dn = dy[j] * w[j];
            sdn += dn;
            sdnx += dn * xh;
            acc[j] += dy[j] * xh;  // each lane owns its columns: no race
            acc[C + j] += dy[j];
        }
        sdn = warp_sum(sdn) / (float)C;
        sdnx = warp_sum(sdnx) / (float)C;
        for (int j = lane; j < C; j += WARP) {
            float xh = (x[j] - m) * s;
            dx[j] += (dy[j] * w[j] - sdn - xh * sdnx) * s;
        }
    }
    __syncwarp();
    float *p = part + (size_t)blockIdx.x * 2 * C;
    for (int j = lane; j < 2 * C; j += WARP) p[j] = acc[j];
}

__global__ void layernorm_wb_finish_kernel(float *dw, float *db, const float *part, int blocks,
                                           int C) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= C) return;
    float sw = 0.0f, sb = 0.0f;
    for (int k = 0; k < blocks; k++) {
        sw += part[(size_t)k * 2 * C + j];
        sb += part[(size_t)k * 2 * C + C + j];
    }
    if (dw) dw[j] += sw;
    if (db) db[j] += sb;
}

extern "C" void layernorm_backward_cuda(float *dinp, float *dw, float *db, const float *dout,
                                        const float *inp, const float *w, const float *mean,
                                        const float *rstd, int N, int C, cudaStream_t stream) {
    if (N == 0) return;
    CudaReducePlan p = cuda_layernorm_bwd_plan(N, C);
    size_t shmem = (size_t)2 * C * sizeof(float);
    if (shmem > 48 * 1024) {
        DINO_ASSERT(shmem <= 200 * 1024);
        CUDA_CHECK(cudaFuncSetAttribute(layernorm_backward_kernel,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shmem));
    }
    float *part = (float *)cuda_scratch(p.scratch_floats * sizeof(float), stream);
    layernorm_backward_kernel<<<p.blocks, WARP, shmem, stream>>>(dinp, part, dout, inp, w, mean,
                                                                 rstd, N, C);
    CUDA_CHECK_LAUNCH();
    if (dw || db) {
        layernorm_wb_finish_kernel<<<(C + 255) / 256, 256, 0, stream>>>(dw, db, part, p.blocks, C);
        CUDA_CHECK_LAUNCH();
    }
    cuda_scratch_free(part, stream);
}
