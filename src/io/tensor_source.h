// A file of named tensors, whatever its format: our native files, PyTorch
// .pth and safetensors (docs/FORMATS.md). Opening detects the format once and
// picks its reader; everything after goes through the same calls: how many
// tensors, each one's name, type and shape, reading one as float32, and
// string metadata. A training checkpoint holds several models: opening
// selects one (`key`, as --checkpoint_key) and lists only its tensors.
// Every failure fills err with one sentence naming the file and the problem.
#ifndef DINO_IO_TENSOR_SOURCE_H
#define DINO_IO_TENSOR_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/key_index.h"

typedef struct {
    const char *name;       // within the selected model; valid until close
    const char *file_name;  // as the file spells it (with the selected model's prefix)
    const char *dtype;      // the format's own name for the type: "float32", "F32"
    int ndim;
    int64_t shape[8];
    size_t numel;
} TensorInfo;

typedef struct TensorSource TensorSource;

// What each format implements. `impl` is the format's own state.
typedef struct {
    int (*count)(const void *impl);
    void (*info)(const void *impl, int i, TensorInfo *out);
    // Tensor i as float32 into dst (its numel values). 0, or -1 with err filled.
    int (*read_f32)(void *impl, int i, float *dst, char *err, size_t errlen);
    // A metadata value, or NULL; valid until the next call or close.
    const char *(*meta)(void *impl, const char *key);
    // The "format:" line and the file's metadata or contents, for `dino info`.
    // `names` says how the tensor names were read ("timm/DINO", "Hugging
    // Face Dinov2"...), for formats whose naming varies.
    void (*describe)(const void *impl, const char *names, FILE *out);
    void (*close)(void *impl);
} TensorSourceOps;

struct TensorSource {
    const TensorSourceOps *ops;
    void *impl;
    const char *path;
    const char *key;  // the model selected in a training checkpoint, or NULL
    KeyIndex names;   // tensor_source_find's index
};

// Opens `path` in whichever format it is. `key` names the model of a training
// checkpoint ("teacher" when NULL; a file without it is used whole, except a
// native training checkpoint asked for a model it lacks). 0, or -1 with err
// filled and s zeroed.
int tensor_source_open(TensorSource *s, const char *path, const char *key, char *err,
                       size_t errlen);
void tensor_source_close(TensorSource *s);

int tensor_source_count(const TensorSource *s);
void tensor_source_info(const TensorSource *s, int i, TensorInfo *out);
// The index of the tensor named `name` (within the selected model), or -1.
int tensor_source_find(const TensorSource *s, const char *name);
// Tensor i as n float32 values (n must be its numel). 0, or -1 with err filled.
int tensor_source_read_f32(TensorSource *s, int i, float *dst, size_t n, char *err,
                           size_t errlen);
// Metadata: the native file's entries, safetensors' __metadata__; for .pth,
// "args.NAME" is attribute NAME of the checkpoint's argparse "args" when it
// is a bool or an integer (as "0", "1", "42"). NULL when absent.
const char *tensor_source_meta(TensorSource *s, const char *key);
void tensor_source_describe(const TensorSource *s, const char *names, FILE *out);

// The formats' readers, chosen by tensor_source_open. Each fills s->ops,
// s->impl and s->key, or fills err and returns -1 with nothing to close.
int tensor_source_open_native(TensorSource *s, const char *path, const char *key, char *err,
                              size_t errlen);
int tensor_source_open_pth(TensorSource *s, const char *path, const char *key, char *err,
                           size_t errlen);
int tensor_source_open_safetensors(TensorSource *s, const char *path, char *err, size_t errlen);

#endif
