// The flag parser declared in args.h.
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int has_range(const ArgSpec *s) { return s->min != 0 || s->max != 0; }

// A range end as the table wrote it: integers without a fraction.
static void format_bound(char *buf, size_t n, double v) {
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%g", v);
}

void args_print_help(const char *command, const char *usage, const ArgSpec *specs) {
    printf("usage: dino %s %s\n\n", command, usage);
    for (const ArgSpec *s = specs; s && s->name; s++) {
        char def[64] = "";
        switch (s->type) {
        case ARG_INT: snprintf(def, sizeof def, "%d", *(int *)s->value); break;
        case ARG_FLOAT: snprintf(def, sizeof def, "%g", *(float *)s->value); break;
        case ARG_DOUBLE: dino_format_double(def, sizeof def, *(double *)s->value); break;
        case ARG_BOOL: snprintf(def, sizeof def, "%s", *(int *)s->value ? "true" : "false"); break;
        case ARG_STRING: {
            const char *v = *(const char **)s->value;
            snprintf(def, sizeof def, "%s", v ? v : "");
            break;
        }
        case ARG_INT_LIST: {
            const IntList *l = s->value;
            int o = 0;
            for (int i = 0; i < l->n && o < 50; i++) o += snprintf(def + o, sizeof def - o, "%s%d", i ? " " : "", l->v[i]);
            break;
        }
        case ARG_FLOAT_LIST: {
            const FloatList *l = s->value;
            int o = 0;
            for (int i = 0; i < l->n && o < 50; i++) o += snprintf(def + o, sizeof def - o, "%s%g", i ? " " : "", l->v[i]);
            break;
        }
        }
        char note[160] = "", lo[32], hi[32];
        format_bound(lo, sizeof lo, s->min);
        format_bound(hi, sizeof hi, s->max);
        if (def[0] && has_range(s)) snprintf(note, sizeof note, " [default: %s; allowed %s to %s]", def, lo, hi);
        else if (def[0]) snprintf(note, sizeof note, " [default: %s]", def);
        else if (has_range(s)) snprintf(note, sizeof note, " [allowed %s to %s]", lo, hi);
        printf("  --%-26s %s%s\n", s->name, s->help, note);
    }
}

// The whole word as a number in [min, max], or one line naming what, the
// value and (when show_range) the range.
static double number_in(const char *what, const char *text, int integer, double min, double max,
                        int show_range) {
    char *end;
    errno = 0;
    double v = integer ? (double)strtoll(text, &end, 10) : strtod(text, &end);
    int whole = end != text && *end == 0 && !isspace((unsigned char)text[0]);
    if (whole && errno == 0 && isfinite(v) && v >= min && v <= max) return v;
    const char *kind = integer ? "an integer" : "a number";
    if (!show_range) dino_die("%s expects %s, got '%s'", what, kind, text);
    char lo[32], hi[32];
    format_bound(lo, sizeof lo, min);
    format_bound(hi, sizeof hi, max);
    dino_die("%s expects %s from %s to %s, got '%s'", what, kind, lo, hi, text);
}

double args_number(const char *what, const char *text, int integer, double min, double max) {
    return number_in(what, text, integer, min, max, 1);
}

// The value of an int or float row (or one element of a list row).
static double parse_number(const ArgSpec *s, const char *text) {
    char what[140];
    snprintf(what, sizeof what, "--%s", s->name);
    int integer = s->type == ARG_INT || s->type == ARG_INT_LIST;
    if (has_range(s)) return number_in(what, text, integer, s->min, s->max, 1);
    // Unchecked rows: whatever the C type holds.
    if (integer) return number_in(what, text, 1, -INT_MAX, INT_MAX, 0);
    double limit = s->type == ARG_DOUBLE ? DBL_MAX : FLT_MAX;
    return number_in(what, text, 0, -limit, limit, 0);
}

static int parse_bool(const char *s, int *out) {
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "1") || !strcmp(s, "yes")) {
        *out = 1;
        return 1;
    }
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "0") || !strcmp(s, "no")) {
        *out = 0;
        return 1;
    }
    return 0;
}

static int is_number(const char *s) {
    char *end;
    if (!s || !*s) return 0;
    strtod(s, &end);
    return *end == 0;
}

int args_parse(const char *command, const char *usage, const ArgSpec *specs, int argc,
               char **argv, const char **positional, int max_positional) {
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            args_print_help(command, usage, specs);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == 0) {
            if (npos >= max_positional) dino_die("dino %s: unexpected argument '%s' (see --help)", command, arg);
            positional[npos++] = arg;
            continue;
        }
        char name[128];
        const char *eq = strchr(arg + 2, '=');
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (len >= sizeof name) dino_die("dino %s: flag too long: %s", command, arg);
        memcpy(name, arg + 2, len);
        name[len] = 0;
        for (char *c = name; *c; c++)
            if (*c == '-') *c = '_';  // --batch-size and --batch_size both work
        const ArgSpec *s = specs;
        while (s && s->name && strcmp(s->name, name) != 0) s++;
        if (!s || !s->name) dino_die("dino %s: unknown flag --%s (see dino %s --help)", command, name, command);
        const char *val = eq ? eq + 1 : NULL;
        if (s->type == ARG_BOOL) {
            int b = 1;
            if (val) {
                if (!parse_bool(val, &b)) dino_die("--%s expects true or false, got '%s'", name, val);
            } else if (i + 1 < argc && parse_bool(argv[i + 1], &b)) {
                i++;
            } else {
                b = 1;
            }
            *(int *)s->value = b;
            continue;
        }
        if (s->type == ARG_INT_LIST || s->type == ARG_FLOAT_LIST) {
            int n = 0;
            IntList *il = s->value;
            FloatList *fl = s->value;
            if (val) {  // --flag=1,2,3
                char buf[512];
                snprintf(buf, sizeof buf, "%s", val);
                for (char *tok = strtok(buf, ", "); tok; tok = strtok(NULL, ", ")) {
                    if (n >= ARG_LIST_MAX) dino_die("--%s takes at most %d values", name, ARG_LIST_MAX);
                    if (s->type == ARG_INT_LIST) il->v[n++] = (int)parse_number(s, tok);
                    else fl->v[n++] = (float)parse_number(s, tok);
                }
            } else {
                while (i + 1 < argc && is_number(argv[i + 1])) {
                    if (n >= ARG_LIST_MAX) dino_die("--%s takes at most %d values", name, ARG_LIST_MAX);
                    if (s->type == ARG_INT_LIST) il->v[n++] = (int)parse_number(s, argv[++i]);
                    else fl->v[n++] = (float)parse_number(s, argv[++i]);
                }
            }
            if (n == 0) dino_die("--%s expects one or more numbers", name);
            if (s->type == ARG_INT_LIST) il->n = n;
            else fl->n = n;
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) dino_die("--%s expects a value", name);
            val = argv[++i];
        }
        switch (s->type) {
        case ARG_INT: *(int *)s->value = (int)parse_number(s, val); break;
        case ARG_FLOAT: *(float *)s->value = (float)parse_number(s, val); break;
        case ARG_DOUBLE: *(double *)s->value = parse_number(s, val); break;
        case ARG_STRING: *(const char **)s->value = val; break;
        default: break;
        }
    }
    return npos;
}
