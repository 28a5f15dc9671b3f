// The DINO objective (docs/DINO.md §4): cross-entropy between the centred, sharpened
// teacher distribution of each global crop and the student distribution of
// every other crop, its gradient with respect to the student logits, the
// teacher-temperature schedule, the centre update (split into a batch sum,
// which a distributed run all-reduces, and the momentum step), and the
// collapse statistics of the teacher output that the trainer monitors.
// DINOv2's Sinkhorn-Knopp teacher is an option (sinkhorn_iters).
#ifndef DINO_TRAIN_LOSS_H
#define DINO_TRAIN_LOSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {  // the CUDA loss (src/cuda/loss.cu) calls dino_teacher_temp
#endif

typedef struct {
    int out_dim;                  // K
    int ncrops;                   // 2 global + local crops
    float student_temp;           // 0.1
    double center_momentum;       // 0.9 (a Python float in the reference)
    double warmup_teacher_temp;   // 0.04
    double teacher_temp;          // 0.04
    int warmup_teacher_temp_epochs;  // 0
    // 0: the reference's centring (softmax of (t − center)/τ). n > 0: DINOv2's
    // Sinkhorn-Knopp teacher with n iterations (3 there), which balances the
    // prototypes over the global batch instead; the centre is then unused.
    int sinkhorn_iters;
    float *center;                // (K), starts at zero; owned
    float *tprob;                 // workspace: teacher probabilities (2B, K)
    size_t tprob_cap;
    double *qsum, *rowloss;       // workspace: Σ of each teacher row, loss terms per student row
    size_t qsum_cap, rowloss_cap;
    int B;                        // batch of the last dino_loss_teacher
} DinoLoss;

// Statistics of one loss evaluation.
typedef struct {
    double loss;
    double teacher_entropy;       // mean over the 2B teacher rows of H(P_t)
    double teacher_mean_entropy;  // H(mean over the 2B rows of P_t)
    double teacher_temp;          // τ_t used
} LossStats;

void dino_loss_init(DinoLoss *L, int out_dim, int ncrops, double warmup_teacher_temp,
                    double teacher_temp, int warmup_teacher_temp_epochs);
void dino_loss_free(DinoLoss *L);

// τ_t(epoch): numpy linspace(warmup, final, warmup_epochs) then constant.
double dino_teacher_temp(const DinoLoss *L, int epoch);

// student (ncrops·B, K) raw logits in crop-major order, teacher (2B, K) raw
// logits of the two global crops. Writes dstudent (ncrops·B, K) = dLoss/dstudent
// (may be NULL for evaluation only) and returns the statistics. Uses the
// current centre; does not update it.
LossStats dino_loss_forward_backward(DinoLoss *L, float *dstudent, const float *student,
                                     const float *teacher, int B, int epoch);

// The same in pieces, for student logits that arrive a chunk of rows at a
// time (the student's memory then holds one chunk's activations):
// dino_loss_teacher computes the teacher distributions (kept in L) and every
// statistic except the loss; dino_loss_student takes rows r0..r0+n-1 of the
// crop-major student logits (student and dstudent point at row r0), writes
// their gradient to dstudent (or nothing when NULL) and keeps their loss
// terms; dino_loss_total, once every row has been through, returns the loss.
// Each row is computed exactly as by dino_loss_forward_backward, so the
// results are the same bits however the rows are split.
LossStats dino_loss_teacher(DinoLoss *L, const float *teacher, int B, int epoch);
void dino_loss_student(DinoLoss *L, float *dstudent, const float *student, int r0, int n);
double dino_loss_total(const DinoLoss *L);

// sum (K) = Σ over `rows` rows of teacher (rows, K). This is the quantity a
// distributed run all-reduces before dino_center_update.
void dino_center_batch_sum(float *sum, const float *teacher, int rows, int K);
// center ← m·center + (1−m)·sum/count (count = rows summed over all ranks).
void dino_center_update(DinoLoss *L, const float *sum, int64_t count);

#ifdef __cplusplus
}
#endif

#endif
