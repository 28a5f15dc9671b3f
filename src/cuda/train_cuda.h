// One DINO training step on a CUDA device, driven by the CPU trainer
// (src/train/trainer.c): the Trainer keeps its host buffers (student,
// teacher, AdamW moments, centre) as the checkpoint's source of truth at the
// points where they are read (saving, the k-NN hook, the distributed
// start-up sync); between those points the device copies are authoritative.
// The parameter, gradient, moment and teacher buffers on the device are flat
// and laid out exactly as the host ParamTable, so moving state is one copy
// per buffer. In a build without CUDA (no -DDINO_CUDA) these functions are
// stubs (src/cuda/train_cuda_stub.c): create refuses with one sentence.
#ifndef DINO_CUDA_TRAIN_CUDA_H
#define DINO_CUDA_TRAIN_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>

#include "batch.h"
#include "train/trainer.h"


typedef struct CudaTrainer CudaTrainer;

// Picks the device (the local rank's under mpirun), allocates the flat
// buffers, uploads t's state, and with several ranks sets up NCCL (the
// unique id goes out over the MPI layer of src/train/dist.h). NULL with err
// filled when there is no usable device or this build has no CUDA.
CudaTrainer *cuda_trainer_create(Trainer *t, char *err, size_t errlen);
void cuda_trainer_free(CudaTrainer *c);

// Host -> device: the student, teacher, moments, step counts and centre of t.
void cuda_trainer_upload(CudaTrainer *c, const Trainer *t);
// Device -> host into t's buffers (waits for the queued work first).
void cuda_trainer_download(CudaTrainer *c, const Trainer *t);

// trainer_step's contract on the device: returns 0, or -1 when the loss is
// not finite (then no state was changed). The optimizer, EMA and centre
// updates are queued and not waited for: the next step's upload overlaps them.
int cuda_trainer_step(CudaTrainer *c, Trainer *t, const Batch *b, StepStats *st);
// Waits until everything queued has finished (timing, before reading results).
void cuda_trainer_sync(CudaTrainer *c);

// Test access: copies (at most n floats of) one tensor of the last step to
// host memory after waiting for the queued work; returns its full size.
typedef enum {
    CUDA_TENSOR_STUDENT_LOGITS = 0,  // (ncrops·B, K)
    CUDA_TENSOR_TEACHER_LOGITS = 1,  // (2B, K)
    CUDA_TENSOR_DLOGITS = 2,         // (ncrops·B, K) dLoss/dstudent logits
    CUDA_TENSOR_GRADS = 3,           // (table total) after all-reduce and clipping
    CUDA_TENSOR_STUDENT_FEATURES = 4,  // (ncrops·B, D) CLS features, crop-major
} CudaTrainerTensor;
size_t cuda_trainer_fetch(CudaTrainer *c, CudaTrainerTensor which, float *host, size_t n);

// A one-line description of the device ("NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB").
const char *cuda_trainer_device(const CudaTrainer *c);

#ifdef __cplusplus
}
#endif

#endif
