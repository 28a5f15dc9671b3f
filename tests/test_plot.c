// Tests of src/eval/plot.c and `dino plot`: a JSON-lines log (with a garbage
// line, string-valued numbers and a k-NN field on some lines only) is read
// into the right series; the PNG has the requested size and shows the first
// series' colour; logs with nothing to plot and missing files fail with one
// line, also through the dino binary (exit status 1).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "eval/attnmap.h"
#include "eval/plot.h"
#include "testlib.h"

// PLplot's cairo driver loads fontconfig through libltdl, which keep caches
// for the life of the process; LeakSanitizer (make asan) must not count them.
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig\nleak:libltdl\nleak:libcairo\n"; }

static char LOG[128], PNG[128];  // per process: several checkouts may run the suite at once

static int run(const char *cmd, char *out, size_t n) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t k = fread(out, 1, n - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv) {
    (void)argc;
    const char *argv0 = argv[0];
    snprintf(LOG, sizeof LOG, "/tmp/dino_test_plot_%d.txt", (int)getpid());
    snprintf(PNG, sizeof PNG, "/tmp/dino_test_plot_%d.png", (int)getpid());
    FILE *f = fopen(LOG, "w");
    for (int e = 0; e < 12; e++) {
        fprintf(f, "{\"train_loss\": %g, \"train_lr\": %g, \"train_wd\": 0.04, \"epoch\": %d, "
                   "\"teacher_entropy\": \"%g\"",
                11.0 - 0.5 * e, 1e-4 * e, e, 8.0 - 0.25 * e);
        if (e % 3 == 2) fprintf(f, ", \"knn_top1\": %d", 10 + e);
        fprintf(f, "}\n");
        if (e == 5) fprintf(f, "this is not json\n\n");
    }
    fclose(f);
    PlotLog log;
    char err[512];
    CHECK(plot_log_read(LOG, &log, err, sizeof err) == 0, "log read");
    CHECK(log.n_lines == 12 && log.n_bad == 1 && !strcmp(log.x_name, "epoch"),
          "12 JSON lines, 1 bad, x is epoch (%d %d %s)", log.n_lines, log.n_bad, log.x_name);
    const PlotSeries *loss = plot_log_series(&log, "train_loss"), *knn = plot_log_series(&log, "knn_top1"),
                     *ent = plot_log_series(&log, "teacher_entropy");
    CHECK(loss && loss->n == 12 && loss->x[7] == 7 && loss->y[7] == 7.5, "train_loss series");
    CHECK(knn && knn->n == 4 && knn->x[1] == 5 && knn->y[1] == 15, "knn_top1 only where logged");
    CHECK(ent && ent->n == 12 && ent->y[4] == 7.0, "string-valued numbers are read");
    CHECK(!plot_log_series(&log, "epoch"), "x is not a series of its own");

    int np = plot_curves(&log, PNG, 640, 480, "test", err, sizeof err);
    CHECK(np == 4, "4 panels drawn (%d) %s", np, np < 0 ? err : "");
    int w, h;
    uint8_t *img = png_read_rgb(PNG, &w, &h, err, sizeof err);
    CHECK(img && w == 640 && h == 480, "PNG is 640x480 (%dx%d)", w, h);
    int blue = 0, white = 0;
    for (int i = 0; img && i < w * h; i++) {
        const uint8_t *p = img + 3 * i;
        blue += p[0] == 31 && p[1] == 119 && p[2] == 180;
        white += p[0] == 255 && p[1] == 255 && p[2] == 255;
    }
    CHECK(blue > 200 && white > w * h / 2, "curves drawn in the series colour (%d px) on white (%d px)",
          blue, white);
    free(img);
    plot_log_free(&log);

    // Our trainer's log: step records (epoch, step) and per-epoch summaries.
    f = fopen(LOG, "w");
    fprintf(f, "{\"type\": \"step\", \"epoch\": 0, \"step\": 0, \"it\": 0, \"loss\": 8.0}\n");
    fprintf(f, "{\"type\": \"step\", \"epoch\": 0, \"step\": 3, \"it\": 3, \"loss\": 7.0}\n");
    fprintf(f, "{\"train_loss\": 7.5, \"epoch\": 0, \"knn_top1\": 50}\n");
    fprintf(f, "{\"type\": \"step\", \"epoch\": 1, \"step\": 2, \"it\": 6, \"loss\": 6.0}\n");
    fprintf(f, "{\"train_loss\": 6.5, \"epoch\": 1}\n");
    fclose(f);
    CHECK(plot_log_read(LOG, &log, err, sizeof err) == 0, "trainer-style log read");
    loss = plot_log_series(&log, "loss");
    const PlotSeries *tl = plot_log_series(&log, "train_loss");
    CHECK(loss && loss->n == 3 && loss->x[1] == 0.75 && loss->x[2] == 1.5 && tl && tl->n == 2 &&
              tl->x[0] == 1.0 && tl->x[1] == 2.0 && !strcmp(log.x_name, "epoch"),
          "step records at epoch + step/4, summaries at the epoch's end");
    CHECK(!plot_log_series(&log, "it") && !plot_log_series(&log, "step"), "position keys are not series");
    plot_log_free(&log);

    f = fopen(LOG, "w");
    fprintf(f, "{\"epoch\": 1, \"other\": 3}\n");
    fclose(f);
    CHECK(plot_log_read(LOG, &log, err, sizeof err) == 0, "log without plottable fields reads");
    CHECK(plot_curves(&log, PNG, 640, 480, "", err, sizeof err) == -1 && strstr(err, "no loss"),
          "nothing to plot: %s", err);
    plot_log_free(&log);
    f = fopen(LOG, "w");
    fprintf(f, "not json at all\n");
    fclose(f);
    CHECK(plot_log_read(LOG, &log, err, sizeof err) == -1 && strstr(err, "no JSON"),
          "a log without JSON lines: %s", err);

    char out[2048];
    // The dino binary of this build: <build>/dino next to <build>/tests/.
    char cmd[1200], bin[1024];
    snprintf(bin, sizeof bin, "%s", argv0);
    char *slash = strrchr(bin, '/');
    if (slash) *slash = 0;
    slash = strrchr(bin, '/');
    if (slash) strcpy(slash, "/dino");
    else snprintf(bin, sizeof bin, "build/dino");
    snprintf(cmd, sizeof cmd, "%s plot /nonexistent/log.txt --out /tmp/dino_test_never_written.png 2>&1", bin);
    int rc = run(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "cannot open log") && strchr(out, '\n') == out + strlen(out) - 1,
          "dino plot on a missing log: exit %d, one line: %s", rc, out);
    remove(LOG);
    remove(PNG);
    return test_finish();
}
