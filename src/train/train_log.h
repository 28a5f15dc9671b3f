// log.txt, the run's record: one JSON object per line, written by
// train_run and read back by the resume (which drops what a resumed run
// repeats) and by `dino plot` (src/eval/plot.c). This file is the one owner
// of its schema and of its parser:
//   {"type": "step", "epoch", "step", "it", "loss", "lr", "wd", "momentum",
//    "teacher_temp", "teacher_entropy", "teacher_mean_entropy", ["koleo",]
//    "images_per_s"}  every --log_every_steps iterations;
//   {"train_loss", "train_lr", "train_wd", "epoch"[, evaluation fields]}
//    at the end of each epoch (the reference's line).
#ifndef DINO_TRAIN_TRAIN_LOG_H
#define DINO_TRAIN_TRAIN_LOG_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Statistics of one iteration (a step record).
typedef struct {
    double loss;
    double lr, wd, momentum, teacher_temp;
    double teacher_entropy, teacher_mean_entropy;
    double koleo;  // the KoLeo loss before its weight (0 when off); loss includes weight·koleo
    double seconds;
} StepStats;

typedef struct {
    FILE *f;
    int koleo;  // step records carry "koleo"
} TrainLog;

// Appends to path, or writes nowhere when `write` is 0 (every rank but 0).
// 0, or -1 with err filled.
int train_log_open(TrainLog *log, const char *path, int write, int koleo, char *err, size_t errlen);
void train_log_close(TrainLog *log);
void train_log_step(TrainLog *log, int epoch, int64_t step, int64_t it, const StepStats *st,
                    double images_per_s);
// The epoch's means; extra is "" or ", " followed by evaluation fields.
void train_log_epoch(TrainLog *log, double loss, double lr, double wd, int epoch, const char *extra);

// On resume, drops the records written after the checkpoint at (epoch,
// global_step), which the run repeats, so log.txt reads like one
// uninterrupted run. Lines that are not records are kept.
void train_log_trim(const char *path, int epoch, int64_t global_step);

// The parser: a line as a JSON object (NULL when it is none; free with
// cJSON_Delete), and a field as a number (a number, or a string holding one).
cJSON *train_log_parse_line(const char *line);
int train_log_number(const cJSON *v, double *out);
int train_log_key_number(const cJSON *obj, const char *key, double *out);

#endif
