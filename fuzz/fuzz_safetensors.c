// libFuzzer target: safetensors files through safetensors_open and safetensors_read_f32.
// The entry, its input layout and its checks are in fuzz_entries.h.
#include "fuzz_entries.h"
#include "fuzz_main.h"

#ifndef FUZZ_HAVE_IO
#error "this reader is not in this tree yet"
#endif
FUZZ_TARGET(fuzz_entry_safetensors)
