// Writes the seed corpora of the model-file fuzzers that need dino.c's own
// writers: a tiny native checkpoint with every dtype (fuzz/corpus/checkpoint/)
// and a tiny ViT + head saved as native and safetensors files
// (fuzz/corpus/model/, fuzz/corpus/safetensors/). Run once from the
// repository root after `make`:
//   cc -Isrc fuzz/make_seeds_io.c build/libdino.a $(LIBS) -o /tmp/seeds && /tmp/seeds
// (scripts/fuzz.sh does not need it; the files are committed).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/checkpoint.h"
#include "io/model_io.h"
#include "model.h"

static void die(const char *what, const char *err) {
    fprintf(stderr, "%s: %s\n", what, err);
    exit(1);
}

int main(void) {
    char err[512];
    mkdir("fuzz/corpus/checkpoint", 0755);
    mkdir("fuzz/corpus/model", 0755);
    mkdir("fuzz/corpus/safetensors", 0755);
    CkptWriter *w = ckpt_writer_open("fuzz/corpus/checkpoint/dtypes.dino", err, sizeof err);
    if (!w) die("writer", err);
    ckpt_add_meta(w, "kind", "training");
    ckpt_add_meta(w, "epoch", "3");
    float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    int32_t i32[3] = {1, -1, 7};
    int64_t i64[2] = {5, -9};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3}, s2[1] = {2}, s5[1] = {5}, s0[1] = {0};
    ckpt_add_tensor(w, "f32", DT_F32, 2, s23, f);
    ckpt_add_tensor(w, "f16", DT_F16, 1, s4, h);
    ckpt_add_tensor(w, "bf16", DT_BF16, 1, s4, h);
    ckpt_add_tensor(w, "i32", DT_I32, 1, s3, i32);
    ckpt_add_tensor(w, "i64", DT_I64, 1, s2, i64);
    ckpt_add_tensor(w, "u8", DT_U8, 1, s5, u8);
    ckpt_add_tensor(w, "empty", DT_F32, 1, s0, f);
    ckpt_add_tensor(w, "scalar", DT_F32, 0, s0, f);
    if (ckpt_writer_commit(w, err, sizeof err)) die("commit", err);

    // The smallest model the builder allows: D=8, 1 block, 2 heads, patch 4,
    // 8-px images, head 8 -> 8 -> 4 bottleneck -> 6 outputs.
    ViTConfig vit = {.img_size = 8, .patch = 4, .in_chans = 3, .dim = 8, .depth = 1, .heads = 2,
                     .mlp_hidden = 16, .ln_eps = 1e-6f, .drop_path_rate = 0};
    HeadConfig head;
    head_config_default(&head, 8, 6);
    head.hidden = 8;
    head.bottleneck = 4;
    for (int with_head = 0; with_head < 2; with_head++) {
        DinoModel m;
        model_build(&m, &vit, &head, with_head);
        float *p = calloc(m.table.total, sizeof(float));
        model_init(&m, p, 1);
        if (model_save(with_head ? "fuzz/corpus/model/tiny_head.dino" : "fuzz/corpus/model/tiny.dino", &m, p, err, sizeof err))
            die("model_save", err);
        if (model_save(with_head ? "fuzz/corpus/safetensors/tiny_head.safetensors" : "fuzz/corpus/safetensors/tiny.safetensors", &m, p, err, sizeof err))
            die("model_save", err);
        free(p);
        model_free(&m);
    }
    return 0;
}
