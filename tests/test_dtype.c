// The dtype table every tensor reader shares (src/io/dtype.c): the native
// format's on-disk codes stay put, every safetensors name maps back to its
// type, and each readable type converts known bit patterns exactly.
#include <string.h>

#include "io/dtype.h"
#include "testlib.h"

int main(void) {
    // Native codes are written into .dino files: renumbering breaks old files.
    CHECK(DT_F32 == 0 && DT_F16 == 1 && DT_BF16 == 2 && DT_I32 == 3 && DT_I64 == 4 && DT_U8 == 5 &&
              DT_NATIVE_COUNT == 6,
          "the native format's dtype codes are 0-5 in their historical order");
    int sizes_ok = dtype_traits(DT_F32)->bits == 32 && dtype_traits(DT_F16)->bits == 16 &&
                   dtype_traits(DT_BF16)->bits == 16 && dtype_traits(DT_I32)->bits == 32 &&
                   dtype_traits(DT_I64)->bits == 64 && dtype_traits(DT_U8)->bits == 8;
    CHECK(sizes_ok, "native dtype widths");

    int roundtrip = 1, named = 1;
    for (int t = 0; t < DT_COUNT; t++) {
        const DTypeTraits *tr = dtype_traits((DType)t);
        if (dtype_from_safetensors(tr->safetensors) != t) roundtrip = 0;
        if (!strcmp(tr->name, "?") || tr->bits <= 0) named = 0;
    }
    CHECK(roundtrip, "every safetensors dtype name maps back to its type");
    CHECK(named, "every type has a name and a width");
    CHECK(dtype_from_safetensors("F33") < 0 && dtype_from_safetensors("") < 0,
          "unknown safetensors names are not a type");
    CHECK(!strcmp(dtype_traits((DType)DT_COUNT)->name, "?"), "out-of-range types read as '?'");
    CHECK(!dtype_traits(DT_BOOL)->reads_as_f32 && !dtype_traits(DT_C64)->reads_as_f32 &&
              !dtype_traits(DT_F8_E4M3)->reads_as_f32,
          "bool, complex and float8 are not read as float32");

    // Known bit patterns, little-endian.
    const uint16_t f16[3] = {0x3C00, 0xC000, 0x0001};   // 1, -2, smallest subnormal
    const uint16_t bf16[2] = {0x3F80, 0x4049};          // 1, 3.140625
    const int8_t i8[2] = {-3, 127};
    const uint16_t u16[1] = {65535};
    const double f64[1] = {0.1};
    const int64_t i64[1] = {-(1LL << 40)};
    float out[3];
    dtype_read_f32(DT_F16, f16, out, 3);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 5.9604644775390625e-8f, "float16 converts exactly");
    dtype_read_f32(DT_BF16, bf16, out, 2);
    CHECK(out[0] == 1.0f && out[1] == 3.140625f, "bfloat16 converts exactly");
    dtype_read_f32(DT_I8, i8, out, 2);
    CHECK(out[0] == -3.0f && out[1] == 127.0f, "int8 converts with its sign");
    dtype_read_f32(DT_U16, u16, out, 1);
    CHECK(out[0] == 65535.0f, "uint16 converts without sign");
    dtype_read_f32(DT_F64, f64, out, 1);
    CHECK(out[0] == 0.1f, "float64 rounds to the nearest float32");
    dtype_read_f32(DT_I64, i64, out, 1);
    CHECK(out[0] == -1099511627776.0f, "int64 converts");
    const uint8_t odd[5] = {0xAA, 0x00, 0x00, 0x80, 0x3F};  // a float32 1.0 at an odd address
    CHECK(dtype_elem_f32(DT_F32, odd + 1, 0) == 1.0f, "unaligned elements read correctly");
    return test_finish();
}
