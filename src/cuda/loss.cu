// The DINO loss on the device (the semantics of src/train/loss.c): teacher
// softmax((t − center)/τ) per row, student log_softmax(s/0.1) per row, the
// cross-entropy of every (teacher global crop iq, student crop v ≠ iq) pair,
// its gradient, the collapse statistics, the centre's batch sum and momentum
// update. One block per row (K = 65536 columns do not fit in shared memory,
// so a row is read three times, from L2); row results go to a small device
// array and one final kernel adds them in the CPU's order. Sums are in
// double where the CPU's are, no atomics: the result is deterministic. The
// exps are CUDA's expf (the CPU uses its own ≤ 1 ulp polynomial), and the
// per-row sums differ in order, so values agree to float rounding, not bits;
// the centre's batch sum and update are bit-identical.
#include <math.h>
#include <string.h>

#include "cuda/cuda_common.cuh"
#include "cuda/cuda_elem.h"
#include "train/loss_terms.h"

#define LOSS_THREADS 512

__global__ void teacher_softmax_kernel(float *q, double *qsum, double *tent, const float *teacher,
                                       const float *center, int K, float temp) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    int r = blockIdx.x;
    const float *t = teacher + (size_t)r * K;
    float *qr = q + (size_t)r * K;
    float mx = -INFINITY;
    for (int k = threadIdx.x; k < K; k += blockDim.x)
        mx = fmaxf(mx, __fdiv_rn(__fsub_rn(t[k], center[k]), temp));
    mx = block_max(mx, shf);
    double s = 0.0;
    for (int k = threadIdx.x; k < K; k += blockDim.x)
        s += (double)expf(__fsub_rn(__fdiv_rn(__fsub_rn(t[k], center[k]), temp), mx));
    s = block_sum(s, shd);
    float inv = __fdiv_rn(1.0f, (float)s);
    double qs = 0.0, h = 0.0;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        float e = expf(__fsub_rn(__fdiv_rn(__fsub_rn(t[k], center[k]), temp), mx));
        float p = __fmul_rn(e, inv);
        qr[k] = p;
        qs += p;
        if (p > 0.0f) h -= (double)p * log((double)p);
    }
    qs = block_sum(qs, shd);
    h = block_sum(h, shd);
    if (threadIdx.x == 0) qsum[r] = qs, tent[r] = h;
}

__global__ void student_kernel(float *dstudent, double *rowloss, const float *student,
                               const float *q, const double *qsum, int B, int K, float stemp,
                               float c) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    int r = blockIdx.x, v = r / B, b = r % B;
    const float *s = student + (size_t)r * K;
    float mx = -INFINITY;
    for (int k = threadIdx.x; k < K; k += blockDim.x) mx = fmaxf(mx, __fdiv_rn(s[k], stemp));
    mx = block_max(mx, shf);
    double se = 0.0;
    for (int k = threadIdx.x; k < K; k += blockDim.x)
        se += (double)expf(__fsub_rn(__fdiv_rn(s[k], stemp), mx));
    se = block_sum(se, shd);
    float lse = (float)log(se);
    const float *q0 = v != 0 ? q + (size_t)b * K : NULL;
    const float *q1 = v != 1 ? q + ((size_t)B + b) * K : NULL;
    float sqf = (float)((q0 ? qsum[b] : 0.0) + (q1 ? qsum[B + b] : 0.0));
    double d0 = 0.0, d1 = 0.0;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        float lp = __fsub_rn(__fsub_rn(__fdiv_rn(s[k], stemp), mx), lse);
        if (q0) d0 += (double)q0[k] * (double)lp;
        if (q1) d1 += (double)q1[k] * (double)lp;
        if (dstudent) {
            // softmax·Σq − q0 − q1, times 1/(terms·B·0.1), as loss.c
            float g = __fmul_rn(expf(lp), sqf);
            if (q0) g = __fsub_rn(g, q0[k]);
            if (q1) g = __fsub_rn(g, q1[k]);
            dstudent[(size_t)r * K + k] = __fmul_rn(g, c);
        }
    }
    d0 = block_sum(d0, shd);
    d1 = block_sum(d1, shd);
    if (threadIdx.x == 0) {
        rowloss[(size_t)r * 2 + 0] = q0 ? -d0 : 0.0;
        rowloss[(size_t)r * 2 + 1] = q1 ? -d1 : 0.0;
    }
}

// hk[k] = −m·log m of the column mean m of the teacher probabilities (rows in order).
__global__ void mean_entropy_cols_kernel(double *hk, const float *q, int TR, int K) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= K) return;
    double s = 0.0;
    for (int r = 0; r < TR; r++) s += q[(size_t)r * K + k];
    double m = s / TR;
    hk[k] = m > 0.0 ? -m * log(m) : 0.0;
}

// One block: the loss in the CPU's term order, the entropies, τ.
__global__ void loss_finish_kernel(double *stats, const double *tent, const double *rowloss,
                                   const double *hk, int B, int NC, int K, double temp) {
    __shared__ double shd[32];
    double h = 0.0;
    for (int k = threadIdx.x; k < K; k += blockDim.x) h += hk[k];
    h = block_sum(h, shd);
    if (threadIdx.x != 0) return;
    double hm = 0.0;
    for (int r = 0; r < 2 * B; r++) hm += tent[r];
    stats[0] = dino_loss_mean_of_terms(rowloss, B, NC);
    stats[1] = hm / (2 * B);
    stats[2] = h;
    stats[3] = temp;
}

extern "C" void dino_loss_cuda_init(DinoLossCuda *G, const DinoLoss *L) {
    memset(G, 0, sizeof *G);
    G->cfg = *L;
    G->cfg.center = NULL;
    G->cfg.tprob = NULL;
    G->cfg.tprob_cap = 0;
    size_t K = (size_t)L->out_dim;
    G->center = (float *)cuda_malloc(K * sizeof(float));
    cuda_upload(G->center, L->center, K * sizeof(float));
    G->stats = (double *)cuda_malloc(4 * sizeof(double));
}

extern "C" void dino_loss_cuda_free(DinoLossCuda *G) {
    CUDA_CHECK(cudaDeviceSynchronize());
    cuda_free(G->center);
    cuda_free(G->tprob);
    cuda_free(G->rows);
    cuda_free(G->stats);
    memset(G, 0, sizeof *G);
}

// Doubles of G->rows for cap_rows teacher rows (cap_rows/2 samples).
static size_t loss_rows_doubles(const DinoLossCuda *G) {
    return 2 * G->cap_rows + (size_t)G->cfg.ncrops * G->cap_rows + (size_t)G->cfg.out_dim;
}

extern "C" void dino_loss_forward_backward_cuda(DinoLossCuda *G, float *dstudent,
                                                const float *student, const float *teacher, int B,
                                                int epoch, cudaStream_t stream) {
    const int K = G->cfg.out_dim, NC = G->cfg.ncrops, TR = 2 * B, SR = NC * B;
    DINO_ASSERT(B > 0);
    if (G->cap_rows < (size_t)TR) {
        // Workspaces sized for this batch; freeing waits for work that still uses them.
        CUDA_CHECK(cudaStreamSynchronize(stream));
        cuda_free(G->tprob);
        cuda_free(G->rows);
        G->tprob = (float *)cuda_malloc((size_t)TR * K * sizeof(float));
        G->cap_rows = (size_t)TR;
        G->rows = (double *)cuda_malloc(loss_rows_doubles(G) * sizeof(double));
    }
    // rows: qsum (cap) | tent (cap) | rowloss (2 per student row: NC·cap/2·2) | hk (K)
    double *qsum = G->rows, *tent = qsum + G->cap_rows, *rowloss = tent + G->cap_rows;
    double *hk = rowloss + (size_t)NC * G->cap_rows;
    double temp = dino_teacher_temp(&G->cfg, epoch);
    teacher_softmax_kernel<<<TR, LOSS_THREADS, 0, stream>>>(G->tprob, qsum, tent, teacher,
                                                           G->center, K, (float)temp);
    CUDA_CHECK_LAUNCH();
    const int nterms = 2 * NC - 2;
    const double gscale = 1.0 / ((double)nterms * (double)B);
    float c = (float)(gscale / (double)G->cfg.student_temp);
    student_kernel<<<SR, LOSS_THREADS, 0, stream>>>(dstudent, rowloss, student, G->tprob, qsum, B,
                                                   K, G->cfg.student_temp, c);
    CUDA_CHECK_LAUNCH();
    mean_entropy_cols_kernel<<<(K + 255) / 256, 256, 0, stream>>>(hk, G->tprob, TR, K);
    CUDA_CHECK_LAUNCH();
    loss_finish_kernel<<<1, 1024, 0, stream>>>(G->stats, tent, rowloss, hk, B, NC, K, temp);
    CUDA_CHECK_LAUNCH();
}

extern "C" LossStats dino_loss_cuda_stats(const DinoLossCuda *G, cudaStream_t stream) {
    double s[4];
    CUDA_CHECK(cudaMemcpyAsync(s, G->stats, sizeof s, cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    LossStats st;
    st.loss = s[0];
    st.teacher_entropy = s[1];
    st.teacher_mean_entropy = s[2];
    st.teacher_temp = s[3];
    return st;
}

// Bit-identical to dino_center_batch_sum: per column, a double sum in row order.
__global__ void center_sum_kernel(float *sum, const float *teacher, int rows, int K) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= K) return;
    double s = 0.0;
    for (int r = 0; r < rows; r++) s = __dadd_rn(s, (double)teacher[(size_t)r * K + k]);
    sum[k] = (float)s;
}

__global__ void center_update_kernel(float *center, const float *sum, int K, float cnt, float m,
                                     float om) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k < K) center[k] = el_center(center[k], sum[k], cnt, m, om);
}

extern "C" void dino_center_batch_sum_cuda(float *sum, const float *teacher, int rows, int K,
                                           cudaStream_t stream) {
    if (K == 0) return;
    center_sum_kernel<<<(K + 255) / 256, 256, 0, stream>>>(sum, teacher, rows, K);
    CUDA_CHECK_LAUNCH();
}

extern "C" void dino_center_update_cuda(DinoLossCuda *G, const float *sum, int64_t count,
                                        cudaStream_t stream) {
    const int K = G->cfg.out_dim;
    const float m = (float)G->cfg.center_momentum, om = (float)(1.0 - G->cfg.center_momentum);
    center_update_kernel<<<(K + 255) / 256, 256, 0, stream>>>(G->center, sum, K, (float)count, m,
                                                              om);
    CUDA_CHECK_LAUNCH();
}

extern "C" void dino_loss_cuda_download_center(const DinoLossCuda *G, DinoLoss *L,
                                               cudaStream_t stream) {
    CUDA_CHECK(cudaMemcpyAsync(L->center, G->center, (size_t)G->cfg.out_dim * sizeof(float),
                               cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
}
