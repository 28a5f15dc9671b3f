// The element types of the tensor files we read (native .dino, PyTorch .pth,
// safetensors): one enum and one table of traits (names, width, whether and
// how an element reads as float32) shared by the three readers.
#ifndef DINO_IO_DTYPE_H
#define DINO_IO_DTYPE_H

#include <stddef.h>
#include <stdint.h>

// The first DT_NATIVE_COUNT values are the codes the native format stores on
// disk (docs/FORMATS.md §1): never renumber them.
typedef enum {
    DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2, DT_I32 = 3, DT_I64 = 4, DT_U8 = 5,
    DT_F64, DT_I16, DT_I8, DT_U16, DT_U32, DT_U64, DT_BOOL, DT_C64,
    DT_F8_E5M2, DT_F8_E4M3, DT_F8_E8M0, DT_F8_E4M3FNUZ, DT_F8_E5M2FNUZ,
    DT_F4, DT_F6_E2M3, DT_F6_E3M2,
    DT_COUNT
} DType;
#define DT_NATIVE_COUNT 6

typedef struct {
    const char *name;         // PyTorch's: "float32", "bfloat16", ...
    const char *safetensors;  // safetensors' header name: "F32", "BF16", ...
    int bits;                 // per element
    int reads_as_f32;         // 1 when dtype_read_f32 converts it
} DTypeTraits;

// Traits of t; a table entry named "?" for values outside the enum.
const DTypeTraits *dtype_traits(DType t);
// The type whose safetensors name is `name`; -1 when none is.
int dtype_from_safetensors(const char *name);
// Element i of an array of type t at base, as float32 (0 for a type that does
// not read as float32; callers check reads_as_f32 first). Unaligned-safe.
float dtype_elem_f32(DType t, const uint8_t *base, uint64_t i);
// n elements from src to float32 (a plain copy for DT_F32).
void dtype_read_f32(DType t, const void *src, float *dst, size_t n);

#endif
