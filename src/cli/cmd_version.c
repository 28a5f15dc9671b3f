// `dino version`: what this binary was built with and how many threads it uses.
#include <cblas.h>
#include <stdio.h>

#include "commands.h"
#include "common.h"

int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("dino.c (built %s %s)\n", __DATE__, __TIME__);
    printf("openblas: %s\n", openblas_get_config());
    printf("threads: %d\n", dino_get_threads());
    return 0;
}
