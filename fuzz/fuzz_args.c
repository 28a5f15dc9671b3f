// libFuzzer target: the command-line flag parser (src/cli/args.c, compiled
// in here since src/cli is not part of libdino.a). Bad flags end in dino_die,
// which the fuzz build turns into a jump back (fuzz_main.h); --help, which
// prints and exits 0, is answered by args_print_help instead (fuzz_entries.h).
#include "cli/args.c"
#include "fuzz_entries.h"
#include "fuzz_main.h"

FUZZ_TARGET(fuzz_entry_args)
