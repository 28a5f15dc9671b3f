// The flat-buffer optimizer passes on the device (the semantics of
// src/train/optim.c): AdamW, per-tensor gradient clipping and the teacher
// EMA. One thread block per chunk of the CudaOptimPlan chunk table (uploaded
// once); the per-tensor scalars (bias corrections, decay, active flag) are
// computed on the host by cuda_adamw_coefs and uploaded per call (16 bytes
// per tensor, from pinned memory).
// The element arithmetic is cuda_elem.h's, explicitly rounded, so AdamW and
// the EMA are bit-identical to the CPU. The clipping norm is a double sum of
// squares per chunk (tree order inside a chunk), chunks added in order.
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_common.cuh"
#include "cuda/cuda_elem.h"

#define OPTIM_THREADS 256

extern "C" void cuda_optim_init(CudaOptim *o, const ParamTable *t) {
    memset(o, 0, sizeof *o);
    cuda_optim_plan_build(&o->plan, t, CUDA_OPTIM_CHUNK);
    const CudaOptimPlan *p = &o->plan;
    o->chunks = (CudaChunk *)cuda_malloc((size_t)(p->nchunks > 0 ? p->nchunks : 1) * sizeof(CudaChunk));
    cuda_upload(o->chunks, p->chunks, (size_t)p->nchunks * sizeof(CudaChunk));
    size_t nt = (size_t)(p->ntensors > 0 ? p->ntensors : 1);
    o->coef = (CudaTensorCoef *)cuda_malloc(nt * sizeof(CudaTensorCoef));
    for (int i = 0; i < 2; i++) {
        CUDA_CHECK(cudaMallocHost((void **)&o->coef_host[i], nt * sizeof(CudaTensorCoef)));
        cudaEvent_t ev;
        CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventRecord(ev, 0));
        o->coef_uploaded[i] = ev;
    }
    o->partial = (double *)cuda_malloc((size_t)(p->nchunks > 0 ? p->nchunks : 1) * sizeof(double));
    o->norms = (float *)cuda_malloc(nt * sizeof(float));
    o->clip_scale = (float *)cuda_malloc(nt * sizeof(float));
    o->first_chunk = (int *)cuda_malloc(((size_t)p->ntensors + 1) * sizeof(int));
    cuda_upload(o->first_chunk, p->first_chunk, ((size_t)p->ntensors + 1) * sizeof(int));
    o->beta1 = 0.9, o->beta2 = 0.999, o->eps = 1e-8;
    o->step = (int64_t *)callocCheck(nt, sizeof(int64_t));
    o->m = (float *)cuda_malloc(t->total * sizeof(float));
    o->v = (float *)cuda_malloc(t->total * sizeof(float));
    CUDA_CHECK(cudaMemset(o->m, 0, t->total * sizeof(float)));
    CUDA_CHECK(cudaMemset(o->v, 0, t->total * sizeof(float)));
}

extern "C" void cuda_optim_free(CudaOptim *o) {
    CUDA_CHECK(cudaDeviceSynchronize());
    cuda_free(o->chunks);
    cuda_free(o->coef);
    for (int i = 0; i < 2; i++) {
        CUDA_CHECK(cudaFreeHost(o->coef_host[i]));
        CUDA_CHECK(cudaEventDestroy((cudaEvent_t)o->coef_uploaded[i]));
    }
    cuda_free(o->partial);
    cuda_free(o->norms);
    cuda_free(o->clip_scale);
    cuda_free(o->first_chunk);
    cuda_free(o->m);
    cuda_free(o->v);
    free(o->step);
    cuda_optim_plan_free(&o->plan);
    memset(o, 0, sizeof *o);
}

// The per-call coefficient table goes up from pinned memory, so the copy
// does not make the host wait for the stream. The two staging copies take
// turns: before refilling one, the host waits for its upload two calls back
// (clipping's copy of the previous step when AdamW refills), which has long
// run, so the host never waits for the backward queued before this call.
static CudaTensorCoef *coef_staging(CudaOptim *o) {
    CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)o->coef_uploaded[o->coef_next]));
    return o->coef_host[o->coef_next];
}

// The device table is refilled in stream order: the previous call's kernels
// (same stream) have read it before this copy runs.
static void upload_coefs(CudaOptim *o, cudaStream_t stream) {
    const int k = o->coef_next;
    CUDA_CHECK(cudaMemcpyAsync(o->coef, o->coef_host[k],
                               (size_t)o->plan.ntensors * sizeof(CudaTensorCoef),
                               cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaEventRecord((cudaEvent_t)o->coef_uploaded[k], stream));
    o->coef_next = 1 - k;
}

__global__ void adamw_kernel(float *params, const float *grads, float *m, float *v,
                             const CudaChunk *chunks, const CudaTensorCoef *coef, float w1,
                             float b2f, float w2, float eps) {
    CudaChunk ch = chunks[blockIdx.x];
    CudaTensorCoef k = coef[ch.tensor];
    if (!(k.flags & CUDA_COEF_ACTIVE)) return;
    int dd = (k.flags & CUDA_COEF_DECAY) != 0;
    for (uint32_t j = threadIdx.x; j < ch.n; j += blockDim.x) {
        size_t i = ch.offset + j;
        float pi = params[i], mi = m[i], vi = v[i];
        el_adamw(&pi, &mi, &vi, grads[i], k.neg_ss, k.bc2s, k.decay, dd, w1, b2f, w2, eps);
        params[i] = pi, m[i] = mi, v[i] = vi;
    }
}

extern "C" void adamw_step_cuda(CudaOptim *o, float *params, const float *grads, double lr,
                                double wd, const uint8_t *skip, cudaStream_t stream) {
    const CudaOptimPlan *p = &o->plan;
    if (p->ntensors == 0) return;
    const double b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    cuda_adamw_coefs(coef_staging(o), o->step, p, lr, wd, b1, b2, skip);
    upload_coefs(o, stream);
    if (p->nchunks == 0) return;
    adamw_kernel<<<p->nchunks, OPTIM_THREADS, 0, stream>>>(params, grads, o->m, o->v, o->chunks,
                                                          o->coef, (float)(1.0 - b1), (float)b2,
                                                          (float)(1.0 - b2), (float)eps);
    CUDA_CHECK_LAUNCH();
}

__global__ void sumsq_chunks_kernel(double *partial, const float *g, const CudaChunk *chunks,
                                    const CudaTensorCoef *coef) {
    __shared__ double sh[32];
    CudaChunk ch = chunks[blockIdx.x];
    int active = coef[ch.tensor].flags & CUDA_COEF_ACTIVE;  // uniform over the block
    double s = 0.0;
    if (active)
        for (uint32_t j = threadIdx.x; j < ch.n; j += blockDim.x) {
            double x = g[ch.offset + j];
            s += x * x;
        }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One thread per tensor: its chunks' sums in order, the norm, the clip factor
// (stored in norms' companion: scale[i] = coef < 1 ? coef : 1).
__global__ void clip_norms_kernel(float *norms, float *scale, const double *partial,
                                  const int *first_chunk, const CudaTensorCoef *coef, int ntensors,
                                  float clip) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= ntensors) return;
    float nrm = 0.0f, sc = 1.0f;
    if (coef[i].flags & CUDA_COEF_ACTIVE) {
        double s = 0.0;
        for (int c = first_chunk[i]; c < first_chunk[i + 1]; c++) s += partial[c];
        nrm = (float)sqrt(s);
        float cf = __fdiv_rn(clip, __fadd_rn(nrm, 1e-6f));
        if (cf < 1.0f) sc = cf;
    }
    norms[i] = nrm;
    scale[i] = sc;
}

__global__ void clip_scale_kernel(float *g, const CudaChunk *chunks, const float *scale) {
    CudaChunk ch = chunks[blockIdx.x];
    float s = scale[ch.tensor];
    if (s == 1.0f) return;  // also inactive tensors
    for (uint32_t j = threadIdx.x; j < ch.n; j += blockDim.x)
        g[ch.offset + j] = __fmul_rn(g[ch.offset + j], s);
}

extern "C" void clip_gradients_cuda(CudaOptim *o, float *grads, float clip, const uint8_t *skip,
                                    float *norms_host, cudaStream_t stream) {
    const CudaOptimPlan *p = &o->plan;
    if (p->ntensors == 0) return;
    cuda_active_coefs(coef_staging(o), p, skip);
    upload_coefs(o, stream);
    int nt = p->ntensors;
    float *scale = o->clip_scale;
    if (p->nchunks > 0) {
        sumsq_chunks_kernel<<<p->nchunks, OPTIM_THREADS, 0, stream>>>(o->partial, grads, o->chunks,
                                                                     o->coef);
        CUDA_CHECK_LAUNCH();
    }
    clip_norms_kernel<<<(nt + 127) / 128, 128, 0, stream>>>(o->norms, scale, o->partial, o->first_chunk,
                                                            o->coef, nt, clip);
    CUDA_CHECK_LAUNCH();
    if (p->nchunks > 0) {
        clip_scale_kernel<<<p->nchunks, OPTIM_THREADS, 0, stream>>>(grads, o->chunks, scale);
        CUDA_CHECK_LAUNCH();
    }
    if (norms_host) {
        CUDA_CHECK(cudaMemcpyAsync(norms_host, o->norms, (size_t)nt * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
    }
}

__global__ void ema_kernel(float *teacher, const float *student, size_t n, float mf, float om) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        teacher[i] = el_ema(teacher[i], student[i], mf, om);
}

extern "C" void ema_update_cuda(float *teacher, const float *student, size_t n, double m,
                                cudaStream_t stream) {
    if (n == 0) return;
    ema_kernel<<<grid_for(n, 256), 256, 0, stream>>>(teacher, student, n, (float)m,
                                                     (float)(1.0 - m));
    CUDA_CHECK_LAUNCH();
}
