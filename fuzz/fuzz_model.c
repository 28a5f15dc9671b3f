// libFuzzer target: model_load and model_describe on a file of any format.
// The entry, its input layout and its checks are in fuzz_entries.h.
#include "fuzz_entries.h"
#include "fuzz_main.h"

#ifndef FUZZ_HAVE_IO
#error "this reader is not in this tree yet"
#endif
FUZZ_TARGET(fuzz_entry_model)
