// The run log (src/train/train_log.h) and the engine seam's capability
// answers (src/train/engine.h):
//   1. a step record and an epoch record written by train_log_* parse back
//      with the shared parser to the numbers written (%.9g / %.10g);
//   2. trimming for a resume at (epoch 1, global step 6) drops exactly the
//      step records from iteration 6 on and the epoch summaries from epoch 1
//      on, and keeps other records, lines that are not JSON, and the rest
//      in order; a trim that drops nothing leaves the file untouched;
//   3. the CPU engine supports every feature, the CUDA engine none of KoLeo,
//      Sinkhorn-Knopp, SGD and LARS, and train_config_check refuses each of
//      them on --device cuda with a sentence naming the flag (whether or not
//      this build has CUDA: the check reads the settings only).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "train/trainer.h"

static void test_write_and_parse(void) {
    const char *path = test_tmp_path("write.txt");
    TrainLog log;
    char err[256];
    CHECK(train_log_open(&log, path, 1, 1, err, sizeof err) == 0, "open %s", path);
    StepStats st = {.loss = 10.123456789, .lr = 1.5e-4, .wd = 0.04, .momentum = 0.996, .teacher_temp = 0.04,
                    .teacher_entropy = 3.25, .teacher_mean_entropy = 6.5, .koleo = -1.25};
    train_log_step(&log, 2, 7, 31, &st, 123.0);
    train_log_epoch(&log, 9.5, 2e-4, 0.05, 2, ", \"knn_top1\": 40.5");
    train_log_close(&log);
    FILE *f = fopen(path, "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        cJSON *o = train_log_parse_line(line);
        CHECK(o != NULL, "line %d parses as a JSON object", n);
        double x = NAN;
        if (n == 0) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
            CHECK(cJSON_IsString(type) && !strcmp(type->valuestring, "step"), "the step record says its type");
            CHECK(train_log_key_number(o, "it", &x) && x == 31, "it 31 (%g)", x);
            CHECK(train_log_key_number(o, "loss", &x) && x == strtod("10.1234568", NULL), "loss at %%.9g (%.10g)", x);
            CHECK(train_log_key_number(o, "koleo", &x) && x == -1.25, "koleo recorded when on (%g)", x);
        } else {
            CHECK(train_log_key_number(o, "train_loss", &x) && x == 9.5, "train_loss (%g)", x);
            CHECK(train_log_key_number(o, "knn_top1", &x) && x == 40.5, "the evaluation fragment (%g)", x);
            CHECK(train_log_key_number(o, "epoch", &x) && x == 2, "epoch (%g)", x);
        }
        cJSON_Delete(o);
        n++;
    }
    if (f) fclose(f);
    CHECK(n == 2, "two records written (%d)", n);
    CHECK(train_log_parse_line("not json\n") == NULL && train_log_parse_line("[1, 2]") == NULL &&
              train_log_parse_line("   \n") == NULL,
          "a line that is no JSON object is none");
    cJSON *o = train_log_parse_line("{\"a\": \"2.5\", \"b\": \"x\"}");
    double x = 0;
    CHECK(o && train_log_key_number(o, "a", &x) && x == 2.5 && !train_log_key_number(o, "b", &x) &&
              !train_log_key_number(o, "c", &x),
          "a string holding a number is a number; other strings and missing keys are not");
    cJSON_Delete(o);
}

static void test_trim(void) {
    const char *path = test_tmp_path("trim.txt");
    const char *in =
        "{\"type\": \"step\", \"epoch\": 0, \"step\": 0, \"it\": 0, \"loss\": 1}\n"
        "{\"type\": \"step\", \"epoch\": 0, \"step\": 3, \"it\": 3, \"loss\": 1}\n"
        "{\"train_loss\": 1, \"epoch\": 0}\n"
        "a line someone wrote\n"
        "{\"type\": \"step\", \"epoch\": 1, \"step\": 1, \"it\": 5, \"loss\": 1}\n"
        "{\"type\": \"step\", \"epoch\": 1, \"step\": 2, \"it\": 6, \"loss\": 1}\n"
        "{\"type\": \"note\", \"epoch\": 1, \"it\": 7}\n"
        "{\"type\": \"step\", \"epoch\": 1, \"step\": 3, \"it\": 7, \"loss\": 1}\n"
        "{\"train_loss\": 1, \"epoch\": 1}\n";
    const char *want =
        "{\"type\": \"step\", \"epoch\": 0, \"step\": 0, \"it\": 0, \"loss\": 1}\n"
        "{\"type\": \"step\", \"epoch\": 0, \"step\": 3, \"it\": 3, \"loss\": 1}\n"
        "{\"train_loss\": 1, \"epoch\": 0}\n"
        "a line someone wrote\n"
        "{\"type\": \"step\", \"epoch\": 1, \"step\": 1, \"it\": 5, \"loss\": 1}\n"
        "{\"type\": \"note\", \"epoch\": 1, \"it\": 7}\n";
    test_write_file(path, in, strlen(in));
    train_log_trim(path, 1, 6);
    size_t n = 0;
    char *got = (char *)test_read_file(path, &n);
    CHECK(got && n == strlen(want) && !memcmp(got, want, n), "resume at epoch 1, iteration 6: the earlier records, the other record and the"
          " non-JSON line stay, in order (got %zu bytes, want %zu)", n, strlen(want));
    free(got);
    train_log_trim(path, 1, 6);  // nothing left to drop
    got = (char *)test_read_file(path, &n);
    CHECK(got && n == strlen(want) && !memcmp(got, want, n), "a second trim changes nothing");
    free(got);
}

static void test_supports(void) {
    const EngineFeature all[] = {ENGINE_KOLEO, ENGINE_SINKHORN_KNOPP, ENGINE_OPTIM_SGD, ENGINE_OPTIM_LARS};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        CHECK(train_engine_supports(DEVICE_CPU, all[i]), "the CPU engine supports %s",
              train_engine_feature_name(all[i]));
        CHECK(!train_engine_supports(DEVICE_CUDA, all[i]), "the CUDA engine does not support %s",
              train_engine_feature_name(all[i]));
    }
    TrainConfig c;
    train_config_default(&c);
    c.koleo_loss_weight = 0;
    c.centering = "centering";
    char err[512];
    CHECK(train_config_check(&c, err, sizeof err) == 0, "the defaults pass on the CPU (%s)", err);
    c.device = DEVICE_CUDA;
    CHECK(train_config_check(&c, err, sizeof err) == 0, "AdamW with centring passes on --device cuda (%s)", err);
    TrainConfig k = c;
    k.koleo_loss_weight = 0.1f;
    CHECK(train_config_check(&k, err, sizeof err) == -1 && strstr(err, "--koleo_loss_weight"),
          "KoLeo on --device cuda is refused: %s", err);
    TrainConfig s = c;
    s.centering = "sinkhorn_knopp";
    CHECK(train_config_check(&s, err, sizeof err) == -1 && strstr(err, "--centering sinkhorn_knopp"),
          "Sinkhorn-Knopp on --device cuda is refused: %s", err);
    const char *opts[] = {"sgd", "lars"};
    for (int i = 0; i < 2; i++) {
        TrainConfig o = c;
        o.optimizer = opts[i];
        CHECK(train_config_check(&o, err, sizeof err) == -1 && strstr(err, "--optimizer adamw only") &&
                  strstr(err, opts[i]),
              "--optimizer %s on --device cuda is refused: %s", opts[i], err);
        o.device = DEVICE_CPU;
        err[0] = 0;
        CHECK(train_config_check(&o, err, sizeof err) == 0, "--optimizer %s passes on the CPU (%s)", opts[i], err);
    }
}

int main(void) {
    test_tmpdir("train_log");
    test_write_and_parse();
    test_trim();
    test_supports();
    test_tmpdir_remove();
    return test_finish();
}
