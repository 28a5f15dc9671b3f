// The native file format (docs/FORMATS.md): magic, version, key/value
// metadata, a table of named tensors (dtype, shape, aligned offset) and a
// checksum over everything. Used for models and for training checkpoints
// (student, teacher, optimizer moments, center, progress). Writes are atomic:
// a temporary file, fsync, rename, so a crash never leaves a half file.
// Reads verify everything before returning, and fail with one sentence that
// names the file and the problem.
#ifndef DINO_CHECKPOINT_H
#define DINO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "io/dtype.h"

typedef struct CkptWriter CkptWriter;
// Starts writing `path` (through path.tmp). Returns NULL and fills err on failure.
CkptWriter *ckpt_writer_open(const char *path, char *err, size_t errlen);
void ckpt_add_meta(CkptWriter *w, const char *key, const char *value);
// The data is copied or written at commit; it must stay valid until then.
void ckpt_add_tensor(CkptWriter *w, const char *name, DType dtype, int ndim,
                     const int64_t *shape, const void *data);
// Writes, fsyncs and renames into place. 0 on success, -1 with err filled
// (the previous file at `path` is then untouched). Frees the writer either way.
int ckpt_writer_commit(CkptWriter *w, char *err, size_t errlen);

typedef struct {
    char name[96];
    DType dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    const void *data;  // into the loaded file
} CkptTensor;

typedef struct Ckpt Ckpt;
// Reads and verifies the whole file. NULL with err filled on any problem.
Ckpt *ckpt_open(const char *path, char *err, size_t errlen);
void ckpt_close(Ckpt *c);
const char *ckpt_meta(const Ckpt *c, const char *key);  // NULL when absent
int ckpt_n_meta(const Ckpt *c);
// The i-th metadata entry, in file order (for listing, e.g. `dino info`).
void ckpt_meta_at(const Ckpt *c, int i, const char **key, const char **value);
int ckpt_n_tensors(const Ckpt *c);
const CkptTensor *ckpt_tensor_at(const Ckpt *c, int i);
const CkptTensor *ckpt_tensor(const Ckpt *c, const char *name);  // NULL when absent
// Is this file in the native format (by its magic)?
int ckpt_is_native(const char *path);

#endif
