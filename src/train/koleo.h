// DINOv2's KoLeo regulariser (Sablayrolles et al., "Spreading vectors for
// similarity search"): the negative mean log distance from each feature to
// its nearest neighbour in the batch, after L2 normalisation, which spreads
// the features over the sphere. DINOv2 applies it, weighted 0.1, to the
// student's CLS features of each global crop separately (never between the
// two crops of one image) and on each process's own batch.
#ifndef DINO_TRAIN_KOLEO_H
#define DINO_TRAIN_KOLEO_H

// x (n, D) rows. Returns −mean_i log(‖u_i − u_j(i) + ε‖ + ε) with u = x/‖x‖,
// j(i) the row of largest u_i·u_j (j ≠ i) and ε = 1e-8, as torch's
// F.normalize, PairwiseDistance and KoLeoLoss compute it; adds weight times its
// gradient with respect to x into dx (n, D). n >= 2.
double koleo_loss(const float *x, int n, int D, float weight, float *dx);

#endif
