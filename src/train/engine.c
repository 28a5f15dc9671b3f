// What each engine supports, and building one by kind (see engine.h).
#include "train/engine.h"

#include "common.h"

int train_engine_supports(DeviceKind kind, EngineFeature f) {
    if (kind == DEVICE_CPU) return 1;
    // The CUDA engine: ViTs with AdamW and the reference's centring only.
    (void)f;
    return 0;
}

const char *train_engine_feature_name(EngineFeature f) {
    switch (f) {
    case ENGINE_KOLEO: return "KoLeo";
    case ENGINE_SINKHORN_KNOPP: return "Sinkhorn-Knopp";
    case ENGINE_OPTIM_SGD: return "SGD";
    case ENGINE_OPTIM_LARS: return "LARS";
    case ENGINE_RESNET: return "ResNet";
    case ENGINE_BN_HEAD: return "BatchNorm in the head";
    }
    return "?";
}

TrainEngine *train_engine_create(DeviceKind kind, TrainState *state, const EngineOptions *o,
                                 char *err, size_t errlen) {
    if (kind == DEVICE_CUDA) return train_engine_cuda_create(state, o, err, errlen);
    return train_engine_cpu_create(state, o, err, errlen);
}

void train_engine_free(TrainEngine *e) {
    if (e) e->ops->free(e);
}
