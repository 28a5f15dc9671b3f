// The DINO loss (see loss.h). Rows are independent (a student row's loss
// terms and gradient need only the teacher rows of its image), so every pass runs
// OpenMP over rows (or over output dimensions for column sums) and writes
// per-row partial results that are then added up in a fixed order: the
// result does not depend on the thread count.
#include "train/loss.h"

// Lets GCC if-convert (and so vectorise) the float selects in vexpf and the
// gradient loop; it changes no result (no reassociation, no fast-math).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "train/dist.h"
#include "train/loss_terms.h"

void dino_loss_init(DinoLoss *L, int out_dim, int ncrops, double warmup_teacher_temp,
                    double teacher_temp, int warmup_teacher_temp_epochs) {
    DINO_ASSERT(out_dim > 0 && ncrops >= 2);
    memset(L, 0, sizeof *L);
    L->out_dim = out_dim;
    L->ncrops = ncrops;
    L->student_temp = 0.1f;
    L->center_momentum = 0.9;
    L->warmup_teacher_temp = warmup_teacher_temp;
    L->teacher_temp = teacher_temp;
    L->warmup_teacher_temp_epochs = warmup_teacher_temp_epochs;
    L->center = callocCheck((size_t)out_dim, sizeof(float));
}

void dino_loss_free(DinoLoss *L) {
    free(L->center);
    free(L->tprob);
    free(L->qsum);
    free(L->rowloss);
    memset(L, 0, sizeof *L);
}

double dino_teacher_temp(const DinoLoss *L, int epoch) {
    int n = L->warmup_teacher_temp_epochs;
    if (epoch >= n) return L->teacher_temp;
    // numpy.linspace(start, stop, n): i·step + start with step = (stop−start)/(n−1),
    // the last value replaced by stop; (i/div)·delta + start when step == 0.
    if (epoch == n - 1) return L->teacher_temp;
    double delta = L->teacher_temp - L->warmup_teacher_temp;
    double div = (double)(n - 1);
    double step = delta / div;
    if (step == 0.0) return ((double)epoch / div) * delta + L->warmup_teacher_temp;
    return (double)epoch * step + L->warmup_teacher_temp;
}

// exp(x) for float x, vectorisable (no libm call): Cody–Waite reduction by
// ln 2 and a degree-6 polynomial (the Cephes coefficients): under 1 ulp from
// the exact exp over [-87, 0], the range softmax uses (sampled every 256th
// float); 0 below -87.
static inline float vexpf(float x) {
    if (x != x) return x;  // NaN propagates; the trainer reports the non-finite loss
    float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float k = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    union {
        float f;
        int32_t i;
    } u;
    u.i = (int32_t)((uint32_t)((int32_t)k + 127) << 23);
    return x < -87.0f ? 0.0f : y * u.f;
}

// Σ −p·log p in double, skipping zeros.
static double entropy(const float *p, int K) {
    double h = 0.0;
    for (int k = 0; k < K; k++)
        if (p[k] > 0.0f) h -= (double)p[k] * log((double)p[k]);
    return h;
}

// Grows a workspace of doubles to at least n.
static double *grow_d(double *p, size_t *cap, size_t n) {
    if (*cap >= n) return p;
    free(p);
    *cap = n;
    return mallocCheck(n * sizeof(double));
}

// The reference's teacher: softmax((t − center)/τ) per row, as PyTorch:
// subtract the max, exponentiate, multiply by the reciprocal of the sum.
static void centered_softmax(float *q, const float *teacher, const float *center, int TR, int K,
                             float temp) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < TR; r++) {
        const float *t = teacher + (size_t)r * K;
        float *qr = q + (size_t)r * K;
        float mx = -INFINITY;
        for (int k = 0; k < K; k++) {
            float x = (t[k] - center[k]) / temp;
            qr[k] = x;
            if (x > mx) mx = x;
        }
        float s = 0.0f;
        for (int k = 0; k < K; k++) {
            float e = expf(qr[k] - mx);
            qr[k] = e;
            s += e;
        }
        float inv = 1.0f / s;
        for (int k = 0; k < K; k++) qr[k] *= inv;
    }
}

// colsum (K) = Σ over the TR rows of q, in column blocks so each thread
// streams its rows in order (the sums do not depend on the thread count).
static void column_sums(double *colsum, const float *q, int TR, int K) {
    const int CB = 512;
#pragma omp parallel for schedule(static)
    for (int k0 = 0; k0 < K; k0 += CB) {
        int k1 = k0 + CB < K ? k0 + CB : K;
        for (int k = k0; k < k1; k++) colsum[k] = 0.0;
        for (int r = 0; r < TR; r++) {
            const float *qr = q + (size_t)r * K;
            for (int k = k0; k < k1; k++) colsum[k] += qr[k];
        }
    }
}

// DINOv2's teacher (sinkhorn_knopp_teacher): Q = exp(t/τ), then `iters`
// times: every prototype's mass over the global batch set to 1/K, every row's
// to 1/rows; the rows finally scaled to sum to one. The sums run over every
// rank's rows. The reference first divides Q by its total and exponentiates
// t/τ unshifted; both constant factors cancel in the first per-prototype
// normalisation, so here the global batch's largest t/τ is subtracted
// instead, which keeps exp in range.
static void sinkhorn_knopp(float *q, const float *teacher, int TR, int K, float temp, int iters) {
    const size_t n = (size_t)TR * K;
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        float x = teacher[i] / temp;
        q[i] = x;
        mx = x > mx ? x : mx;
    }
    const float gmx = (float)dist_max_f64(mx);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) q[i] = expf(q[i] - gmx);
    const double nrows = (double)TR * dist_world();
    double *colsum = mallocCheck((size_t)K * sizeof(double));
    // The scales stay in double: at a low temperature a column's mass can be
    // so small (denormal) that its reciprocal overflows a float, and
    // inf · 0 would poison the row; the scaled values themselves are ≤ 1.
    double *cscale = mallocCheck((size_t)K * sizeof(double));
    for (int it = 0; it < iters; it++) {
        column_sums(colsum, q, TR, K);
        dist_allreduce_f64(colsum, (size_t)K, DIST_SUM);
        // A prototype no row reaches (exp underflowed everywhere) stays at zero.
        for (int k = 0; k < K; k++) cscale[k] = colsum[k] > 0.0 ? 1.0 / (colsum[k] * K) : 0.0;
        const int last = it == iters - 1;
#pragma omp parallel for schedule(static)
        for (int r = 0; r < TR; r++) {
            float *qr = q + (size_t)r * K;
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                qr[k] = (float)(qr[k] * cscale[k]);
                s += qr[k];
            }
            // Rows sum to 1/nrows between iterations and to one at the end.
            const double rs = s > 0.0 ? 1.0 / (last ? s : s * nrows) : 0.0;
            for (int k = 0; k < K; k++) qr[k] = (float)(qr[k] * rs);
        }
    }
    free(cscale);
    free(colsum);
}

LossStats dino_loss_teacher(DinoLoss *L, const float *teacher, int B, int epoch) {
    const int K = L->out_dim, TR = 2 * B;
    LossStats st = {0};
    double temp = dino_teacher_temp(L, epoch);
    st.teacher_temp = temp;
    const float tempf = (float)temp;

    size_t need = (size_t)TR * K;
    if (L->tprob_cap < need) {
        free(L->tprob);
        L->tprob = alignedAllocCheck(need * sizeof(float));
        L->tprob_cap = need;
    }
    L->qsum = grow_d(L->qsum, &L->qsum_cap, (size_t)TR);
    float *q = L->tprob;
    const float *center = L->center;
    double *qsum = L->qsum;
    double *tent = mallocCheck((size_t)TR * sizeof(double));

    if (L->sinkhorn_iters > 0)
        sinkhorn_knopp(q, teacher, TR, K, tempf, L->sinkhorn_iters);
    else
        centered_softmax(q, teacher, center, TR, K, tempf);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < TR; r++) {
        const float *qr = q + (size_t)r * K;
        double qs = 0.0;
        for (int k = 0; k < K; k++) qs += qr[k];
        qsum[r] = qs;
        tent[r] = entropy(qr, K);
    }

    // Collapse statistics of the teacher output.
    double hm = 0.0;
    for (int r = 0; r < TR; r++) hm += tent[r];
    st.teacher_entropy = hm / TR;
    double *hk = mallocCheck((size_t)K * sizeof(double));
    column_sums(hk, q, TR, K);
    for (int k = 0; k < K; k++) {
        double m = hk[k] / TR;
        hk[k] = m > 0.0 ? -m * log(m) : 0.0;
    }
    double hbar = 0.0;
    for (int k = 0; k < K; k++) hbar += hk[k];
    st.teacher_mean_entropy = hbar;
    free(hk);
    free(tent);
    L->B = B;
    return st;
}

void dino_loss_student(DinoLoss *L, float *dstudent, const float *student, int r0, int n) {
    const int K = L->out_dim, NC = L->ncrops, B = L->B;
    DINO_ASSERT(B > 0 && r0 >= 0 && n >= 1 && r0 + n <= NC * B);
    const float stemp = L->student_temp;
    const float *q = L->tprob;
    const double *qsum = L->qsum;
    L->rowloss = grow_d(L->rowloss, &L->rowloss_cap, (size_t)NC * B * 2);
    double *rowloss = L->rowloss;

    // Student: log_softmax(s/0.1) per row into lp (dstudent doubles as storage).
    float *lp = dstudent ? dstudent : alignedAllocCheck((size_t)n * K * sizeof(float));
    const int nterms = 2 * NC - 2;
    // d loss / d row-loss of each term: 1/(terms·B); then /0.1 for the scaling.
    const double gscale = 1.0 / ((double)nterms * (double)B);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const int r = r0 + i;
        const float *s = student + (size_t)i * K;
        float *lr = lp + (size_t)i * K;
        const int v = r / B, b = r % B;
        // `omp simd` reductions let the compiler vectorise (reassociate) the
        // sums; they stay in double and per row, so the thread count does not
        // change them.
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int k = 0; k < K; k++) {
            float x = s[k] / stemp;
            lr[k] = x;
            mx = x > mx ? x : mx;
        }
        double se = 0.0;
#pragma omp simd reduction(+ : se)
        for (int k = 0; k < K; k++) se += (double)vexpf(lr[k] - mx);
        float lse = (float)log(se);
#pragma omp simd
        for (int k = 0; k < K; k++) lr[k] = (lr[k] - mx) - lse;
        for (int iq = 0; iq < 2; iq++) {
            if (iq == v) continue;
            const float *qr = q + ((size_t)iq * B + b) * K;
            double d = 0.0;
#pragma omp simd reduction(+ : d)
            for (int k = 0; k < K; k++) d += (double)qr[k] * (double)lr[k];
            rowloss[(size_t)r * 2 + iq] = -d;
        }
        if (!dstudent) continue;
        // d/dlogits of −Σ q·log_softmax(x) is softmax(x)·Σq − q, summed over the
        // teacher views this student view is compared with.
        const float *q0 = (v != 0) ? q + (size_t)b * K : NULL;
        const float *q1 = (v != 1) ? q + ((size_t)B + b) * K : NULL;
        double sq = (q0 ? qsum[b] : 0.0) + (q1 ? qsum[B + b] : 0.0);
        float c = (float)(gscale / (double)stemp);
        // softmax from the log-softmax just computed; float arithmetic here
        // is well within the gradient's float32 precision.
        const float sqf = (float)sq;
        if (q0 && q1) {
#pragma omp simd
            for (int k = 0; k < K; k++) lr[k] = ((vexpf(lr[k]) * sqf - q0[k]) - q1[k]) * c;
        } else {
            const float *qq = q0 ? q0 : q1;
#pragma omp simd
            for (int k = 0; k < K; k++) lr[k] = (vexpf(lr[k]) * sqf - qq[k]) * c;
        }
    }
    if (!dstudent) free(lp);
}

double dino_loss_total(const DinoLoss *L) { return dino_loss_mean_of_terms(L->rowloss, L->B, L->ncrops); }

LossStats dino_loss_forward_backward(DinoLoss *L, float *dstudent, const float *student,
                                     const float *teacher, int B, int epoch) {
    LossStats st = dino_loss_teacher(L, teacher, B, epoch);
    dino_loss_student(L, dstudent, student, 0, L->ncrops * B);
    st.loss = dino_loss_total(L);
    return st;
}

void dino_center_batch_sum(float *sum, const float *teacher, int rows, int K) {
    const int CB = 512;  // column blocks, rows streamed in order (see above)
#pragma omp parallel for schedule(static)
    for (int k0 = 0; k0 < K; k0 += CB) {
        int k1 = k0 + CB < K ? k0 + CB : K;
        double s[512];
        for (int k = k0; k < k1; k++) s[k - k0] = 0.0;
        for (int r = 0; r < rows; r++) {
            const float *tr = teacher + (size_t)r * K;
            for (int k = k0; k < k1; k++) s[k - k0] += tr[k];
        }
        for (int k = k0; k < k1; k++) sum[k] = (float)s[k - k0];
    }
}

void dino_center_update(DinoLoss *L, const float *sum, int64_t count) {
    // As the reference: batch_center = sum / count; center·m + batch_center·(1−m),
    // each product rounded to float32.
    const float m = (float)L->center_momentum;
    const float om = (float)(1.0 - L->center_momentum);
    const float cnt = (float)count;
    for (int k = 0; k < L->out_dim; k++) {
        float bc = sum[k] / cnt;
        L->center[k] = L->center[k] * m + bc * om;
    }
}
