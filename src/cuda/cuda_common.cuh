// What every .cu file of the CUDA backend shares: the checks that turn a
// failed CUDA or cuBLAS call into one message with file, line, the call and
// the library's error string (then exit, like dino_fatal_at), stream-ordered
// scratch allocation, and the warp/block reductions the kernels are built
// from. Reductions run in a fixed tree order, so a kernel's result depends
// only on its launch shape, which depends only on the problem sizes.
#ifndef DINO_CUDA_COMMON_CUH
#define DINO_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stddef.h>

extern "C" {
#include "common.h"
}
#include "cuda/ops_cuda.h"

#define CUDA_CHECK(call)                                                                   \
    do {                                                                                   \
        cudaError_t err_ = (call);                                                         \
        if (err_ != cudaSuccess)                                                           \
            dino_fatal_at(__FILE__, __LINE__, "CUDA error %s (%s) in %s", cudaGetErrorName(err_), \
                          cudaGetErrorString(err_), #call);                                \
    } while (0)

// After every kernel launch: a bad launch configuration is reported here, an
// error inside the kernel at the next synchronising call.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

// Stream-ordered scratch (the default pool keeps its memory, see cuda_ctx_init).
static inline void *cuda_scratch(size_t bytes, cudaStream_t stream) {
    void *p = NULL;
    if (bytes == 0) bytes = 16;
    CUDA_CHECK(cudaMallocAsync(&p, bytes, stream));
    return p;
}
static inline void cuda_scratch_free(void *p, cudaStream_t stream) {
    if (p) CUDA_CHECK(cudaFreeAsync(p, stream));
}

#define WARP 32
#define FULL_MASK 0xffffffffu

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. `sh` holds 32 values of T. Synchronises.
template <typename T> __device__ T block_sum(T v, T *sh) {
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    v = warp_sum(v);
    __syncthreads();  // sh may still be read by a previous call
    if (lane == 0) sh[w] = v;
    __syncthreads();
    T r = lane < nw ? sh[lane] : (T)0;
    return warp_sum(r);
}
__device__ inline float block_max(float v, float *sh) {
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(r);
}

// Blocks for a grid-stride loop over n items.
static inline unsigned grid_for(size_t n, int threads) {
    return (unsigned)cuda_blocks_for(n, threads, 65535 * 8);
}

#endif
