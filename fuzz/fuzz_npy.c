// libFuzzer target: .npy arrays through npy_read_f32 and npy_read_i64.
// The entry, its input layout and its checks are in fuzz_entries.h.
#include "fuzz_entries.h"
#include "fuzz_main.h"

#ifndef FUZZ_HAVE_NPY
#error "this reader is not in this tree yet"
#endif
FUZZ_TARGET(fuzz_entry_npy)
