// Named tables over one contiguous float buffer. A model's parameters,
// gradients, AdamW moments and the teacher are separate buffers that share one
// table, so zeroing gradients is one memset, the EMA is one loop, and a
// checkpoint is the table plus one write. Names are the reference's state_dict
// keys ("backbone.blocks.0.attn.qkv.weight", "head.last_layer.weight_v").
#ifndef DINO_PARAMS_H
#define DINO_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define PARAM_NAME_MAX 96
#define PARAM_MAX_DIMS 4

typedef struct {
    char name[PARAM_NAME_MAX];
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];
    size_t offset;  // in floats from the start of the buffer
    size_t numel;
    int no_decay;   // reference group 1: names ending in ".bias" and 1-D tensors
    int trainable;  // 0 for head.last_layer.weight_g when norm_last_layer
    int buffer;     // 1 for BatchNorm running statistics: state, not a parameter
                    // (no gradient, no optimizer step, no teacher EMA)
} ParamInfo;

typedef struct {
    ParamInfo *p;
    int n, cap;
    size_t total;  // floats in the whole buffer
} ParamTable;

void param_table_init(ParamTable *t);
void param_table_free(ParamTable *t);
// Appends `prefix``name` with the given shape at the end of the buffer; sets
// no_decay from the reference's rule and trainable = 1. Returns its index.
int param_table_add(ParamTable *t, const char *prefix, const char *name, int ndim,
                    const int64_t *shape);
// Index of a name, or -1.
int param_table_find(const ParamTable *t, const char *name);

#endif
