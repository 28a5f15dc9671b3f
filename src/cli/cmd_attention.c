// `dino attention IMAGE --pretrained_weights F --out DIR`: the last block's
// CLS attention per head, as visualize_attention.py (docs/DINO.md §10). The image is
// optionally resized (--image_size H W as Resize((H, W)), one value as
// Resize(int) on the shorter side; bilinear like the reference; default: the
// image's own size — the reference resizes to 480x480), normalised, cropped
// top-left to multiples of the patch size; position embeddings are
// interpolated to the grid. The pictures and attn_maps.npy are written by
// eval/attention_figure.c.
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "eval/attention_figure.h"
#include "eval/attnmap.h"
#include "image/decode.h"

int cmd_attention(int argc, char **argv) {
    const char *out = ".";
    IntList image_size = {0, {0}};
    // Parsed as a double: the reference computes 1 - threshold on a Python float,
    // and 1 - (double)0.6f would put the cut one float32 step lower.
    const char *threshold_arg = "0.6";
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        EVAL_MODEL_FILE_ARG_SPECS(ma),
        {"image_size", ARG_INT_LIST, &image_size, "resize to H W (or the shorter side to one value); default: as is", ARG_RANGE(1, ATTENTION_MAX_IMAGE_SIDE)},
        {"threshold", ARG_STRING, &threshold_arg, "mass kept by the masks (0: no masks)"},
        {"out", ARG_STRING, &out, "output folder"},
        {"output_dir", ARG_STRING, &out, "same as --out"},
        {NULL, 0, NULL, NULL},
    };
    const char *pos[1] = {NULL};
    int np = args_parse("attention", "IMAGE --pretrained_weights FILE [--out DIR] [flags]", specs,
                        argc, argv, pos, 1);
    if (np != 1) dino_die("dino attention needs an image file as its argument");
    if (!ma.pretrained_weights) dino_die("dino attention needs --pretrained_weights FILE");
    if (image_size.n > 2) dino_die("--image_size takes one or two numbers (H W)");
    char *tend;
    double threshold = strtod(threshold_arg, &tend);
    if (*tend || tend == threshold_arg || !(threshold >= 0 && threshold <= 1))
        dino_die("--threshold must be a number in [0, 1], got '%s'", threshold_arg);

    char err[1024];
    Image im = {0};
    if (image_decode_file(pos[0], 0, &im, err, sizeof err) != 0) dino_die("%s", err);
    EvalModel em;
    eval_model_load(&ma, &em);
    eval_model_require_vit(&ma, &em, "a ResNet has no attention maps (dino attention needs a ViT)");
    const ViTConfig *cfg = &em.m.vit;
    int p = cfg->patch, nh = cfg->heads;
    AttentionInput in;
    if (attention_input_prepare(&im, pos[0], image_size.n, image_size.v, p, nh, &in, err, sizeof err))
        dino_die("%s", err);
    image_free(&im);
    const int T = in.gh * in.gw + 1;

    double t0 = dino_now();
    struct ViTActs *acts = vit_acts_create(cfg, 1, in.H, in.W, 0);
    vit_forward(cfg, &em.w, acts, in.x, 1, NULL);
    float *maps = mallocCheck((size_t)nh * (T - 1) * sizeof(float));
    attnmap_cls(vit_last_attention(acts), nh, T, maps);
    double secs = dino_now() - t0;
    vit_acts_free(acts);

    if (attention_figure_write(out, &in, maps, nh, p, threshold, err, sizeof err)) dino_die("%s", err);
    printf("%s: %lldx%lld -> %dx%d patches of %d, %d heads (%s), forward %.2f s; wrote %s/img.png, "
           "attn-head*.png,%s attn-grid.png, attn_maps.npy\n",
           pos[0], (long long)in.rw, (long long)in.rh, in.gw, in.gh, p, nh, em.desc, secs, out,
           threshold > 0 ? " mask_th*.png," : "");
    // vit_last_attention has dropped the registers' rows and columns.
    if (cfg->n_registers)
        printf("the model has %d %s: the maps are CLS attention to patch tokens only, the "
               "%s columns dropped\n", cfg->n_registers, cfg->rope_base > 0 ? "storage tokens" : "registers",
               cfg->rope_base > 0 ? "storage-token" : "register");
    free(maps);
    attention_input_free(&in);
    eval_model_free(&em);
    return 0;
}
