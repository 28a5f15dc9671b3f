// libFuzzer target: CIFAR-10/100 binary batches through dataset_open.
// The entry, its input layout and its checks are in fuzz_entries.h.
#include "fuzz_entries.h"
#include "fuzz_main.h"

FUZZ_TARGET(fuzz_entry_cifar)
