// Loading a DinoModel from any file dino.c reads, and saving one. Formats
// (docs/FORMATS.md): our native files (models and training checkpoints),
// PyTorch .pth (backbone-only state dicts, full DINO training checkpoints with
// teacher/student dicts, module./backbone. prefixes removed anywhere in a key
// as the reference's load_pretrained_weights does), timm-style safetensors and
// Hugging Face ViTModel safetensors (query/key/value fused into qkv, LayerNorm
// eps 1e-12), and DINOv2 (official .pth, Hugging Face Dinov2 safetensors:
// registers, LayerScale, SwiGLU, the resize mode of the file's origin), and
// DINOv3 (official .pth, Hugging Face DINOv3ViTModel safetensors: RoPE,
// storage tokens, masked key bias). The architecture is inferred from tensor shapes (heads = D/64,
// as in every DINO ViT, unless overridden); 16-bit and 64-bit floats are
// converted to float32. Nothing is half-loaded: on any error the model is left
// empty and the buffer is not allocated.
#ifndef DINO_MODEL_IO_H
#define DINO_MODEL_IO_H

#include <stddef.h>
#include <stdio.h>

#include "io/checkpoint.h"
#include "model.h"

typedef enum {
    MODEL_HEAD_AUTO = 0,  // load the DINO head when the file has one
    MODEL_HEAD_NONE,      // backbone only, even if the file has a head
    MODEL_HEAD_REQUIRE,   // fail unless the file has a DINO head
} ModelHeadMode;

typedef struct {
    // Which sub-model of a training checkpoint: "teacher" (the default when
    // NULL, as the reference's eval scripts) or "student". A file without that
    // key is used whole, as in the reference.
    const char *checkpoint_key;
    ModelHeadMode head;
    int heads;  // attention heads; 0: D/64 (or the file's recorded value)
} ModelLoadOptions;

// Loads `path` into m (built here with model_build) and *params (a new
// 64-byte-aligned buffer of m->table.total floats; free() it, and call
// model_free(m)). 0 on success; -1 with err filled (one sentence naming the
// file and the problem), m zeroed and *params NULL.
int model_load(const char *path, const ModelLoadOptions *opt, DinoModel *m, float **params,
               char *err, size_t errlen);

// Saves a model: `.safetensors` (by extension) writes safetensors with timm
// names (no "backbone." prefix, head tensors as "head.*", config in
// __metadata__); anything else writes the native format (table names,
// config metadata). Atomic. 0, or -1 with err filled.
int model_save(const char *path, const DinoModel *m, const float *params, char *err,
               size_t errlen);

// Adds the model configuration as native metadata ("vit.dim", "vit.ln_eps",
// "head.out_dim", ...), so model_load needs no inference. Training
// checkpoints should call this too (see docs/FORMATS.md §1.2).
void model_meta_write(CkptWriter *w, const DinoModel *m);

// Prints what `dino info` shows: format, training progress metadata,
// inferred architecture, parameter count, and the tensor table.
// 0, or -1 with err filled.
int model_describe(const char *path, const ModelLoadOptions *opt, FILE *out, int all_tensors,
                   char *err, size_t errlen);

#endif
