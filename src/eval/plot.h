// Training curves from a log.txt of JSON lines (one object per line, as the
// reference's main_dino.py writes per epoch and our trainer writes per epoch
// or step), drawn with PLplot's pngcairo driver: up to four panels — loss,
// learning rate, teacher entropy, k-NN accuracy — over the epoch (or step).
#ifndef DINO_EVAL_PLOT_H
#define DINO_EVAL_PLOT_H

#include <stddef.h>

#define PLOT_MAX_SERIES 24

typedef struct {
    char name[64];
    int n, cap;
    double *x, *y;
} PlotSeries;

typedef struct {
    char x_name[32];  // "epoch", "it" or "line"
    int n_series;
    PlotSeries s[PLOT_MAX_SERIES];
    int n_lines;      // JSON objects read
    int n_bad;        // lines that were not JSON objects (skipped)
} PlotLog;

// Reads every numeric field of every JSON line into a series named after the
// key. The x axis: with per-step records (objects with "epoch" and "step", as
// our trainer writes every few iterations) fractional epochs, a step record at
// epoch + step/(largest step + 1) and an epoch summary at epoch + 1; with only
// "epoch" (the reference's log.txt) the epoch; else "it", else the line
// number. Lines that are not JSON objects are counted in n_bad and skipped.
// 0, or -1 with err filled (unreadable file, no JSON object in it).
int plot_log_read(const char *path, PlotLog *log, char *err, size_t errlen);
void plot_log_free(PlotLog *log);
// The series called name, or NULL.
const PlotSeries *plot_log_series(const PlotLog *log, const char *name);

// Draws the panels that have data into a PNG of width x height pixels.
// Returns the number of panels drawn (>= 1), or -1 with err filled.
int plot_curves(const PlotLog *log, const char *png_path, int width, int height,
                const char *title, char *err, size_t errlen);

#endif
