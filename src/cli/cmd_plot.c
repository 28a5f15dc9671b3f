// `dino plot LOG --out curves.png`: training curves (loss, learning rate,
// teacher entropy, k-NN accuracy) from a log.txt of JSON lines.
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "common.h"
#include "eval/plot.h"

int cmd_plot(int argc, char **argv) {
    const char *out = "curves.png", *title = "";
    int width = 1200, height = 800;
    ArgSpec specs[] = {
        {"out", ARG_STRING, &out, "PNG file to write"},
        {"width", ARG_INT, &width, "image width in pixels", ARG_RANGE(100, 10000)},
        {"height", ARG_INT, &height, "image height in pixels", ARG_RANGE(100, 10000)},
        {"title", ARG_STRING, &title, "text added to each panel's title"},
        {NULL, 0, NULL, NULL},
    };
    const char *pos[1] = {NULL};
    int n = args_parse("plot", "LOG [--out curves.png]", specs, argc, argv, pos, 1);
    if (n != 1) dino_die("dino plot needs the log file (log.txt) as its argument");
    char err[512];
    PlotLog log;
    if (plot_log_read(pos[0], &log, err, sizeof err) != 0) dino_die("%s", err);
    int np = plot_curves(&log, out, width, height, title, err, sizeof err);
    if (np < 0) dino_die("%s", err);
    printf("%s: %d panels from %d log lines (%d skipped) -> %s\n", pos[0], np, log.n_lines,
           log.n_bad, out);
    plot_log_free(&log);
    return 0;
}
