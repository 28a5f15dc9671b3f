// Hugging Face's names for ViT, Dinov2 and DINOv3 checkpoints (hub layout and
// transformers 5 module layout), and their mapping to the reference's names
// (docs/FORMATS.md §4).
#ifndef DINO_IO_HF_NAMES_H
#define DINO_IO_HF_NAMES_H

#include <stddef.h>

// Rewrites a Hugging Face name in place to the reference's. Returns 1 when
// mapped (*part = 0/1/2 for query/key/value, or 0 for DINOv3's SwiGLU gate,
// with the name ending in "#part"; -1 otherwise), 0 for names with no
// backbone meaning (pooler, classifier, mask_token, RoPE buffers), -1 for
// names not recognised.
int hf_name_map(char *name, size_t cap, int *part);
// A DINOv3ViTModel's own name: its bare patch Conv2d, its layer.N / model.layer.N blocks.
int hf_name_is_dinov3(const char *n);
// Any Hugging Face ViT/Dinov2/DINOv3 backbone name.
int hf_name_is_hf(const char *n);

#endif
