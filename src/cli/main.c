// `dino`: the command-line front end. Handles the global --threads flag, then
// hands argv to the subcommand named by argv[1] (`dino --version` is `dino
// version`).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "gemm.h"

static const Command COMMANDS[] = {
    {"train", cmd_train, "train a ViT with DINO on a folder or dataset of images"},
    {"features", cmd_features, "extract features of a dataset to .npy files"},
    {"knn", cmd_knn, "weighted k-NN classification of frozen features"},
    {"linear", cmd_linear, "linear probe on frozen features"},
    {"attention", cmd_attention, "render the last block's attention maps of an image"},
    {"segment-video", cmd_segment_video, "propagate a first-frame object mask through a video"},
    {"davis-eval", cmd_davis_eval, "score video masks with the DAVIS-2017 J&F protocol"},
    {"retrieve", cmd_retrieve, "nearest images of a query; revisited Oxford/Paris mAP"},
    {"copy-detect", cmd_copy_detect, "copy detection mAP on Copydays (CLS + GeM descriptor)"},
    {"augment", cmd_augment, "show the multi-crop augmentation of an image"},
    {"plot", cmd_plot, "plot the curves of a training log"},
    {"convert", cmd_convert, "convert a model between .pth, safetensors and native files"},
    {"info", cmd_info, "describe a model or checkpoint file"},
    {"bench", cmd_bench, "time forward, training step and data pipeline"},
    {"version", cmd_version, "print the build configuration"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
    fprintf(f, "usage: dino <command> [flags]   (dino <command> --help for its flags)\n\ncommands:\n");
    for (const Command *c = COMMANDS; c->name; c++)
        fprintf(f, "  %-14s %s\n", c->name, c->summary);
    fprintf(f, "\nglobal flags:\n  --threads N   threads for OpenMP and OpenBLAS together, 1 to %d (default: all cores)\n"
               "  --version     the same as dino version\n", ARG_MAX_THREADS);
}

static int parse_threads(const char *what, const char *text) {
    return (int)args_number(what, text, 1, 1, ARG_MAX_THREADS);
}

// Removes --threads N / --threads=N from argv (any position) and applies it.
static int take_threads_flag(int argc, char **argv) {
    int threads = 0;
    const char *env = getenv("DINO_THREADS");
    if (env && *env) threads = parse_threads("DINO_THREADS", env);
    int out = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads")) {
            if (i + 1 >= argc) dino_die("--threads expects a number");
            threads = parse_threads("--threads", argv[++i]);
            continue;
        }
        if (!strncmp(argv[i], "--threads=", 10)) {
            threads = parse_threads("--threads", argv[i] + 10);
            continue;
        }
        argv[out++] = argv[i];
    }
    argv[out] = NULL;
    dino_set_threads(threads);
    return out;
}

int main(int argc, char **argv) {
    argc = take_threads_flag(argc, argv);
    // The GEMM backends' overrides (docs/ENGINE.md, "GEMM backends").
    char gerr[256];
    if ((getenv("DINO_GEMM") || getenv("DINO_BF16")) &&
        gemm_choose(getenv("DINO_GEMM"), getenv("DINO_BF16"), gerr, sizeof gerr))
        dino_warn("%s", gerr);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) argv[1] = "version";
    for (const Command *c = COMMANDS; c->name; c++)
        if (!strcmp(c->name, argv[1])) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "dino: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 1;
}
