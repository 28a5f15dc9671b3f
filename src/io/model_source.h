// The tensors of one model file under the reference's names: the file is
// read through tensor_source.h and each tensor becomes an entry named as the
// reference's backbone ("blocks.0.attn.qkv.weight") and DINO head
// ("head.mlp.0.weight"). Prefixes "module." and "backbone." are removed
// anywhere in a key (as load_pretrained_weights does), DINOv2's block chunks
// are undone, Hugging Face names are mapped per docs/FORMATS.md §4 and timm's
// DINOv2 names to the official ones, and tensors the reference keeps as one
// are fused: query/key/value into qkv, SwiGLU's w1/w2 into w12 (read as the
// parts, one after the other), DINOv3's bias_mask multiplied into its bias.
#ifndef DINO_IO_MODEL_SOURCE_H
#define DINO_IO_MODEL_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "io/key_index.h"
#include "io/tensor_source.h"

typedef struct ModelEntry ModelEntry;
struct ModelEntry {
    char name[160];  // normalised
    char orig[160];  // as in the file (truncated for display if longer)
    const char *dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    int at;                // the tensor's index in the file, or -1 (a fused entry)
    ModelEntry *parts[3];  // a fused qkv: query, key, value (DINOv3: a missing key bias reads as 0);
                           // a fused SwiGLU w12: w1 (gate), w2 (up)
    int nparts;
    int is_part;           // consumed through a fused entry
    int mask_at;           // DINOv3: 1 + index of the bias_mask multiplied into this bias, or 0
    int used;              // read (model_entry_read sets it)
};

typedef struct {
    TensorSource src;
    const char *path;
    ModelEntry *e;
    int n, cap;
    int hf;               // Hugging Face names were mapped
    int hf_dinov2;        // ... of a Dinov2Model (LayerScale or registers seen)
    int hf_dinov3;        // ... of a DINOv3ViTModel
    int dinov3;           // a DINOv3 file (RoPE, storage tokens), official or Hugging Face
    int pos_no_cls;       // timm's DINOv2 with registers: pos_embed has no CLS row
    KeyIndex names;       // entries by normalised name (not the fused parts)
} ModelSource;


// Opens `path` (any format; `key`: the training checkpoint's model, as
// tensor_source_open) and normalises the names. 0, or -1 with err filled (one
// sentence naming the file and the problem) and nothing to close.
int model_source_open(ModelSource *s, const char *path, const char *key, char *err, size_t errlen);
void model_source_close(ModelSource *s);
// The entry of a normalised name (not a fused part), or NULL.
ModelEntry *model_source_find(ModelSource *s, const char *name);
// Reads e (fused parts and masks applied) as e->numel floats and marks it
// used. 0, or -1 with err filled.
int model_entry_read(ModelSource *s, ModelEntry *e, float *out, char *err, size_t errlen);
// The file's metadata (tensor_source_meta), or NULL.
const char *model_source_meta(ModelSource *s, const char *key);
// A metadata value that is an integer in [0, 2^30]: 1 with *out set, else 0.
int model_source_meta_int(ModelSource *s, const char *key, int *out);
// How the names were read, for `dino info`: "timm/DINO", "Hugging Face ViT"...
const char *model_source_naming(const ModelSource *s);

#endif
