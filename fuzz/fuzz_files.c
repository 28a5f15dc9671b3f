// libFuzzer target for the file readers: the input is written to a temporary
// file and opened as a native checkpoint, a safetensors file, a .pth and a
// model (model_load), each of which must refuse bad input with a message.
// The first byte picks the reader so the fuzzer can specialise; the native
// reader's checksum is recomputed so mutations reach the table checks.
// Build and run: fuzz/run.sh files
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/model_io.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "io/xxh64.h"

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!path[0]) snprintf(path, sizeof path, "/tmp/dino_fuzz_%d", (int)getpid());
    int which = data[0] % 4;
    data++;
    size--;
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    if (which == 0 && size >= 72) {  // fix up the native checksum
        uint64_t h = xxh64(copy, size - 8, 0);
        for (int i = 0; i < 8; i++) copy[size - 8 + i] = (uint8_t)(h >> (8 * i));
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size) fwrite(copy, 1, size, f);
    fclose(f);
    free(copy);
    char err[512];
    if (which == 0) {
        Ckpt *c = ckpt_open(path, err, sizeof err);
        if (c) {
            for (int i = 0; i < ckpt_n_tensors(c); i++) {
                const CkptTensor *t = ckpt_tensor_at(c, i);
                volatile uint8_t s = 0;
                size_t es = t->dtype == DT_I64 ? 8 : t->dtype == DT_U8 ? 1 : (t->dtype == DT_F32 || t->dtype == DT_I32) ? 4 : 2;
                for (size_t k = 0; k < t->numel * es; k++) s ^= ((const uint8_t *)t->data)[k];
            }
            ckpt_close(c);
        }
    } else if (which == 1) {
        SafeFile *s = safetensors_open(path, err, sizeof err);
        if (s) {
            for (int i = 0; i < s->n; i++) {
                if (s->t[i].numel > (1u << 20)) continue;
                float *v = malloc((s->t[i].numel ? s->t[i].numel : 1) * sizeof(float));
                safetensors_read_f32(s, &s->t[i], v, err, sizeof err);
                free(v);
            }
            safetensors_close(s);
        }
    } else if (which == 2) {
        PthFile *p = pth_open(path, err, sizeof err);
        if (p) pth_close(p);
    } else {
        DinoModel m;
        float *params;
        if (model_load(path, NULL, &m, &params, err, sizeof err) == 0) {
            free(params);
            model_free(&m);
        }
    }
    return 0;
}
