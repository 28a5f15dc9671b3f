// oneDNN matmul primitives for the GEMM seam (src/gemm.h). A primitive is
// created once per (precision, transposes, M, N, K, leading dims, alpha,
// beta) and kept for the life of the process: creating one costs far more
// than running a ViT-sized GEMM. Lookups take a mutex; execution does not
// (primitives are immutable; each thread has its own stream and scratchpad).
#include "gemm_onednn.h"

#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static dnnl_engine_t g_engine;
static dnnl_status_t g_engine_status = dnnl_runtime_error;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void engine_init(void) { g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0); }

int onednn_ready(char *err, size_t n) {
    pthread_once(&g_once, engine_init);
    if (g_engine_status == dnnl_success) return 0;
    if (err) snprintf(err, n, "oneDNN's CPU engine could not be created (status %d)", (int)g_engine_status);
    return -1;
}

unsigned onednn_isa(void) { return (unsigned)dnnl_get_effective_cpu_isa(); }

// ISA values are bit sets: a CPU has an ISA when it has all of its bits.
static int isa_has(unsigned isa) { return (onednn_isa() & isa) == isa; }
int onednn_has_bf16(void) { return isa_has(dnnl_cpu_isa_avx512_core_bf16); }

const char *onednn_isa_str(void) {
    if (isa_has(dnnl_cpu_isa_avx512_core_amx)) return "avx512_core_amx";
    if (isa_has(dnnl_cpu_isa_avx512_core_bf16)) return "avx512_core_bf16";
    if (isa_has(dnnl_cpu_isa_avx512_core_vnni)) return "avx512_core_vnni";
    if (isa_has(dnnl_cpu_isa_avx512_core)) return "avx512_core";
    if (isa_has(dnnl_cpu_isa_avx2_vnni)) return "avx2_vnni";
    if (isa_has(dnnl_cpu_isa_avx2)) return "avx2";
    if (isa_has(dnnl_cpu_isa_avx)) return "avx";
    if (isa_has(dnnl_cpu_isa_sse41)) return "sse41";
    return "none";
}

// A matmul's shape: A (…, M, K) · B (…, K, N) -> C (…, M, N) with up to two
// batch dims in front (nd = 2 or 4), every operand with its own strides.
// Built with memset first, so memcmp compares keys.
typedef struct {
    int bf16, nd;
    int64_t dims[3][4], str[3][4];  // A, B, C
    float alpha, beta;
} Key;

// The 2-D key of a cblas-style call.
static Key key_2d(int bf16, int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc,
                  float alpha, float beta) {
    Key k;
    memset(&k, 0, sizeof k);
    k.bf16 = bf16, k.nd = 2, k.alpha = alpha, k.beta = beta;
    // op(A) (M,K): A stored M×K (strides lda,1) or K×M (strides 1,lda).
    int64_t d[3][2] = {{M, K}, {K, N}, {M, N}};
    int64_t st[3][2] = {{ta ? 1 : lda, ta ? lda : 1}, {tb ? 1 : ldb, tb ? ldb : 1}, {ldc, 1}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) k.dims[i][j] = d[i][j], k.str[i][j] = st[i][j];
    return k;
}

typedef struct {
    Key key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t md[4];  // src, weights, dst, scratchpad
} Entry;

// Distinct GEMMs of a run are a few dozen (the ViT's layers at each crop
// size, k-NN tiles); past this many, new shapes run uncached.
#define CACHE_MAX 1024
static Entry g_cache[CACHE_MAX];
static int g_ncache;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static int key_eq(const Key *a, const Key *b) { return !memcmp(a, b, sizeof *a); }

// The primitive descriptor of a key, or NULL when oneDNN has no implementation.
static dnnl_primitive_desc_t make_pd(const Key *k) {
    dnnl_data_type_t in = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t md3[3];
    for (int i = 0; i < 3; i++) {
        dnnl_dims_t dims, str;
        for (int j = 0; j < k->nd; j++) dims[j] = k->dims[i][j], str[j] = k->str[i][j];
        if (dnnl_memory_desc_init_by_strides(&md3[i], k->nd, dims, i == 2 ? dnnl_f32 : in, str) != dnnl_success)
            return NULL;
    }
    const dnnl_memory_desc_t *a_md = &md3[0], *b_md = &md3[1], *c_md = &md3[2];
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, a_md, b_md, NULL, c_md) != dnnl_success) return NULL;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    dnnl_post_ops_t po = NULL;
    int ok = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    // alpha as the output scale, then beta·C as a sum post-op (oneDNN
    // applies them in this order: alpha·AB + beta·C).
    if (ok && k->alpha != 1.0f)
        ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) == dnnl_success;
    if (ok && k->beta != 0.0f) {
        ok = dnnl_post_ops_create(&po) == dnnl_success &&
             dnnl_post_ops_append_sum(po, k->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    }
    dnnl_primitive_desc_t pd = NULL;
    if (ok && dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL) != dnnl_success) pd = NULL;
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

static int make_entry(const Key *k, Entry *e) {
    dnnl_primitive_desc_t pd = make_pd(k);
    if (!pd) return -1;
    static const dnnl_query_t q[4] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md,
                                      dnnl_query_scratchpad_md};
    e->key = *k;
    for (int i = 0; i < 4; i++) {
        const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(pd, q[i], 0);
        if (!m) {
            dnnl_primitive_desc_destroy(pd);
            return -1;
        }
        e->md[i] = *m;
    }
    int rc = dnnl_primitive_create(&e->prim, pd) == dnnl_success ? 0 : -1;
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

// Per-thread stream and scratchpad (grown as needed, kept for the thread's life).
static _Thread_local dnnl_stream_t t_stream;
static _Thread_local void *t_scratch;
static _Thread_local size_t t_scratch_n;

dnnl_engine_t onednn_engine(void) { return g_engine; }

int onednn_execute(dnnl_primitive_t prim, int n, const int *arg, const dnnl_memory_desc_t *md,
                   void *const *ptr) {
    if (!t_stream && dnnl_stream_create(&t_stream, g_engine, dnnl_stream_default_flags) != dnnl_success) {
        t_stream = NULL;
        return -1;
    }
    dnnl_memory_t mem[ONEDNN_MAX_ARGS + 1] = {0};
    dnnl_exec_arg_t args[ONEDNN_MAX_ARGS + 1];
    int nargs = 0, rc = n > ONEDNN_MAX_ARGS ? -1 : 0;
    for (int i = 0; i < n && !rc; i++) {
        void *p = ptr[i];
        if (arg[i] == DNNL_ARG_SCRATCHPAD) {
            size_t need = dnnl_memory_desc_get_size(&md[i]);
            if (!need) continue;
            if (need > t_scratch_n) {
                free(t_scratch);
                t_scratch = alignedAllocCheck(need);
                t_scratch_n = need;
            }
            p = t_scratch;
        }
        if (dnnl_memory_create(&mem[nargs], &md[i], g_engine, p) != dnnl_success) rc = -1;
        else args[nargs] = (dnnl_exec_arg_t){arg[i], mem[nargs]}, nargs++;
    }
    if (!rc && dnnl_primitive_execute(prim, t_stream, nargs, args) != dnnl_success) rc = -1;
    if (!rc && dnnl_stream_wait(t_stream) != dnnl_success) rc = -1;
    for (int i = 0; i < nargs; i++) dnnl_memory_destroy(mem[i]);
    return rc;
}

static int run(const Entry *e, const void *A, const void *B, float *C) {
    static const int argk[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD};
    void *ptr[4] = {(void *)A, (void *)B, C, NULL};
    return onednn_execute(e->prim, 4, argk, e->md, ptr);
}

// Looks the key up (creating and caching its primitive) and runs it.
static int matmul_key(const Key *k, const void *A, const void *B, float *C) {
    if (onednn_ready(NULL, 0)) return -1;
    const Entry *e = NULL;
    pthread_mutex_lock(&g_lock);
    for (int i = g_ncache - 1; i >= 0 && !e; i--)
        if (key_eq(&g_cache[i].key, k)) e = &g_cache[i];
    if (!e && g_ncache < CACHE_MAX && make_entry(k, &g_cache[g_ncache]) == 0) e = &g_cache[g_ncache++];
    pthread_mutex_unlock(&g_lock);
    if (e) return run(e, A, B, C);
    // The cache is full: a primitive for this call only.
    Entry tmp;
    if (make_entry(k, &tmp)) return -1;
    int rc = run(&tmp, A, B, C);
    dnnl_primitive_destroy(tmp.prim);
    return rc;
}

int onednn_matmul(int bf16, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                  int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    Key k = key_2d(bf16, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta);
    return matmul_key(&k, A, B, C);
}

int onednn_batched_matmul(int bf16, int nb0, int nb1, int M, int N, int K, float alpha,
                          const void *A, const int64_t a_str[4], const void *B,
                          const int64_t b_str[4], float *C, const int64_t c_str[4]) {
    Key k;
    memset(&k, 0, sizeof k);
    k.bf16 = bf16, k.nd = 4, k.alpha = alpha, k.beta = 0.0f;
    int64_t d[3][4] = {{nb0, nb1, M, K}, {nb0, nb1, K, N}, {nb0, nb1, M, N}};
    const int64_t *st[3] = {a_str, b_str, c_str};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) k.dims[i][j] = d[i][j], k.str[i][j] = st[i][j];
    return matmul_key(&k, A, B, C);
}

int onednn_impl_name(int bf16, int M, int N, int K, char *buf, size_t n) {
    if (onednn_ready(NULL, 0)) return -1;
    Key k = key_2d(bf16, 0, 1, M, N, K, K, K, N, 1.0f, 0.0f);
    dnnl_primitive_desc_t pd = make_pd(&k);
    if (!pd) return -1;
    const char *s = NULL;
    int rc = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) == dnnl_success && s ? 0 : -1;
    if (!rc) snprintf(buf, n, "%s", s);
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

// ---------------------------------------------------------------- fused Linear
// C = post(A·Wᵀ) with the bias in the matmul and GELU or the residual as
// post-ops (docs/ENGINE.md, "Fused Linear epilogues"). Its own key and cache,
// so that the plain GEMMs above stay as they are.
typedef struct {
    int M, N, K, lda, ldw, ldc;
    int bias, gelu, res;  // res: 0 none, 1 sum (the residual is C itself), 2 binary add
} LinKey;

// prim NULL: oneDNN has no implementation for the key (not asked again).
typedef struct {
    LinKey key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t md[6];  // src, weights, dst, bias, residual, scratchpad
} LinEntry;

#define LIN_CACHE_MAX 1024
static LinEntry g_lin[LIN_CACHE_MAX];
static int g_nlin;
static pthread_mutex_t g_lin_lock = PTHREAD_MUTEX_INITIALIZER;

static int md_2d(dnnl_memory_desc_t *md, int64_t r, int64_t c, int64_t sr, int64_t sc) {
    dnnl_dims_t d = {r, c}, s = {sr, sc};
    return dnnl_memory_desc_init_by_strides(md, 2, d, dnnl_f32, s) == dnnl_success ? 0 : -1;
}

// GELU (erf form, as PyTorch's nn.GELU), a sum or a binary add: at most one
// of GELU and the residual (gemm.h).
static int linear_post_ops(const LinKey *k, const dnnl_memory_desc_t *res, dnnl_primitive_attr_t attr) {
    if (!k->gelu && !k->res) return 0;
    dnnl_post_ops_t po;
    if (dnnl_post_ops_create(&po) != dnnl_success) return -1;
    int ok = 1;
    if (k->gelu) ok = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f) == dnnl_success;
    if (ok && k->res == 1) ok = dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success;
    if (ok && k->res == 2) ok = dnnl_post_ops_append_binary(po, dnnl_binary_add, res) == dnnl_success;
    if (ok) ok = dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    dnnl_post_ops_destroy(po);
    return ok ? 0 : -1;
}

// Fills e for k; e->prim stays NULL where oneDNN cannot make the primitive.
static void make_linear(const LinKey *k, LinEntry *e) {
    memset(e, 0, sizeof *e);
    e->key = *k;
    dnnl_memory_desc_t *md = e->md;
    // A (M,K) row-major; W stored (N,K) read as Wᵀ (K,N); bias (1,N); the
    // residual laid out as C.
    if (md_2d(&md[0], k->M, k->K, k->lda, 1) || md_2d(&md[1], k->K, k->N, 1, k->ldw) ||
        md_2d(&md[2], k->M, k->N, k->ldc, 1) || md_2d(&md[3], 1, k->N, k->N, 1))
        return;
    md[4] = md[2];
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &md[0], &md[1], k->bias ? &md[3] : NULL, &md[2]) != dnnl_success)
        return;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success ||
        linear_post_ops(k, &md[4], attr) ||
        dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL) != dnnl_success)
        pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    if (!pd) return;
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (pad) {
        md[5] = *pad;
        if (dnnl_primitive_create(&e->prim, pd) != dnnl_success) e->prim = NULL;
    }
    dnnl_primitive_desc_destroy(pd);
}

int onednn_linear(int M, int N, int K, const float *A, int lda, const float *W, int ldw, float *C,
                  int ldc, const float *bias, int gelu, const float *res) {
    if (onednn_ready(NULL, 0) || (gelu && res)) return -1;
    LinKey k = (LinKey){M, N, K, lda, ldw, ldc, bias != NULL, gelu != 0, !res ? 0 : res == C ? 1 : 2};
    const LinEntry *e = NULL;
    pthread_mutex_lock(&g_lin_lock);
    for (int i = g_nlin - 1; i >= 0 && !e; i--)
        if (!memcmp(&g_lin[i].key, &k, sizeof k)) e = &g_lin[i];
    if (!e && g_nlin < LIN_CACHE_MAX) make_linear(&k, &g_lin[g_nlin]), e = &g_lin[g_nlin++];
    pthread_mutex_unlock(&g_lin_lock);
    // Without an implementation, or with the cache full, the caller's
    // unfused GEMM (itself cached) does the work.
    if (!e || !e->prim) return -1;
    static const int arg0[6] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS, 0, DNNL_ARG_SCRATCHPAD};
    int arg[6];
    dnnl_memory_desc_t md[6];
    void *ptr[6];
    void *const all[6] = {(void *)A, (void *)W, C, (void *)bias, (void *)res, NULL};
    int n = 0;
    for (int i = 0; i < 6; i++) {
        if ((i == 3 && !k.bias) || (i == 4 && k.res != 2)) continue;
        arg[n] = i == 4 ? (DNNL_ARG_ATTR_MULTIPLE_POST_OP(k.gelu) | DNNL_ARG_SRC_1) : arg0[i];
        md[n] = e->md[i];
        ptr[n++] = all[i];
    }
    return onednn_execute(e->prim, n, arg, md, ptr);
}
