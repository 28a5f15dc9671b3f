// libFuzzer target: the JSON-lines log reader behind dino plot (plot_log_read).
// The entry, its input layout and its checks are in fuzz_entries.h.
#include "fuzz_entries.h"
#include "fuzz_main.h"

#ifndef FUZZ_HAVE_PLOT
#error "this reader is not in this tree yet"
#endif
FUZZ_TARGET(fuzz_entry_plot)
