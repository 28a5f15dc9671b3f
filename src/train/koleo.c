// KoLeo loss and its gradient (koleo.h). The batch is small (a crop's B rows),
// so the n×n similarities are plain loops, accumulated in double.
#include "train/koleo.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"

#define KOLEO_EPS 1e-8

double koleo_loss(const float *x, int n, int D, float weight, float *dx) {
    DINO_ASSERT(n >= 2 && D >= 1);
    double *u = mallocCheck((size_t)n * D * sizeof(double));
    double *norm = mallocCheck((size_t)n * sizeof(double));
    double *du = callocCheck((size_t)n * D, sizeof(double));
    double *v = mallocCheck((size_t)D * sizeof(double));
    // F.normalize: x / max(‖x‖, ε)
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < D; k++) s += (double)x[(size_t)i * D + k] * x[(size_t)i * D + k];
        norm[i] = fmax(sqrt(s), KOLEO_EPS);
        for (int k = 0; k < D; k++) u[(size_t)i * D + k] = x[(size_t)i * D + k] / norm[i];
    }
    double loss = 0;
    for (int i = 0; i < n; i++) {
        const double *ui = u + (size_t)i * D;
        // Nearest neighbour by inner product; the first of equal maxima, as torch.max.
        int j = -1;
        double best = 0;
        for (int c = 0; c < n; c++) {
            if (c == i) continue;
            double dot = 0;
            for (int k = 0; k < D; k++) dot += ui[k] * u[(size_t)c * D + k];
            if (j < 0 || dot > best) best = dot, j = c;
        }
        const double *uj = u + (size_t)j * D;
        double d2 = 0;
        for (int k = 0; k < D; k++) {
            v[k] = ui[k] - uj[k] + KOLEO_EPS;  // PairwiseDistance adds ε to the difference
            d2 += v[k] * v[k];
        }
        double d = sqrt(d2);
        loss -= log(d + KOLEO_EPS);
        // d(−log(d + ε)/n)/dv = −v / (n·d·(d + ε)); v depends on u_i (+) and u_j (−).
        if (d > 0) {
            double g = -1.0 / ((double)n * d * (d + KOLEO_EPS));
            for (int k = 0; k < D; k++) {
                du[(size_t)i * D + k] += g * v[k];
                du[(size_t)j * D + k] -= g * v[k];
            }
        }
    }
    loss /= n;
    // Through the normalisation: dx = (du − u (u·du)) / ‖x‖ (zero rows pass du / ε).
    for (int i = 0; i < n; i++) {
        const double *ui = u + (size_t)i * D, *gi = du + (size_t)i * D;
        double dot = 0;
        if (norm[i] > KOLEO_EPS)
            for (int k = 0; k < D; k++) dot += ui[k] * gi[k];
        for (int k = 0; k < D; k++)
            dx[(size_t)i * D + k] += (float)((double)weight * (gi[k] - ui[k] * dot) / norm[i]);
    }
    free(u); free(norm); free(du); free(v);
    return loss;
}
