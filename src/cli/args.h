// Command-line flags for the `dino` subcommands, in the reference's style:
// `--name value`, `--name=value`, booleans as true/false/1/0 (a bare boolean
// flag means true), and lists of numbers (`--nb_knn 10 20 100`). Each command
// declares a table of flags; unknown flags and bad values are one-line errors.
// A number is the whole word (`1abc` is refused, not read as 1) and, when its
// row gives a range, lies in it: sizes that would only fail later in an
// allocation are refused here, naming the flag, the value and the range.
#ifndef DINO_CLI_ARGS_H
#define DINO_CLI_ARGS_H

#include "arg_limits.h"

// ARG_DOUBLE is for hyper-parameters the reference keeps as Python floats
// (read with strtod, so a schedule computed from them equals the reference's).
typedef enum { ARG_INT, ARG_FLOAT, ARG_DOUBLE, ARG_STRING, ARG_BOOL, ARG_INT_LIST, ARG_FLOAT_LIST } ArgType;

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
    void *value;       // int*, float*, double*, const char**, int* (bool), IntList*, FloatList*
    const char *help;
    // Allowed values of a number, or of each element of a list, both ends
    // included (ARG_RANGE). A row that leaves them out (both 0) is unchecked:
    // any int, or any finite float or double.
    double min, max;
} ArgSpec;

#define ARG_RANGE(lo, hi) (double)(lo), (double)(hi)

// Rows of strings and booleans leave the range out; that is what it is for.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

// Ranges of single commands' flags.
// k-NN: neighbours per query, 50x the reference's largest (200).
#define KNN_MAX_NEIGHBOURS 10000
// k-NN temperature: exp(sim/T) for sim <= 1, summed over up to
// KNN_MAX_NEIGHBOURS, stays finite in float32 (exp(50) · 10^4 < 3.4e38);
// the reference uses 0.07.
#define KNN_MIN_TEMPERATURE 0.02
#define KNN_MAX_TEMPERATURE 100
// Linear probe: lr 10^6x the reference's 0.001 (per 256 images); weight decay
// far past any useful value (the reference's is 0).
#define LINEAR_MAX_LR 1000
#define LINEAR_MAX_WEIGHT_DECAY 10
// dino attention: one image's side before its own 4 GB check on the maps.
#define ATTENTION_MAX_IMAGE_SIDE 8192

// Parses `text` as the value of `what` (a flag such as "--threads", or an
// environment variable): the whole word must be a number, an integer when
// `integer`, within [min, max]; else dies with one line naming what, the
// value and the range.
double args_number(const char *what, const char *text, int integer, double min, double max);

// Parses argv[1..] (argv[0] is the subcommand). Positional arguments are
// stored in order into `positional` (up to max_positional; more is an error)
// and their count is returned. `--help` prints usage and exits 0.
int args_parse(const char *command, const char *usage, const ArgSpec *specs, int argc,
               char **argv, const char **positional, int max_positional);
void args_print_help(const char *command, const char *usage, const ArgSpec *specs);

#endif
