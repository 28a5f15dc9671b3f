// safetensors files (docs/FORMATS.md §3): u64 header length, a JSON header (parsed
// with cJSON) naming each tensor's dtype, shape and byte range, then the data.
// The reader applies the reference implementation's checks (header at most
// 100 MB, valid UTF-8 JSON, ranges contiguous from 0 with no gap, overlap or
// trailing byte, sizes equal to shape x dtype) and refuses duplicate names;
// tensor bytes are read on demand. The writer packs float32 tensors sorted by
// name, pads the header with spaces to a multiple of 8, and replaces the file
// atomically.
#ifndef DINO_SAFETENSORS_H
#define DINO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "io/dtype.h"

typedef struct {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    uint64_t begin, end;  // relative to the data section
} SafeTensor;

typedef struct {
    char *path;
    int fd;
    uint64_t file_size, data_start;
    int n;
    SafeTensor *t;  // in file (header) order
    int n_meta;
    char **meta_key, **meta_value;
} SafeFile;

#define SAFETENSORS_MAX_HEADER 100000000ull

// Opens and validates. NULL with err filled ("PATH: problem").
SafeFile *safetensors_open(const char *path, char *err, size_t errlen);
void safetensors_close(SafeFile *f);
const SafeTensor *safetensors_find(const SafeFile *f, const char *name);
const char *safetensors_meta(const SafeFile *f, const char *key);  // NULL when absent
// Reads tensor t as float32 (from F32, F16, BF16, F64 or an integer type)
// into out (t->numel floats). 0, or -1 with err filled.
int safetensors_read_f32(const SafeFile *f, const SafeTensor *t, float *out, char *err,
                         size_t errlen);
// Does the file look like safetensors (a plausible length and '{' after it)?
int safetensors_sniff(const char *path);

typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} SafeWriteTensor;

// Writes float32 tensors (sorted by name in the file) with optional string
// metadata (meta_kv = key, value, key, value...). 0, or -1 with err filled.
int safetensors_write_f32(const char *path, const SafeWriteTensor *t, int n,
                          const char *const *meta_kv, int n_meta, char *err, size_t errlen);

#endif
