// The device selector (see device.h).
#include "device.h"

#include <string.h>

#include "common.h"

int device_cuda_compiled(void) {
#ifdef DINO_CUDA
    return 1;
#else
    return 0;
#endif
}

int device_parse(const char *name, DeviceKind *kind, char *err, size_t errlen) {
    if (!name || !strcmp(name, "cpu")) {
        *kind = DEVICE_CPU;
        return 0;
    }
    if (!strcmp(name, "cuda")) {
        if (!device_cuda_compiled())
            return dino_errf(err, errlen, "--device cuda: this build has no CUDA; rebuild with make CUDA=1");
        *kind = DEVICE_CUDA;
        return 0;
    }
    return dino_errf(err, errlen, "--device: unknown device '%s' (cpu, cuda)", name);
}

const char *device_name(DeviceKind kind) { return kind == DEVICE_CUDA ? "cuda" : "cpu"; }
