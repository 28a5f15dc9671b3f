// Shared steps of the evaluation commands (see eval_common.h).
#include "cli/eval_common.h"

#include <string.h>

#include "common.h"

void eval_model_args_default(EvalModelArgs *a) {
    memset(a, 0, sizeof *a);
    a->checkpoint_key = "teacher";
    a->arch = "vit_small";
    a->patch_size = 16;
    a->batch_size = 128;
    a->crop = 0;
    a->resize = 0;
    a->n_last_blocks = 1;
    a->avgpool = 0;
}

void eval_features_from_model(const EvalModelArgs *a, int split, EvalFeatures *out) {
    (void)split;
    (void)out;
    dino_die("running a model over %s needs the engine, data and model-loading modules, "
             "which this build does not have yet; use .npy features", a->data_path);
}
