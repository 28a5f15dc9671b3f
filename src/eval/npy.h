// NumPy .npy files (docs/FORMATS.md §6): the exchange format for features and
// labels. Writing produces version 1.0 (2.0 for huge headers) with the header
// padded to a multiple of 64 bytes, exactly what np.save writes. Reading
// accepts versions 1-3, little- and big-endian float/int/uint/bool dtypes and
// C or Fortran order, and converts to the one type the caller asks for
// (float32 for features, int64 for labels), so files from other tools work.
#ifndef DINO_EVAL_NPY_H
#define DINO_EVAL_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

// Writes `data` (C order, little-endian host) with dtype descr "<f4", "<i8",
// "<i4", "|u1" or "<f8". Returns 0, or -1 with err filled.
int npy_write(const char *path, const char *descr, int ndim, const int64_t *shape,
              const void *data, char *err, size_t errlen);
int npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data, char *err,
                  size_t errlen);
int npy_write_i64(const char *path, int ndim, const int64_t *shape, const int64_t *data,
                  char *err, size_t errlen);

typedef struct {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    size_t numel;
    char descr[16];  // as stored in the file, e.g. "<f4"
} NpyInfo;

// Reads the whole array, converted to float32 (any float/int/bool dtype) in C
// order. Returns a malloc'd buffer (free()), or NULL with err filled.
float *npy_read_f32(const char *path, NpyInfo *info, char *err, size_t errlen);
// Reads an integer array (any int/uint/bool dtype, or floats holding whole
// numbers) as int64. NULL with err filled otherwise.
int64_t *npy_read_i64(const char *path, NpyInfo *info, char *err, size_t errlen);

#endif
