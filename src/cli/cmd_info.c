// `dino info FILE`: what a model or checkpoint file is (native, .pth,
// safetensors), its training progress metadata, the architecture inferred
// from it, its parameter count and its tensor table.
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "io/model_io.h"

int cmd_info(int argc, char **argv) {
    const char *key = NULL;
    int heads = 0, all = 0;
    const ArgSpec specs[] = {
        {"checkpoint_key", ARG_STRING, &key, "model of a training checkpoint: teacher or student (default teacher)"},
        {"heads", ARG_INT, &heads, "attention heads (0: D/64, as every DINO ViT)", ARG_RANGE(0, ARG_MAX_HEADS)},
        {"all", ARG_BOOL, &all, "list every tensor, not the first 40"},
        {NULL, 0, NULL, NULL},
    };
    const char *pos[1];
    int n = args_parse("info", "FILE", specs, argc, argv, pos, 1);
    if (n != 1) dino_die("dino info expects one FILE (see dino info --help)");
    ModelLoadOptions opt = {key, MODEL_HEAD_AUTO, heads};
    char err[1024];
    if (model_describe(pos[0], &opt, stdout, all, err, sizeof err)) dino_die("%s", err);
    return 0;
}
