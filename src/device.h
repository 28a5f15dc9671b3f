// The compute device a command runs on (--device cpu|cuda). The CUDA engine
// behind DEVICE_CUDA lives in src/cuda/; this header is all the rest of the
// program needs to name it, so nothing outside the engine seam includes a
// CUDA header.
#ifndef DINO_DEVICE_H
#define DINO_DEVICE_H

#include <stddef.h>

typedef enum { DEVICE_CPU = 0, DEVICE_CUDA = 1 } DeviceKind;

// 1 when this build has the CUDA engine (make CUDA=1), else 0.
int device_cuda_compiled(void);
// "cpu" or "cuda" -> kind. Returns 0, or -1 with err holding one sentence:
// an unknown name, or "cuda" in a build without CUDA ("this build has no
// CUDA; rebuild with make CUDA=1").
int device_parse(const char *name, DeviceKind *kind, char *err, size_t errlen);
const char *device_name(DeviceKind kind);

#endif
