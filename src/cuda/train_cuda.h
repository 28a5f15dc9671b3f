// The CUDA training engine (train/engine.h's interface; created through
// train_engine_create with DEVICE_CUDA). The TrainState's host buffers
// (student, teacher, AdamW moments, centre) are the checkpoint's source of
// truth at the points where they are read (saving, the k-NN hook, the
// distributed start-up sync), which download before; between those points
// the device copies are authoritative. The parameter, gradient, moment and
// teacher buffers on the device are flat and laid out exactly as the host
// ParamTable, so moving state is one copy per buffer. In a build without
// CUDA (no -DDINO_CUDA) the engine's create refuses with one sentence
// (src/cuda/train_cuda_stub.c). This header adds only the tests' access.
#ifndef DINO_CUDA_TRAIN_CUDA_H
#define DINO_CUDA_TRAIN_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>

#include "train/engine.h"

// Test access: copies (at most n floats of) one tensor of the last step to
// host memory after waiting for the queued work; returns its full size.
// e must be a CUDA engine.
typedef enum {
    CUDA_TENSOR_STUDENT_LOGITS = 0,  // (ncrops·B, K)
    CUDA_TENSOR_TEACHER_LOGITS = 1,  // (2B, K)
    CUDA_TENSOR_DLOGITS = 2,         // (ncrops·B, K) dLoss/dstudent logits
    CUDA_TENSOR_GRADS = 3,           // (table total) after all-reduce and clipping
    CUDA_TENSOR_STUDENT_FEATURES = 4,  // (ncrops·B, D) CLS features, crop-major
} CudaTrainerTensor;
size_t cuda_engine_fetch(TrainEngine *e, CudaTrainerTensor which, float *host, size_t n);

#ifdef __cplusplus
}
#endif

#endif
