// `dino convert IN OUT`: reads a model from any supported file (native,
// PyTorch .pth, timm or Hugging Face safetensors) and writes it as
// safetensors (OUT ending in .safetensors) or in the native format (anything
// else). .pth is read-only.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "io/model_io.h"

int cmd_convert(int argc, char **argv) {
    const char *key = NULL;
    int heads = 0, no_head = 0;
    const ArgSpec specs[] = {
        {"checkpoint_key", ARG_STRING, &key, "model of a training checkpoint: teacher or student (default teacher)"},
        {"heads", ARG_INT, &heads, "attention heads (0: D/64, as every DINO ViT)", ARG_RANGE(0, ARG_MAX_HEADS)},
        {"no_head", ARG_BOOL, &no_head, "write the backbone only, even if the file has a DINO head"},
        {NULL, 0, NULL, NULL},
    };
    const char *pos[2];
    int n = args_parse("convert", "IN OUT", specs, argc, argv, pos, 2);
    if (n != 2) dino_die("dino convert expects IN and OUT (see dino convert --help)");
    size_t lo = strlen(pos[1]);
    if ((lo >= 4 && !strcmp(pos[1] + lo - 4, ".pth")) || (lo >= 3 && !strcmp(pos[1] + lo - 3, ".pt")))
        dino_die("%s: writing .pth is not supported; write .safetensors or a native file", pos[1]);
    ModelLoadOptions opt = {key, no_head ? MODEL_HEAD_NONE : MODEL_HEAD_AUTO, heads};
    DinoModel m;
    float *params;
    char err[1024];
    if (model_load(pos[0], &opt, &m, &params, err, sizeof err)) dino_die("%s", err);
    if (model_save(pos[1], &m, params, err, sizeof err)) dino_die("%s", err);
    char desc[256];
    model_describe_backbone(&m, desc, sizeof desc);
    printf("wrote %s: %s%s, %zu parameters\n", pos[1], desc, m.has_head ? " + DINO head" : "",
           m.table.total);
    free(params);
    model_free(&m);
    return 0;
}
