// The dtype table (dtype.h) and the one conversion to float32 every reader uses.
#include "io/dtype.h"

#include <string.h>

#include "io/half.h"

static const DTypeTraits TRAITS[DT_COUNT] = {
    [DT_F32] = {"float32", "F32", 32, 1},
    [DT_F16] = {"float16", "F16", 16, 1},
    [DT_BF16] = {"bfloat16", "BF16", 16, 1},
    [DT_I32] = {"int32", "I32", 32, 1},
    [DT_I64] = {"int64", "I64", 64, 1},
    [DT_U8] = {"uint8", "U8", 8, 1},
    [DT_F64] = {"float64", "F64", 64, 1},
    [DT_I16] = {"int16", "I16", 16, 1},
    [DT_I8] = {"int8", "I8", 8, 1},
    [DT_U16] = {"uint16", "U16", 16, 1},
    [DT_U32] = {"uint32", "U32", 32, 1},
    [DT_U64] = {"uint64", "U64", 64, 1},
    [DT_BOOL] = {"bool", "BOOL", 8, 0},
    [DT_C64] = {"complex64", "C64", 64, 0},
    [DT_F8_E5M2] = {"float8_e5m2", "F8_E5M2", 8, 0},
    [DT_F8_E4M3] = {"float8_e4m3fn", "F8_E4M3", 8, 0},
    [DT_F8_E8M0] = {"float8_e8m0fnu", "F8_E8M0", 8, 0},
    [DT_F8_E4M3FNUZ] = {"float8_e4m3fnuz", "F8_E4M3FNUZ", 8, 0},
    [DT_F8_E5M2FNUZ] = {"float8_e5m2fnuz", "F8_E5M2FNUZ", 8, 0},
    [DT_F4] = {"float4_e2m1fn_x2", "F4", 4, 0},
    [DT_F6_E2M3] = {"float6_e2m3", "F6_E2M3", 6, 0},
    [DT_F6_E3M2] = {"float6_e3m2", "F6_E3M2", 6, 0},
};

static const DTypeTraits UNKNOWN = {"?", "?", 0, 0};

const DTypeTraits *dtype_traits(DType t) {
    return (unsigned)t < DT_COUNT ? &TRAITS[t] : &UNKNOWN;
}

int dtype_from_safetensors(const char *name) {
    for (int t = 0; t < DT_COUNT; t++)
        if (!strcmp(TRAITS[t].safetensors, name)) return t;
    return -1;
}

float dtype_elem_f32(DType t, const uint8_t *base, uint64_t i) {
    switch (t) {
        case DT_F32: { float v; memcpy(&v, base + 4 * i, 4); return v; }
        case DT_F16: { uint16_t v; memcpy(&v, base + 2 * i, 2); return half_to_f32(v); }
        case DT_BF16: { uint16_t v; memcpy(&v, base + 2 * i, 2); return bf16_to_f32(v); }
        case DT_F64: { double v; memcpy(&v, base + 8 * i, 8); return (float)v; }
        case DT_I64: { int64_t v; memcpy(&v, base + 8 * i, 8); return (float)v; }
        case DT_U64: { uint64_t v; memcpy(&v, base + 8 * i, 8); return (float)v; }
        case DT_I32: { int32_t v; memcpy(&v, base + 4 * i, 4); return (float)v; }
        case DT_U32: { uint32_t v; memcpy(&v, base + 4 * i, 4); return (float)v; }
        case DT_I16: { int16_t v; memcpy(&v, base + 2 * i, 2); return (float)v; }
        case DT_U16: { uint16_t v; memcpy(&v, base + 2 * i, 2); return (float)v; }
        case DT_I8: return (float)(int8_t)base[i];
        case DT_U8: return (float)base[i];
        default: return 0;
    }
}

void dtype_read_f32(DType t, const void *src, float *dst, size_t n) {
    if (t == DT_F32) {
        memcpy(dst, src, n * 4);
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = dtype_elem_f32(t, (const uint8_t *)src, i);
}
