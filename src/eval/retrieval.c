#include "eval/retrieval.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// LAPACK's symmetric eigensolver (OpenBLAS ships LAPACK, not its C header).
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);

double retrieval_ap_from_ranks(const int *ranks, int n_found, int n_pos) {
    double ap = 0, step = 1.0 / n_pos;
    for (int j = 0; j < n_found; j++) {
        int r = ranks[j];
        double p0 = r == 0 ? 1.0 : (double)j / r;  // precision just before this positive
        double p1 = (double)(j + 1) / (r + 1);      // and with it
        ap += (p0 + p1) * step / 2.0;
    }
    return ap;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

double retrieval_revisited_ap(const int *ranking, int n_db, const int *ok, int n_ok, const int *junk,
                              int n_junk, const int *kappas, int n_kappas, double *prec) {
    if (n_ok == 0) return -1;
    // bit 1: positive, bit 2: junk, per database index
    char *kind = calloc((size_t)n_db, 1);
    int *pos = malloc(sizeof(int) * (size_t)(n_ok > 0 ? n_ok : 1));
    if (!kind || !pos) {
        free(kind), free(pos);
        return -1;
    }
    for (int i = 0; i < n_junk; i++)
        if (junk[i] >= 0 && junk[i] < n_db) kind[junk[i]] |= 2;
    for (int i = 0; i < n_ok; i++)
        if (ok[i] >= 0 && ok[i] < n_db) kind[ok[i]] |= 1;
    // rank of each positive with the junk before it taken out
    int found = 0, junk_before = 0;
    for (int r = 0; r < n_db; r++) {
        int k = ranking[r] >= 0 && ranking[r] < n_db ? kind[ranking[r]] : 0;
        if (k & 1) pos[found++] = r - junk_before;
        if (k & 2) junk_before++;
    }
    qsort(pos, (size_t)found, sizeof(int), cmp_int);
    double ap = retrieval_ap_from_ranks(pos, found, n_ok);
    for (int j = 0; prec && j < n_kappas; j++) {
        int last = found ? pos[found - 1] + 1 : 0;
        int kq = last < kappas[j] ? last : kappas[j];
        int hits = 0;
        for (int i = 0; i < found; i++) hits += pos[i] + 1 <= kq;
        prec[j] = kq > 0 ? (double)hits / kq : 0;
    }
    free(kind);
    free(pos);
    return ap;
}

void retrieval_gem(const float *tokens, int n, int d, float p, float eps, float *out) {
    for (int k = 0; k < d; k++) {
        float acc = 0;
        for (int i = 0; i < n; i++) acc += powf(fmaxf(tokens[(size_t)i * d + k], eps), p);
        out[k] = powf(acc / (float)n, 1.0f / p);
    }
}

typedef struct {
    double value;
    int index;
} Eig;

static int eig_desc(const void *a, const void *b) {
    double x = ((const Eig *)a)->value, y = ((const Eig *)b)->value;
    return (x < y) - (x > y);
}

int retrieval_whitening_learn(const float *X, int n, int d, int out_dim, double power, float *mean,
                              float *dvt, char *err, size_t errlen) {
    if (n <= 0 || d <= 0 || out_dim <= 0 || out_dim > d) {
        snprintf(err, errlen, "whitening: need features and 1 <= dimension <= %d (got %d features, dimension %d)", d, n,
                 out_dim);
        return -1;
    }
    double *cov = calloc((size_t)d * d, sizeof(double)), *w = malloc(sizeof(double) * d);
    Eig *order = malloc(sizeof(Eig) * d);
    double *work = NULL;
    int *iwork = NULL, info = 0;
    if (!cov || !w || !order) goto oom;
    for (int k = 0; k < d; k++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += X[(size_t)i * d + k];
        mean[k] = (float)(s / n);
    }
    // X^T X / n in double (the upper triangle is what LAPACK reads; fill both)
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)i * d;
        for (int a = 0; a < d; a++)
            for (int b = a; b < d; b++) cov[(size_t)a * d + b] += (double)x[a] * x[b];
    }
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) cov[(size_t)b * d + a] = cov[(size_t)a * d + b] /= n;
    int lwork = -1, liwork = -1, iw_query;
    double w_query;
    dsyevd_("V", "U", &d, cov, &d, w, &w_query, &lwork, &iw_query, &liwork, &info);
    lwork = (int)w_query;
    liwork = iw_query;
    work = malloc(sizeof(double) * (size_t)lwork);
    iwork = malloc(sizeof(int) * (size_t)liwork);
    if (!work || !iwork) goto oom;
    // row-major symmetric = column-major symmetric; eigenvector j is row j on return
    dsyevd_("V", "U", &d, cov, &d, w, work, &lwork, iwork, &liwork, &info);
    if (info != 0) {
        snprintf(err, errlen, "whitening: the eigen-decomposition failed (LAPACK dsyevd info %d)", info);
        free(cov), free(w), free(order), free(work), free(iwork);
        return -1;
    }
    double top = w[d - 1], floor_ = top * 1e-5;
    for (int j = 0; j < d; j++) order[j] = (Eig){w[j] < floor_ ? floor_ : w[j], j};
    qsort(order, (size_t)d, sizeof(Eig), eig_desc);
    for (int r = 0; r < out_dim; r++) {
        double scale = pow(order[r].value, -power);
        const double *v = cov + (size_t)order[r].index * d;
        for (int k = 0; k < d; k++) dvt[(size_t)r * d + k] = (float)(scale * v[k]);
    }
    free(cov), free(w), free(order), free(work), free(iwork);
    return 0;
oom:
    free(cov), free(w), free(order), free(work), free(iwork);
    snprintf(err, errlen, "whitening: out of memory for a %d x %d covariance", d, d);
    return -1;
}

int retrieval_whitening_apply(const float *x, int n, int d, const float *mean, const float *dvt,
                              int out_dim, float *y) {
    float *c = malloc(sizeof(float) * (size_t)d);
    if (!c) return -1;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < d; k++) c[k] = x[(size_t)i * d + k] - mean[k];
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out_dim, d, 1.0f, dvt, d, c, 1, 0.0f, y + (size_t)i * out_dim, 1);
    }
    free(c);
    return 0;
}
