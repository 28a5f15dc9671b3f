// The flag parser declared in args.h.
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void args_print_help(const char *command, const char *usage, const ArgSpec *specs) {
    printf("usage: dino %s %s\n\n", command, usage);
    for (const ArgSpec *s = specs; s && s->name; s++) {
        char def[64] = "";
        switch (s->type) {
        case ARG_INT: snprintf(def, sizeof def, "%d", *(int *)s->value); break;
        case ARG_FLOAT: snprintf(def, sizeof def, "%g", *(float *)s->value); break;
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
        printf("  --%-26s %s%s%s%s\n", s->name, s->help, def[0] ? " [default: " : "", def,
               def[0] ? "]" : "");
    }
}

static int parse_int(const char *flag, const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < -2147483647L || v > 2147483647L)
        dino_die("--%s expects an integer, got '%s'", flag, s);
    return (int)v;
}

static float parse_float(const char *flag, const char *s) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || end == s) dino_die("--%s expects a number, got '%s'", flag, s);
    return v;
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
                    if (s->type == ARG_INT_LIST) il->v[n++] = parse_int(name, tok);
                    else fl->v[n++] = parse_float(name, tok);
                }
            } else {
                while (i + 1 < argc && is_number(argv[i + 1])) {
                    if (n >= ARG_LIST_MAX) dino_die("--%s takes at most %d values", name, ARG_LIST_MAX);
                    if (s->type == ARG_INT_LIST) il->v[n++] = parse_int(name, argv[++i]);
                    else fl->v[n++] = parse_float(name, argv[++i]);
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
        case ARG_INT: *(int *)s->value = parse_int(name, val); break;
        case ARG_FLOAT: *(float *)s->value = parse_float(name, val); break;
        case ARG_STRING: *(const char **)s->value = val; break;
        default: break;
        }
    }
    return npos;
}
