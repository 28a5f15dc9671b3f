// `dino davis-eval --results DIR --annotations DIR`: the DAVIS-2017
// semi-supervised evaluation (davis2017-evaluation, docs/DOWNSTREAM.md) of
// predicted masks against ground truth. The annotations folder holds one
// subfolder of indexed PNGs per sequence (DAVIS's Annotations/480p), or the
// PNGs of one sequence directly; the results folder mirrors it. --sequences
// names the sequences to score (DAVIS's ImageSets/2017/val.txt). Per sequence
// the objects are the labels of its first annotation; the first and last
// frames are not scored. Prints the global and per-sequence tables in the
// evaluation's layout and writes them as CSV files into the results folder.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "eval/davis.h"
#include "image/palette_png.h"

typedef struct {
    char **v;
    int n;
} Names;

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a > b && !strcmp(s + a - b, suf);
}

// Sorted entries of dir: .png files (want_dirs 0) or subfolders (1).
static Names list_dir(const char *dir, int want_dirs) {
    Names r = {NULL, 0};
    DIR *dp = opendir(dir);
    if (!dp) dino_die("cannot open the folder %s", dir);
    int cap = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (want_dirs ? !S_ISDIR(st.st_mode) : !(S_ISREG(st.st_mode) && has_suffix(e->d_name, ".png"))) continue;
        if (r.n == cap) {
            cap = cap ? 2 * cap : 64;
            r.v = realloc(r.v, sizeof(char *) * cap);
            if (!r.v) dino_die("out of memory listing %s", dir);
        }
        r.v[r.n++] = strdup(e->d_name);
    }
    closedir(dp);
    if (r.n) qsort(r.v, (size_t)r.n, sizeof(char *), cmp_names);
    return r;
}

// The non-empty lines of a list file (sequence names).
static Names read_list(const char *path) {
    Names r = {NULL, 0};
    FILE *f = fopen(path, "r");
    if (!f) dino_die("cannot open the sequence list %s", path);
    char line[1024];
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
        if (n == 0) continue;
        if (r.n == cap) {
            cap = cap ? 2 * cap : 64;
            r.v = realloc(r.v, sizeof(char *) * cap);
            if (!r.v) dino_die("out of memory reading %s", path);
        }
        r.v[r.n++] = strdup(line);
    }
    fclose(f);
    if (r.n == 0) dino_die("the sequence list %s is empty", path);
    return r;
}

static void names_free(Names *n) {
    for (int i = 0; i < n->n; i++) free(n->v[i]);
    free(n->v);
}

static void read_labels(const char *path, int want_w, int want_h, const char *what, LabelMap *m) {
    char err[1024];
    struct stat st;
    if (stat(path, &st) != 0) dino_die("%s %s is missing", what, path);
    if (label_png_read(path, m, err, sizeof err) != 0) dino_die("%s", err);
    if (want_w && (m->w != want_w || m->h != want_h))
        dino_die("%s is %dx%d but the sequence's annotations are %dx%d", path, m->w, m->h, want_w, want_h);
}

typedef struct {
    double JM, JR, JD, FM, FR, FD;
    char name[256];
} ObjectScore;

// Scores one sequence; appends one ObjectScore per object.
static void score_sequence(const char *ann_dir, const char *res_dir, const char *seq, ObjectScore **out,
                           int *nout, int *cap) {
    Names ann = list_dir(ann_dir, 0);
    if (ann.n < 3)
        dino_die("%s has %d annotated frame%s; scoring leaves out the first and the last, so it needs 3 or more",
                 ann_dir, ann.n, ann.n == 1 ? "" : "s");
    char path[4096], err[1024];
    LabelMap first;
    snprintf(path, sizeof path, "%s/%s", ann_dir, ann.v[0]);
    read_labels(path, 0, 0, "the annotation", &first);
    int w = first.w, h = first.h, nobj = 0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        if (first.labels[i] != 255 && first.labels[i] > nobj) nobj = first.labels[i];
    label_map_free(&first);
    if (nobj == 0) dino_die("%s/%s holds no object (every label is 0 or 255)", ann_dir, ann.v[0]);
    int nf = ann.n - 2;
    LabelMap *gt = callocCheck((size_t)nf, sizeof(LabelMap)), *res = callocCheck((size_t)nf, sizeof(LabelMap));
    const uint8_t **gtp = mallocCheck(sizeof(uint8_t *) * nf), **resp = mallocCheck(sizeof(uint8_t *) * nf);
    for (int f = 0; f < nf; f++) {
        snprintf(path, sizeof path, "%s/%s", ann_dir, ann.v[f + 1]);
        read_labels(path, w, h, "the annotation", &gt[f]);
        snprintf(path, sizeof path, "%s/%s", res_dir, ann.v[f + 1]);
        read_labels(path, w, h, "the result", &res[f]);
        gtp[f] = gt[f].labels, resp[f] = res[f].labels;
    }
    double *J = mallocCheck(sizeof(double) * nobj * nf), *F = mallocCheck(sizeof(double) * nobj * nf);
    if (davis_score_sequence(gtp, resp, nf, h, w, nobj, J, F, err, sizeof err) != 0)
        dino_die("%s: %s", res_dir, err);
    for (int k = 0; k < nobj; k++) {
        if (*nout == *cap) {
            *cap = *cap ? 2 * *cap : 64;
            *out = realloc(*out, sizeof(ObjectScore) * *cap);
            if (!*out) dino_die("out of memory");
        }
        ObjectScore *o = &(*out)[(*nout)++];
        davis_statistics(J + (size_t)k * nf, nf, &o->JM, &o->JR, &o->JD);
        davis_statistics(F + (size_t)k * nf, nf, &o->FM, &o->FR, &o->FD);
        snprintf(o->name, sizeof o->name, "%s_%d", seq, k + 1);
    }
    for (int f = 0; f < nf; f++) label_map_free(&gt[f]), label_map_free(&res[f]);
    free(gt), free(res), free(gtp), free(resp), free(J), free(F);
    names_free(&ann);
}

// One row of right-aligned columns, each as wide as its header or value.
static void print_row(FILE *f, int n, const char *const *cells, const int *width) {
    for (int i = 0; i < n; i++) fprintf(f, "%s%*s", i ? " " : "", width[i], cells[i]);
    fputc('\n', f);
}

int cmd_davis_eval(int argc, char **argv) {
    const char *results = NULL, *annotations = NULL, *set = "val", *seq_list = NULL;
    ArgSpec specs[] = {
        {"results", ARG_STRING, &results, "folder of predicted masks (per sequence, as the annotations)"},
        {"annotations", ARG_STRING, &annotations, "ground-truth masks: a folder per sequence, or one sequence's PNGs"},
        {"sequences", ARG_STRING, &seq_list, "file of sequence names to score, one a line (default: every folder)"},
        {"set", ARG_STRING, &set, "the name in the titles and CSV file names"},
        {NULL, 0, NULL, NULL},
    };
    args_parse("davis-eval", "--results DIR --annotations DIR", specs, argc, argv, NULL, 0);
    if (!results || !annotations) dino_die("dino davis-eval needs --results DIR and --annotations DIR");

    ObjectScore *obj = NULL;
    int nobj = 0, cap = 0;
    char ann_dir[4096], res_dir[4096];
    Names direct = list_dir(annotations, 0);
    if (direct.n > 0 && !seq_list) {
        // One sequence: named after its folder.
        char seq[256];
        size_t n = strlen(annotations);
        while (n > 1 && annotations[n - 1] == '/') n--;  // "ann/" is named ann
        size_t b = n;
        while (b > 0 && annotations[b - 1] != '/') b--;
        snprintf(seq, sizeof seq, "%.*s", (int)(n - b), annotations + b);
        score_sequence(annotations, results, seq, &obj, &nobj, &cap);
    } else {
        Names seqs = seq_list ? read_list(seq_list) : list_dir(annotations, 1);
        if (seqs.n == 0) dino_die("%s holds neither .png annotations nor sequence folders", annotations);
        for (int s = 0; s < seqs.n; s++) {
            snprintf(ann_dir, sizeof ann_dir, "%s/%s", annotations, seqs.v[s]);
            snprintf(res_dir, sizeof res_dir, "%s/%s", results, seqs.v[s]);
            score_sequence(ann_dir, res_dir, seqs.v[s], &obj, &nobj, &cap);
        }
        names_free(&seqs);
    }
    names_free(&direct);

    double g[7] = {0};
    for (int i = 0; i < nobj; i++) {
        g[1] += obj[i].JM, g[2] += obj[i].JR, g[3] += obj[i].JD;
        g[4] += obj[i].FM, g[5] += obj[i].FR, g[6] += obj[i].FD;
    }
    for (int k = 1; k < 7; k++) g[k] /= nobj;
    g[0] = (g[1] + g[4]) / 2;

    static const char *GH[7] = {"J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"};
    char vals[7][32];
    const char *cells[7];
    int width[7];
    printf("--------------------------- Global results for %s ---------------------------\n", set);
    for (int k = 0; k < 7; k++) {
        snprintf(vals[k], sizeof vals[k], "%.6f", g[k]);
        width[k] = (int)(strlen(GH[k]) > strlen(vals[k]) ? strlen(GH[k]) : strlen(vals[k]));
        cells[k] = vals[k];
    }
    print_row(stdout, 7, GH, width);
    print_row(stdout, 7, cells, width);
    printf("\n---------- Per sequence results for %s ----------\n", set);
    int sw = (int)strlen("Sequence");
    for (int i = 0; i < nobj; i++)
        if ((int)strlen(obj[i].name) > sw) sw = (int)strlen(obj[i].name);
    static const char *SH[3] = {"Sequence", "J-Mean", "F-Mean"};
    int swidth[3] = {sw, 8, 8};
    print_row(stdout, 3, SH, swidth);
    for (int i = 0; i < nobj; i++) {
        char j[32], f[32];
        snprintf(j, sizeof j, "%.6f", obj[i].JM);
        snprintf(f, sizeof f, "%.6f", obj[i].FM);
        const char *row[3] = {obj[i].name, j, f};
        print_row(stdout, 3, row, swidth);
    }

    // The evaluation's CSV files, three decimals.
    char path[4096];
    snprintf(path, sizeof path, "%s/global_results-%s.csv", results, set);
    FILE *fp = fopen(path, "w");
    if (!fp) dino_die("cannot write %s", path);
    fprintf(fp, "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n");
    for (int k = 0; k < 7; k++) fprintf(fp, "%.3f%c", g[k], k == 6 ? '\n' : ',');
    if (fclose(fp) != 0) dino_die("cannot write %s", path);
    snprintf(path, sizeof path, "%s/per-sequence_results-%s.csv", results, set);
    fp = fopen(path, "w");
    if (!fp) dino_die("cannot write %s", path);
    fprintf(fp, "Sequence,J-Mean,F-Mean\n");
    for (int i = 0; i < nobj; i++) fprintf(fp, "%s,%.3f,%.3f\n", obj[i].name, obj[i].JM, obj[i].FM);
    if (fclose(fp) != 0) dino_die("cannot write %s", path);
    free(obj);
    return 0;
}
