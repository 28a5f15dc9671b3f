// The CUDA context (device, cuBLASLt handle and workspace, GEMM algorithm
// cache) and the checked device-memory helpers declared in ops_cuda.h.
#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_common.cuh"
#include "cuda/gemm_internal.cuh"

// cuBLASLt workspace: 32 MiB is what NVIDIA recommends for Hopper.
#define CUDA_LT_WORKSPACE ((size_t)32 << 20)

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky "no driver/device" error
        return 0;
    }
    return n;
}

extern "C" int cuda_require_device(char *err, size_t errlen) {
    int n = cuda_device_count();
    if (n <= 0)
        return dino_errf(err, errlen,
                         "--device cuda: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)");
    return n;
}

extern "C" void cuda_device_describe(int device, char *buf, size_t n) {
    cudaDeviceProp pr;
    CUDA_CHECK(cudaGetDeviceProperties(&pr, device));
    snprintf(buf, n, "%s, sm_%d%d, %d SMs, %.1f GiB", pr.name, pr.major, pr.minor,
             pr.multiProcessorCount, (double)pr.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
}

extern "C" int cuda_ctx_init(CudaCtx *ctx, int device, CudaGemmMode mode, char *err, size_t errlen) {
    memset(ctx, 0, sizeof *ctx);
    int n = cuda_device_count();
    if (n == 0) return dino_errf(err, errlen, "no CUDA device found (this build needs an NVIDIA GPU and its driver)");
    if (device < 0 || device >= n)
        return dino_errf(err, errlen, "CUDA device %d does not exist (found %d device%s)", device, n,
                         n == 1 ? "" : "s");
    ctx->device = device;
    ctx->mode = mode;
    CUDA_CHECK(cudaSetDevice(device));
    // Keep memory freed by cudaFreeAsync in the pool instead of returning it
    // to the driver at every synchronisation: the twins' scratch is then a
    // cheap pool hit after the first step.
    cudaMemPool_t pool;
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t keep = UINT64_MAX;
    CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    cublasLtHandle_t lt;
    CUBLAS_CHECK(cublasLtCreate(&lt));
    ctx->lt = lt;
    ctx->workspace_bytes = CUDA_LT_WORKSPACE;
    CUDA_CHECK(cudaMalloc(&ctx->workspace, ctx->workspace_bytes));
    return 0;
}

extern "C" void cuda_ctx_free(CudaCtx *ctx) {
    if (!ctx->lt) return;
    CUDA_CHECK(cudaDeviceSynchronize());
    gemm_cache_clear(ctx);
    CUBLAS_CHECK(cublasLtDestroy((cublasLtHandle_t)ctx->lt));
    CUDA_CHECK(cudaFree(ctx->workspace));
    memset(ctx, 0, sizeof *ctx);
}

extern "C" void *cuda_malloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}

extern "C" void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

extern "C" void cuda_upload(void *dst_dev, const void *src_host, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice));
}

extern "C" void cuda_download(void *dst_host, const void *src_dev, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void cuda_memset0(void *dst_dev, size_t bytes, cudaStream_t stream) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(dst_dev, 0, bytes, stream));
}

extern "C" void cuda_sync(cudaStream_t stream) { CUDA_CHECK(cudaStreamSynchronize(stream)); }
