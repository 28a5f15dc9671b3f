// libFuzzer target: JPEG and PNG decoding through image_decode_file (the dataset path).
// The entry, its input layout and its checks are in fuzz_entries.h.
#include "fuzz_entries.h"
#include "fuzz_main.h"

FUZZ_TARGET(fuzz_entry_image)
