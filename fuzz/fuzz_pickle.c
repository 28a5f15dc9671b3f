// libFuzzer target: the safe pickle reader on arbitrary bytes. Every input
// must either parse (then be printable) or fail with a message; never crash,
// leak or read out of bounds. Build and run: fuzz/run.sh pickle
#include <stddef.h>
#include <stdint.h>

#include "io/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    PickleDoc *d = pickle_parse(data, size, "fuzz", err, sizeof err);
    if (d) {
        char buf[1024];
        pickle_repr(pickle_root(d), buf, sizeof buf);
        pickle_free(d);
    }
    return 0;
}
