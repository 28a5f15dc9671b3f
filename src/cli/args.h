// Command-line flags for the `dino` subcommands, in the reference's style:
// `--name value`, `--name=value`, booleans as true/false/1/0 (a bare boolean
// flag means true), and lists of numbers (`--nb_knn 10 20 100`). Each command
// declares a table of flags; unknown flags and bad values are one-line errors.
#ifndef DINO_CLI_ARGS_H
#define DINO_CLI_ARGS_H

typedef enum { ARG_INT, ARG_FLOAT, ARG_STRING, ARG_BOOL, ARG_INT_LIST, ARG_FLOAT_LIST } ArgType;

#define ARG_LIST_MAX 16

typedef struct {
    int n;
    int v[ARG_LIST_MAX];
} IntList;

typedef struct {
    int n;
    float v[ARG_LIST_MAX];
} FloatList;

typedef struct {
    const char *name;  // without the leading dashes
    ArgType type;
    void *value;       // int*, float*, const char**, int* (bool), IntList*, FloatList*
    const char *help;
} ArgSpec;

// Parses argv[1..] (argv[0] is the subcommand). Positional arguments are
// stored in order into `positional` (up to max_positional; more is an error)
// and their count is returned. `--help` prints usage and exits 0.
int args_parse(const char *command, const char *usage, const ArgSpec *specs, int argc,
               char **argv, const char **positional, int max_positional);
void args_print_help(const char *command, const char *usage, const ArgSpec *specs);

#endif
