// Reader for PyTorch's torch.save files (docs/FORMATS.md §2, zip format since
// torch 1.6): the zip is opened with libzip, the root folder is taken from the
// first entry, data.pkl is parsed by the safe pickle reader (pickle.h) and
// tensor storages (data/<key>, STORED entries) are read on demand, checked
// against their declared sizes and CRCs, and converted to float32. Legacy
// (pre-1.6) files, TorchScript archives, big-endian files, compressed or
// encrypted entries are refused with a sentence saying what to do.
#ifndef DINO_PTH_H
#define DINO_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "io/pickle.h"

typedef struct PthFile PthFile;

// Opens and parses `path`. NULL with err filled on any problem.
PthFile *pth_open(const char *path, char *err, size_t errlen);
void pth_close(PthFile *f);
// The unpickled object (usually a dict).
const PickleValue *pth_root(const PthFile *f);
// Is this file a zip or legacy PyTorch file (by its first bytes)?
int pth_sniff(const char *path);

size_t pth_tensor_numel(const PickleValue *t);
// Writes tensor t (a PV_TENSOR from this file) into out (pth_tensor_numel
// floats, C order), converting from its storage type (f64/f32/f16/bf16/ints).
// 0, or -1 with err filled (missing or short storage, CRC mismatch, bool).
int pth_tensor_read_f32(PthFile *f, const PickleValue *t, float *out, char *err, size_t errlen);
// Checks, without reading it, that a storage's zip entry exists with the
// size its persistent id declares. 0, or -1 with err filled.
int pth_storage_check(PthFile *f, const PickleValue *storage, char *err, size_t errlen);
// Frees the storages read so far (they are re-read if asked for again), so
// loading a model needs memory for the model plus one storage, not two copies.
void pth_release_storages(PthFile *f);

#endif
