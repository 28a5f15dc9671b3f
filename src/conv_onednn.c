// oneDNN convolutions for conv.h (docs/ENGINE.md, "Convolutions"). Our
// activations are (C, B, H, W), a layout oneDNN's fast kernels do not take,
// so each primitive is created with its tensors in the layouts it picks
// ("any": channel-blocked on x86) and every call reorders the operands into
// them and the result back; accumulation (+=) happens in that last reorder,
// as a sum post-op. A primitive, its reorders and the layouts are created
// once per (direction, shape, accumulate) and kept for the process, as the
// matmuls of gemm_onednn.c are, on the same engine, stream and scratchpad.
// The evaluation-mode forward with a bias (a folded BatchNorm) runs the bias,
// a residual sum and the ReLU inside the primitive (a bias operand, sum and
// eltwise post-ops), and can keep activations in the primitives' layouts
// from one convolution to the next (slots), skipping the reorders between.
#include "conv_onednn.h"

#include <dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gemm_onednn.h"

typedef enum { FWD, BWD_DATA, BWD_WEIGHTS, FWD_BIAS } Direction;

// Built with memset first, so memcmp compares keys. acc: the result adds
// to the output (FWD_BIAS: a sum post-op before the ReLU, in its layout).
typedef struct {
    int dir, acc, relu;
    ConvShape s;
} Key;

// Operands: two inputs (0, 1) and the output (2); the scratchpad is slot 3,
// FWD_BIAS's bias (in our layout, never reordered) slot 4.
// FWD: in, w -> out. BWD_DATA: dout, w -> din. BWD_WEIGHTS: in, dout -> dw.
typedef struct {
    Key key;
    dnnl_primitive_t conv;
    int narg;
    int arg[5];
    dnnl_memory_desc_t md[5];    // the layouts the primitive runs on
    dnnl_memory_desc_t user[3];  // ours
    dnnl_primitive_t reorder[3]; // user <-> md[i]; NULL where none is needed
    dnnl_memory_desc_t reorder_scratch[3];
} Entry;

#define CACHE_MAX 512
static Entry g_cache[CACHE_MAX];
static int g_ncache;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

// (C, B, H, W) in memory, described as oneDNN's logical (B, C, H, W).
static int act_md(dnnl_memory_desc_t *md, int B, int C, int H, int W) {
    dnnl_dims_t d = {B, C, H, W}, st = {(int64_t)H * W, (int64_t)B * H * W, W, 1};
    return dnnl_memory_desc_init_by_strides(md, 4, d, dnnl_f32, st) == dnnl_success ? 0 : -1;
}

static int any_md(dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like) {
    return dnnl_memory_desc_init_by_tag(md, 4, like->dims, dnnl_f32, dnnl_format_tag_any) == dnnl_success
               ? 0 : -1;
}

static dnnl_primitive_attr_t user_scratch_attr(void) {
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

// The scratchpad attribute plus, when sum, a sum post-op (the output adds
// to what the destination holds) and then, when relu, a ReLU post-op.
static dnnl_primitive_attr_t relu_attr(int relu, int sum) {
    dnnl_primitive_attr_t attr = user_scratch_attr();
    if (!attr || (!relu && !sum)) return attr;
    dnnl_post_ops_t po = NULL;
    int ok = dnnl_post_ops_create(&po) == dnnl_success &&
             (!sum || dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success) &&
             (!relu || dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f) == dnnl_success) &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    if (po) dnnl_post_ops_destroy(po);
    if (!ok) dnnl_primitive_attr_destroy(attr);
    return ok ? attr : NULL;
}

// The user-layout descriptors of key k: in, w, out.
static int user_mds(const Key *k, dnnl_memory_desc_t *in, dnnl_memory_desc_t *w, dnnl_memory_desc_t *out) {
    const ConvShape *s = &k->s;
    dnnl_dims_t wd = {s->OC, s->C, s->k, s->k};
    if (act_md(in, s->B, s->C, s->H, s->W) || act_md(out, s->B, s->OC, s->OH, s->OW)) return -1;
    return dnnl_memory_desc_init_by_tag(w, 4, wd, dnnl_f32, dnnl_abcd) == dnnl_success ? 0 : -1;
}

// The primitive descriptor of k's direction, on "any" layouts. Padding on
// the right equals the left one: with Conv2d's floor rule that gives the
// same output size.
static dnnl_primitive_desc_t make_pd(const Key *k) {
    const ConvShape *s = &k->s;
    dnnl_memory_desc_t in, w, out, bias;
    if (user_mds(k, &in, &w, &out) || any_md(&in, &in) || any_md(&w, &w) || any_md(&out, &out)) return NULL;
    dnnl_dims_t st = {s->stride, s->stride}, pad = {s->pad, s->pad}, bd1 = {s->OC};
    int fused = k->dir == FWD_BIAS;
    if (fused && dnnl_memory_desc_init_by_tag(&bias, 1, bd1, dnnl_f32, dnnl_a) != dnnl_success) return NULL;
    dnnl_convolution_desc_t fd, bd;
    dnnl_primitive_attr_t attr = fused ? relu_attr(k->relu, k->acc) : user_scratch_attr();
    if (!attr) return NULL;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_engine_t eng = onednn_engine();
    if (dnnl_convolution_forward_desc_init(&fd, fused ? dnnl_forward_inference : dnnl_forward_training,
                                           dnnl_convolution_direct, &in, &w, fused ? &bias : NULL, &out, st,
                                           pad, pad) == dnnl_success &&
        dnnl_primitive_desc_create(&hint, &fd, attr, eng, NULL) == dnnl_success) {
        if (k->dir == FWD || fused) {
            pd = hint, hint = NULL;
        } else if (k->dir == BWD_DATA) {
            if (dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &in, &w, &out, st,
                                                         pad, pad) != dnnl_success ||
                dnnl_primitive_desc_create(&pd, &bd, attr, eng, hint) != dnnl_success)
                pd = NULL;
        } else if (dnnl_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &in, &w, NULL,
                                                               &out, st, pad, pad) != dnnl_success ||
                   dnnl_primitive_desc_create(&pd, &bd, attr, eng, hint) != dnnl_success) {
            pd = NULL;
        }
    }
    if (hint) dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

// A reorder from -> to (adding into to when acc), with its scratchpad's descriptor.
static int make_reorder(dnnl_primitive_t *r, dnnl_memory_desc_t *scratch, const dnnl_memory_desc_t *from,
                        const dnnl_memory_desc_t *to, int acc) {
    dnnl_primitive_attr_t attr = user_scratch_attr();
    if (!attr) return -1;
    dnnl_post_ops_t po = NULL;
    int ok = !acc || (dnnl_post_ops_create(&po) == dnnl_success &&
                      dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
                      dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng = onednn_engine();
    ok = ok && dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, attr) == dnnl_success;
    const dnnl_memory_desc_t *sm = ok ? dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) : NULL;
    if (sm) *scratch = *sm;
    ok = sm && dnnl_primitive_create(r, pd) == dnnl_success;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return ok ? 0 : -1;
}

static void entry_destroy(Entry *e) {
    if (e->conv) dnnl_primitive_destroy(e->conv);
    for (int i = 0; i < 3; i++)
        if (e->reorder[i]) dnnl_primitive_destroy(e->reorder[i]);
    memset(e, 0, sizeof *e);
}

static int make_entry(const Key *k, Entry *e) {
    memset(e, 0, sizeof *e);
    e->key = *k;
    dnnl_memory_desc_t in, w, out;
    if (user_mds(k, &in, &w, &out)) return -1;
    static const int args[4][3] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                                   {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
                                   {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS},
                                   {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST}};
    const dnnl_memory_desc_t *users[4][3] = {{&in, &w, &out}, {&out, &w, &in}, {&in, &out, &w}, {&in, &w, &out}};
    dnnl_primitive_desc_t pd = make_pd(k);
    if (!pd) return -1;
    int rc = 0;
    e->narg = k->dir == FWD_BIAS ? 5 : 4;
    for (int i = 0; i < e->narg && !rc; i++) {
        e->arg[i] = i < 3 ? args[k->dir][i] : i == 3 ? DNNL_ARG_SCRATCHPAD : DNNL_ARG_BIAS;
        const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, e->arg[i]);
        if (!m) rc = -1;
        else e->md[i] = *m;
    }
    if (!rc) rc = dnnl_primitive_create(&e->conv, pd) == dnnl_success ? 0 : -1;
    dnnl_primitive_desc_destroy(pd);
    for (int i = 0; i < 3 && !rc; i++) {
        e->user[i] = *users[k->dir][i];
        int acc = i == 2 && (k->dir == BWD_WEIGHTS || (k->dir != FWD_BIAS && k->acc));
        if (!acc && dnnl_memory_desc_equal(&e->user[i], &e->md[i])) continue;
        rc = i < 2 ? make_reorder(&e->reorder[i], &e->reorder_scratch[i], &e->user[i], &e->md[i], 0)
                   : make_reorder(&e->reorder[i], &e->reorder_scratch[i], &e->md[i], &e->user[i], acc);
    }
    if (rc) entry_destroy(e);
    return rc;
}

// Per-thread buffers for the operands in the primitive's layouts (grown as needed).
static _Thread_local void *t_buf[3];
static _Thread_local size_t t_buf_n[3];

static void *buf(int i, size_t bytes) {
    if (bytes > t_buf_n[i]) {
        free(t_buf[i]);
        t_buf[i] = alignedAllocCheck(bytes);
        t_buf_n[i] = bytes;
    }
    return t_buf[i];
}

static int reorder_run(const Entry *e, int i, const void *from, void *to) {
    const dnnl_memory_desc_t *fm = i < 2 ? &e->user[i] : &e->md[i], *tm = i < 2 ? &e->md[i] : &e->user[i];
    int arg[3] = {DNNL_ARG_FROM, DNNL_ARG_TO, DNNL_ARG_SCRATCHPAD};
    dnnl_memory_desc_t md[3] = {*fm, *tm, e->reorder_scratch[i]};
    void *ptr[3] = {(void *)from, to, NULL};
    return onednn_execute(e->reorder[i], 3, arg, md, ptr);
}

// Reorders the inputs, runs the convolution, reorders (or adds) the result back.
static int run(const Entry *e, const float *a, const float *b, float *out, const float *bias) {
    const float *user[3] = {a, b, out};
    void *ptr[5] = {(void *)a, (void *)b, out, NULL, (void *)bias};
    for (int i = 0; i < 3; i++)
        if (e->reorder[i]) ptr[i] = buf(i, dnnl_memory_desc_get_size(&e->md[i]));
    for (int i = 0; i < 2; i++)
        if (e->reorder[i] && reorder_run(e, i, user[i], ptr[i])) return -1;
    if (onednn_execute(e->conv, e->narg, e->arg, e->md, ptr)) return -1;
    return e->reorder[2] ? reorder_run(e, 2, ptr[2], out) : 0;
}

// The cached entry of k, created on first use; NULL when oneDNN has no
// primitive for it or the cache is full.
static const Entry *cached(const Key *k) {
    const Entry *e = NULL;
    pthread_mutex_lock(&g_lock);
    for (int i = g_ncache - 1; i >= 0 && !e; i--)
        if (!memcmp(&g_cache[i].key, k, sizeof *k)) e = &g_cache[i];
    if (!e && g_ncache < CACHE_MAX && make_entry(k, &g_cache[g_ncache]) == 0) e = &g_cache[g_ncache++];
    pthread_mutex_unlock(&g_lock);
    return e;
}

static Key key_of(int dir, int acc, int relu, const ConvShape *s) {
    Key k;
    memset(&k, 0, sizeof k);
    k.dir = dir, k.acc = acc, k.relu = relu, k.s = *s;
    return k;
}

static int conv_key(int dir, int acc, int relu, const ConvShape *s, const float *a, const float *b, float *out,
                    const float *bias) {
    if (onednn_ready(NULL, 0)) return -1;
    Key k = key_of(dir, acc, relu, s);
    const Entry *e = cached(&k);
    if (e) return run(e, a, b, out, bias);
    // The cache is full: primitives for this call only.
    Entry tmp;
    if (make_entry(&k, &tmp)) return -1;
    int rc = run(&tmp, a, b, out, bias);
    entry_destroy(&tmp);
    return rc;
}

int onednn_conv_forward(float *out, const float *in, const float *w, const ConvShape *s) {
    return conv_key(FWD, 0, 0, s, in, w, out, NULL);
}

int onednn_conv_backward_data(float *din, const float *dout, const float *w, const ConvShape *s,
                              int accumulate) {
    return conv_key(BWD_DATA, accumulate != 0, 0, s, dout, w, din, NULL);
}

int onednn_conv_backward_weights(float *dw, const float *dout, const float *in, const ConvShape *s) {
    return conv_key(BWD_WEIGHTS, 1, 0, s, in, dout, dw, NULL);
}

int onednn_conv_forward_bias(float *out, const float *in, const float *w, const float *bias, int relu,
                             const ConvShape *s) {
    return conv_key(FWD_BIAS, 0, relu != 0, s, in, w, out, bias);
}

// Activation slots: per-thread buffers in the layout of the entry that last
// wrote them (its input layout for a load, its output layout for a conv).
typedef struct {
    void *p;
    size_t n;
    const Entry *e;
    int is_src;
} Act;
static _Thread_local Act t_act[ONEDNN_ACT_SLOTS];

static const dnnl_memory_desc_t *act_layout(const Act *a) { return a->is_src ? &a->e->md[0] : &a->e->md[2]; }

static void *act_grow(Act *a, size_t bytes) {
    if (bytes > a->n) {
        free(a->p);
        a->p = alignedAllocCheck(bytes);
        a->n = bytes;
    }
    return a->p;
}

static const Entry *bias_entry(const ConvShape *s, int relu, int sum) {
    if (onednn_ready(NULL, 0)) return NULL;
    Key k = key_of(FWD_BIAS, sum != 0, relu != 0, s);
    return cached(&k);
}

int onednn_act_load(int slot, const float *in, const ConvShape *s, int relu, int sum) {
    const Entry *e = bias_entry(s, relu, sum);
    if (!e || slot < 0 || slot >= ONEDNN_ACT_SLOTS) return -1;
    Act *a = &t_act[slot];
    size_t bytes = dnnl_memory_desc_get_size(&e->md[0]);
    void *p = act_grow(a, bytes);
    if (e->reorder[0] ? reorder_run(e, 0, in, p) : (memcpy(p, in, bytes), 0)) return a->e = NULL, -1;
    a->e = e, a->is_src = 1;
    return 0;
}

int onednn_act_conv(int dst, int src, const ConvShape *s, const float *w, const float *bias, int relu, int sum) {
    const Entry *e = bias_entry(s, relu, sum);
    if (!e || dst == src || dst < 0 || src < 0 || dst >= ONEDNN_ACT_SLOTS || src >= ONEDNN_ACT_SLOTS) return -1;
    Act *in = &t_act[src], *out = &t_act[dst];
    if (!in->e || !dnnl_memory_desc_equal(act_layout(in), &e->md[0])) return -1;
    if (sum && (!out->e || !dnnl_memory_desc_equal(act_layout(out), &e->md[2]))) return -1;
    void *wp = (void *)w;
    if (e->reorder[1]) {
        wp = buf(1, dnnl_memory_desc_get_size(&e->md[1]));
        if (reorder_run(e, 1, w, wp)) return -1;
    }
    if (!sum) act_grow(out, dnnl_memory_desc_get_size(&e->md[2]));
    void *ptr[5] = {in->p, wp, out->p, NULL, (void *)bias};
    out->e = NULL;
    if (onednn_execute(e->conv, e->narg, e->arg, e->md, ptr)) return -1;
    out->e = e, out->is_src = 0;
    return 0;
}

int onednn_act_store(float *out, int slot) {
    if (slot < 0 || slot >= ONEDNN_ACT_SLOTS) return -1;
    const Act *a = &t_act[slot];
    if (!a->e || a->is_src) return -1;
    if (a->e->reorder[2]) return reorder_run(a->e, 2, a->p, out);
    memcpy(out, a->p, dnnl_memory_desc_get_size(&a->e->md[2]));
    return 0;
}
