// log.txt's writer, trimmer and parser (see train_log.h).
#include "train/train_log.h"

#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "common.h"

int train_log_open(TrainLog *log, const char *path, int write, int koleo, char *err, size_t errlen) {
    log->koleo = koleo;
    log->f = fopen(write ? path : "/dev/null", write ? "a" : "w");
    if (!log->f) return dino_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

void train_log_close(TrainLog *log) {
    if (log->f) fclose(log->f);
    log->f = NULL;
}

void train_log_step(TrainLog *log, int epoch, int64_t step, int64_t it, const StepStats *st,
                    double images_per_s) {
    fprintf(log->f,
            "{\"type\": \"step\", \"epoch\": %d, \"step\": %lld, \"it\": %lld, \"loss\": %.9g, "
            "\"lr\": %.9g, \"wd\": %.9g, \"momentum\": %.12g, \"teacher_temp\": %.9g, "
            "\"teacher_entropy\": %.6g, \"teacher_mean_entropy\": %.6g, ",
            epoch, (long long)step, (long long)it, st->loss, st->lr, st->wd, st->momentum,
            st->teacher_temp, st->teacher_entropy, st->teacher_mean_entropy);
    if (log->koleo) fprintf(log->f, "\"koleo\": %.6g, ", st->koleo);
    fprintf(log->f, "\"images_per_s\": %.4g}\n", images_per_s);
    fflush(log->f);
}

void train_log_epoch(TrainLog *log, double loss, double lr, double wd, int epoch, const char *extra) {
    fprintf(log->f, "{\"train_loss\": %.10g, \"train_lr\": %.10g, \"train_wd\": %.10g, \"epoch\": %d%s}\n",
            loss, lr, wd, epoch, extra);
    fflush(log->f);
}

cJSON *train_log_parse_line(const char *line) {
    while (*line == ' ' || *line == '\t') line++;
    if (*line == '\n' || *line == 0) return NULL;
    cJSON *obj = cJSON_Parse(line);
    if (obj && !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    return obj;
}

int train_log_number(const cJSON *v, double *out) {
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 1;
    }
    if (cJSON_IsString(v) && v->valuestring && *v->valuestring) {  // our checkpoint meta is strings
        char *end;
        double d = strtod(v->valuestring, &end);
        if (*end == 0) {
            *out = d;
            return 1;
        }
    }
    return 0;
}

int train_log_key_number(const cJSON *obj, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && train_log_number(v, out);
}

// Whether a line stays when a run resumes at (epoch, global_step): step
// records before the global step, epoch summaries of earlier epochs, and
// everything else.
static int keep_line(const char *line, int epoch, int64_t global_step) {
    cJSON *obj = train_log_parse_line(line);
    if (!obj) return 1;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    double x;
    int keep;
    if (cJSON_IsString(type) && type->valuestring && !strcmp(type->valuestring, "step"))
        keep = !(train_log_key_number(obj, "it", &x) && x >= (double)global_step);
    else if (type)
        keep = 1;  // another kind of record
    else
        keep = !(train_log_key_number(obj, "epoch", &x) && x >= (double)epoch);
    cJSON_Delete(obj);
    return keep;
}

void train_log_trim(const char *path, int epoch, int64_t global_step) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fclose(f);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    int dropped = 0;
    while (getline(&line, &cap, f) > 0) {
        if (keep_line(line, epoch, global_step)) fputs(line, o);
        else dropped++;
    }
    free(line);
    fclose(f);
    if (fclose(o) == 0 && dropped) rename(tmp, path);
    else unlink(tmp);
}
