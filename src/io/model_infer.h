// The model a file holds, inferred from its tensors' names and shapes (and
// its metadata where it records what shapes cannot say): a ViT (DINO, DINOv2
// with registers, LayerScale or SwiGLU, DINOv3 with RoPE and storage tokens),
// a torchvision ResNet, and the DINO projection head. Layouts recognised but
// not run are refused with what they have.
#ifndef DINO_IO_MODEL_INFER_H
#define DINO_IO_MODEL_INFER_H

#include <stddef.h>

#include "io/model_io.h"
#include "io/model_source.h"

// A torchvision ResNet state_dict (conv1, bn1, layer1..4)?
int model_is_resnet(ModelSource *s);
// Each: 0 with the configuration filled, or -1 with err filled.
int model_infer_vit(ModelSource *s, const ModelLoadOptions *opt, ViTConfig *cfg, char *err, size_t errlen);
int model_infer_resnet(ModelSource *s, ResNetConfig *cfg, char *err, size_t errlen);
// The DINO head on a backbone of D features: 1 found and described in h,
// 0 none, -1 error with err filled.
int model_infer_head(ModelSource *s, int D, HeadConfig *h, char *err, size_t errlen);

#endif
