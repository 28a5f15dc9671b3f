// Log reading (train_log.h's parser) and curve drawing (PLplot, pngcairo); see plot.h.
#include "eval/plot.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <plplot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "train/train_log.h"

static PlotSeries *series_get(PlotLog *log, const char *name) {
    for (int i = 0; i < log->n_series; i++)
        if (!strcmp(log->s[i].name, name)) return &log->s[i];
    if (log->n_series >= PLOT_MAX_SERIES) return NULL;
    PlotSeries *s = &log->s[log->n_series++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static void series_add(PlotSeries *s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = reallocCheck(s->x, (size_t)s->cap * sizeof(double));
        s->y = reallocCheck(s->y, (size_t)s->cap * sizeof(double));
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

const PlotSeries *plot_log_series(const PlotLog *log, const char *name) {
    for (int i = 0; i < log->n_series; i++)
        if (!strcmp(log->s[i].name, name)) return &log->s[i];
    return NULL;
}

void plot_log_free(PlotLog *log) {
    for (int i = 0; i < log->n_series; i++) {
        free(log->s[i].x);
        free(log->s[i].y);
    }
    memset(log, 0, sizeof *log);
}

typedef struct {
    double epoch, step, it;
    int has_epoch, has_step, has_it;
} RecordPos;

int plot_log_read(const char *path, PlotLog *log, char *err, size_t errlen) {
    memset(log, 0, sizeof *log);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open log %s: %s", path, strerror(errno));
        return -1;
    }
    // First pass: every numeric field with x = its record's index; the
    // record positions are kept to place the records on one axis after.
    RecordPos *pos = NULL;
    int pos_cap = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == 0) continue;
        cJSON *obj = train_log_parse_line(p);
        if (!obj) {
            log->n_bad++;
            continue;
        }
        if (log->n_lines == pos_cap) {
            pos_cap = pos_cap ? 2 * pos_cap : 256;
            pos = reallocCheck(pos, (size_t)pos_cap * sizeof *pos);
        }
        RecordPos *r = &pos[log->n_lines];
        memset(r, 0, sizeof *r);
        r->has_epoch = train_log_key_number(obj, "epoch", &r->epoch);
        r->has_step = train_log_key_number(obj, "step", &r->step);
        r->has_it = train_log_key_number(obj, "it", &r->it) || train_log_key_number(obj, "iteration", &r->it);
        for (const cJSON *it = obj->child; it; it = it->next) {
            double y;
            if (!it->string || !strcmp(it->string, "epoch") || !strcmp(it->string, "step") ||
                !strcmp(it->string, "it") || !strcmp(it->string, "iteration") || !train_log_number(it, &y))
                continue;
            PlotSeries *s = series_get(log, it->string);
            if (s) series_add(s, (double)log->n_lines, y);
        }
        log->n_lines++;
        cJSON_Delete(obj);
    }
    free(line);
    fclose(f);
    if (log->n_lines == 0) {
        free(pos);
        snprintf(err, errlen, "log %s holds no JSON lines to plot", path);
        return -1;
    }
    // The axis: fractional epochs when per-step records exist (a step record
    // at epoch + step/steps, an epoch summary at the epoch's end), plain
    // epochs for the reference's per-epoch log, else iterations or lines.
    int any_epoch = 0, any_step = 0, any_it = 0;
    double max_step = 0;
    for (int i = 0; i < log->n_lines; i++) {
        any_epoch |= pos[i].has_epoch;
        any_step |= pos[i].has_epoch && pos[i].has_step;
        any_it |= pos[i].has_it;
        if (pos[i].has_step && pos[i].step > max_step) max_step = pos[i].step;
    }
    double *x = mallocCheck((size_t)log->n_lines * sizeof(double));
    for (int i = 0; i < log->n_lines; i++) {
        const RecordPos *r = &pos[i];
        if (any_step) x[i] = !r->has_epoch ? NAN : r->has_step ? r->epoch + r->step / (max_step + 1) : r->epoch + 1;
        else if (any_epoch) x[i] = r->has_epoch ? r->epoch : NAN;
        else if (any_it) x[i] = r->has_it ? r->it : NAN;
        else x[i] = i;
    }
    snprintf(log->x_name, sizeof log->x_name, "%s", any_epoch ? "epoch" : any_it ? "it" : "line");
    for (int k = 0; k < log->n_series; k++) {
        PlotSeries *s = &log->s[k];
        int m = 0;
        for (int i = 0; i < s->n; i++) {
            double xi = x[(int)s->x[i]];
            if (isnan(xi)) continue;  // a record without the axis' key
            s->x[m] = xi;
            s->y[m] = s->y[i];
            m++;
        }
        s->n = m;
    }
    free(x);
    free(pos);
    return 0;
}

// Which panel a series belongs to: 0 loss, 1 learning rate, 2 entropy, 3 k-NN, -1 none.
static int panel_of(const char *name) {
    if (strstr(name, "knn")) return strcmp(name, "knn_k") ? 3 : -1;  // knn_k is a setting
    if (strstr(name, "entropy")) return 2;
    if (strstr(name, "loss")) return 0;
    size_t n = strlen(name);
    if (!strcmp(name, "lr") || (n >= 3 && !strcmp(name + n - 3, "_lr"))) return 1;
    return -1;
}

static const char *PANEL_TITLE[4] = {"loss", "learning rate", "teacher entropy", "k-NN accuracy (%)"};

int plot_curves(const PlotLog *log, const char *png_path, int width, int height,
                const char *title, char *err, size_t errlen) {
    int members[4][PLOT_MAX_SERIES], count[4] = {0, 0, 0, 0};
    for (int i = 0; i < log->n_series; i++) {
        int p = panel_of(log->s[i].name);
        if (p >= 0 && log->s[i].n > 0) members[p][count[p]++] = i;
    }
    int panels[4], np = 0;
    for (int p = 0; p < 4; p++)
        if (count[p]) panels[np++] = p;
    if (np == 0) {
        snprintf(err, errlen,
                 "the log has no loss, lr, entropy or knn fields to plot (found %d fields)",
                 log->n_series);
        return -1;
    }
    FILE *probe = fopen(png_path, "wb");
    if (!probe) {
        snprintf(err, errlen, "cannot write %s: %s", png_path, strerror(errno));
        return -1;
    }
    fclose(probe);

    plsdev("pngcairo");
    plsfnam(png_path);
    plspage(0, 0, width, height, 0, 0);
    plscolbg(255, 255, 255);
    plinit();
    int cols = np > 1 ? 2 : 1, rows = (np + 1) / 2;
    plssub(cols, rows);
    plschr(0, 0.9);
    for (int k = 0; k < np; k++) {
        int p = panels[k];
        double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
        for (int m = 0; m < count[p]; m++) {
            const PlotSeries *s = &log->s[members[p][m]];
            for (int i = 0; i < s->n; i++) {
                if (!isfinite(s->y[i])) continue;
                xmin = fmin(xmin, s->x[i]);
                xmax = fmax(xmax, s->x[i]);
                ymin = fmin(ymin, s->y[i]);
                ymax = fmax(ymax, s->y[i]);
            }
        }
        if (!isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
        if (xmax <= xmin) xmax = xmin + 1;
        double pad = (ymax - ymin) * 0.05;
        if (pad <= 0) pad = fabs(ymax) * 0.05 + 1e-9;
        pladv(0);
        plvsta();
        plwind(xmin, xmax, ymin - pad, ymax + pad);
        // Light grid first, then black axes (colour 15 is white by default; make it black).
        plscol0(14, 220, 220, 220);
        plcol0(14);
        plbox("g", 0, 0, "g", 0, 0);
        plscol0(15, 0, 0, 0);
        plcol0(15);
        plbox("bcnst", 0, 0, "bcnstv", 0, 0);
        char t[160];
        snprintf(t, sizeof t, "%s%s%s", PANEL_TITLE[p], title && *title ? " - " : "",
                 title ? title : "");
        pllab(log->x_name, "", t);
        for (int m = 0; m < count[p]; m++) {
            const PlotSeries *s = &log->s[members[p][m]];
            int colour = 1 + m % 13;
            if (colour == 7 || colour == 15) colour = 13;
            static const int PAL[6][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                          {214, 39, 40}, {148, 103, 189}, {140, 86, 75}};
            plscol0(colour, PAL[m % 6][0], PAL[m % 6][1], PAL[m % 6][2]);
            plcol0(colour);
            plwidth(2.0);
            if (s->n > 1) plline(s->n, s->x, s->y);
            else plpoin(1, s->x, s->y, 17);
            plwidth(1.0);
            // Key: the series name at the top right, in its colour.
            plmtex("rv", -1.0, 0.95 - 0.07 * m, 1.0, s->name);
        }
    }
    plend();
    return np;
}
