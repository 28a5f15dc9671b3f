// Host-side plans for the CUDA kernels (see cuda_plan.h). Plain C with no
// CUDA dependency: compiled into every build and tested by
// tests/test_cuda_plan.c.
#include "cuda/cuda_plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cuda/cuda_elem.h"
#include "cuda/ops_cuda.h"

void cuda_optim_plan_build(CudaOptimPlan *p, const ParamTable *t, uint32_t chunk) {
    DINO_ASSERT(chunk > 0);
    memset(p, 0, sizeof *p);
    p->ntensors = t->n;
    p->total = t->total;
    p->first_chunk = mallocCheck((size_t)(t->n + 1) * sizeof(int));
    p->no_decay = mallocCheck((size_t)(t->n > 0 ? t->n : 1));
    p->trainable = mallocCheck((size_t)(t->n > 0 ? t->n : 1));
    size_t count = 0;
    for (int i = 0; i < t->n; i++)
        if (t->p[i].trainable) count += (t->p[i].numel + chunk - 1) / chunk;
    DINO_ASSERT(count <= (size_t)INT32_MAX);
    p->chunks = mallocCheck((count > 0 ? count : 1) * sizeof(CudaChunk));
    int c = 0;
    for (int i = 0; i < t->n; i++) {
        const ParamInfo *pi = &t->p[i];
        p->first_chunk[i] = c;
        p->no_decay[i] = (uint8_t)(pi->no_decay != 0);
        p->trainable[i] = (uint8_t)(pi->trainable != 0);
        if (!pi->trainable) continue;
        int here = 0;
        for (size_t off = 0; off < pi->numel; off += chunk) {
            size_t n = pi->numel - off < chunk ? pi->numel - off : chunk;
            p->chunks[c].offset = (uint64_t)(pi->offset + off);
            p->chunks[c].n = (uint32_t)n;
            p->chunks[c].tensor = i;
            c++, here++;
        }
        if (here > p->max_chunks_per_tensor) p->max_chunks_per_tensor = here;
    }
    p->first_chunk[t->n] = c;
    p->nchunks = c;
}

void cuda_optim_plan_free(CudaOptimPlan *p) {
    free(p->chunks);
    free(p->first_chunk);
    free(p->no_decay);
    free(p->trainable);
    memset(p, 0, sizeof *p);
}

static int tensor_active(const CudaOptimPlan *p, const uint8_t *skip, int i) {
    return p->trainable[i] && !(skip && skip[i]) && p->first_chunk[i + 1] > p->first_chunk[i];
}

void cuda_adamw_coefs(CudaTensorCoef *coef, int64_t *step, const CudaOptimPlan *p, double lr,
                      double wd, double beta1, double beta2, const uint8_t *skip) {
    for (int i = 0; i < p->ntensors; i++) {
        CudaTensorCoef *c = &coef[i];
        memset(c, 0, sizeof *c);
        if (!p->trainable[i] || (skip && skip[i])) continue;
        // optim.c increments the step of every trainable, not skipped tensor
        // (even an empty one), then computes its scalars in double.
        step[i]++;
        double wdi = p->no_decay[i] ? 0.0 : wd;
        double bc1 = 1.0 - pow(beta1, (double)step[i]);
        double bc2 = 1.0 - pow(beta2, (double)step[i]);
        c->neg_ss = (float)(-(lr / bc1));
        c->bc2s = (float)pow(bc2, 0.5);
        c->decay = (float)(1.0 - lr * wdi);
        c->flags = CUDA_COEF_ACTIVE | (wdi != 0.0 ? CUDA_COEF_DECAY : 0);
    }
}

void cuda_active_coefs(CudaTensorCoef *coef, const CudaOptimPlan *p, const uint8_t *skip) {
    for (int i = 0; i < p->ntensors; i++) {
        memset(&coef[i], 0, sizeof coef[i]);
        coef[i].decay = 1.0f;
        if (tensor_active(p, skip, i)) coef[i].flags = CUDA_COEF_ACTIVE;
    }
}

void cuda_adamw_simulate(const CudaOptimPlan *p, const CudaTensorCoef *coef, float *params,
                         const float *grads, float *m, float *v, double beta1, double beta2,
                         double eps) {
    const float w1 = (float)(1.0 - beta1), b2f = (float)beta2, w2 = (float)(1.0 - beta2);
    const float epsf = (float)eps;
    for (int c = 0; c < p->nchunks; c++) {
        const CudaChunk *ch = &p->chunks[c];
        const CudaTensorCoef *k = &coef[ch->tensor];
        if (!(k->flags & CUDA_COEF_ACTIVE)) continue;
        int dd = (k->flags & CUDA_COEF_DECAY) != 0;
        for (uint32_t j = 0; j < ch->n; j++) {
            size_t i = ch->offset + j;
            el_adamw(&params[i], &m[i], &v[i], grads[i], k->neg_ss, k->bc2s, k->decay, dd, w1,
                     b2f, w2, epsf);
        }
    }
}

void cuda_clip_simulate(const CudaOptimPlan *p, const CudaTensorCoef *coef, float *grads,
                        float clip, float *norms) {
    for (int i = 0; i < p->ntensors; i++) {
        norms[i] = 0.0f;
        if (!(coef[i].flags & CUDA_COEF_ACTIVE)) continue;
        double s = 0.0;
        for (int c = p->first_chunk[i]; c < p->first_chunk[i + 1]; c++) {
            const CudaChunk *ch = &p->chunks[c];
            double part = 0.0;
            for (uint32_t j = 0; j < ch->n; j++) {
                double g = grads[ch->offset + j];
                part += g * g;
            }
            s += part;
        }
        norms[i] = (float)sqrt(s);
        float cf = clip / (norms[i] + 1e-6f);
        if (cf < 1.0f)
            for (int c = p->first_chunk[i]; c < p->first_chunk[i + 1]; c++) {
                const CudaChunk *ch = &p->chunks[c];
                for (uint32_t j = 0; j < ch->n; j++) grads[ch->offset + j] *= cf;
            }
    }
}

CudaReducePlan cuda_layernorm_bwd_plan(int N, int C) {
    DINO_ASSERT(N >= 0 && C > 0);
    CudaReducePlan r;
    r.blocks = N > 0 ? (N + CUDA_LN_ROWS_PER_BLOCK - 1) / CUDA_LN_ROWS_PER_BLOCK : 0;
    r.scratch_floats = (size_t)r.blocks * 2 * (size_t)C;
    return r;
}

CudaReducePlan cuda_colsum_plan(int N, int OC) {
    DINO_ASSERT(N >= 0 && OC > 0);
    CudaReducePlan r;
    r.blocks = N > 0 ? (N + CUDA_COLSUM_ROWS - 1) / CUDA_COLSUM_ROWS : 0;
    r.scratch_floats = (size_t)r.blocks * (size_t)OC;
    return r;
}

CudaAttnPlan cuda_attention_plan(int B, int T, int D, int NH, size_t cap) {
    DINO_ASSERT(B > 0 && T > 0 && NH > 0 && D > 0 && D % NH == 0);
    CudaAttnPlan a;
    a.ld = (T + 3) / 4 * 4;
    size_t per = (size_t)NH * T * a.ld;  // score floats per sample
    size_t c = cap / per;
    if (c < 1) c = 1;
    if (c > (size_t)B) c = (size_t)B;
    a.chunk = (int)c;
    a.passes = (B + a.chunk - 1) / a.chunk;
    size_t tok = (size_t)a.chunk * T * D;  // one head-major (chunk,NH,T,hd) tensor
    a.fwd_scratch = 4 * tok + (size_t)a.chunk * per;
    a.bwd_scratch = 7 * tok + (size_t)a.chunk * per;
    return a;
}

static GemmShape gemm_shape(int transa, int transb, int m, int n, int k, int lda, int ldb, int ldc,
                            long long sa, long long sb, long long sc, int batch) {
    GemmShape s;
    memset(&s, 0, sizeof s);  // callers compare shapes with memcmp
    s.transa = transa, s.transb = transb;
    s.m = m, s.n = n, s.k = k;
    s.lda = lda, s.ldb = ldb, s.ldc = ldc;
    s.sa = sa, s.sb = sb, s.sc = sc;
    s.batch = batch;
    return s;
}

// outᵀ (OC,N) = w_cm(C,OC)ᵀ · inp_cm(C,N)
GemmShape cuda_gemm_linear_fwd(int N, int C, int OC) {
    return gemm_shape(1, 0, OC, N, C, C, C, OC, 0, 0, 0, 1);
}
// dinpᵀ (C,N) = w_cm(C,OC) · dout_cm(OC,N)
GemmShape cuda_gemm_linear_dinp(int N, int C, int OC) {
    return gemm_shape(0, 0, C, N, OC, C, OC, C, 0, 0, 0, 1);
}
// dwᵀ (C,OC) += inp_cm(C,N) · dout_cm(OC,N)ᵀ
GemmShape cuda_gemm_linear_dw(int N, int C, int OC) {
    return gemm_shape(0, 1, C, OC, N, C, OC, C, 0, 0, 0, 1);
}
// Sᵀ (T,T; ld lds) = Y_cm(hd,T)ᵀ · X_cm(hd,T)
GemmShape cuda_gemm_attn_xyt(int T, int hd, int lds, long long ss, int batch) {
    long long th = (long long)T * hd;
    return gemm_shape(1, 0, T, T, hd, hd, hd, lds, th, th, ss, batch);
}
// Zᵀ (hd,T) = V_cm(hd,T) · P_cm(T,T) (P_cm is Pᵀ)
GemmShape cuda_gemm_attn_pv(int T, int hd, int ldp, long long sp, int batch) {
    long long th = (long long)T * hd;
    return gemm_shape(0, 0, hd, T, T, hd, ldp, hd, th, sp, th, batch);
}
// Zᵀ (hd,T) = X_cm(hd,T) · (P_cm)ᵀ
GemmShape cuda_gemm_attn_ptx(int T, int hd, int ldp, long long sp, int batch) {
    long long th = (long long)T * hd;
    return gemm_shape(0, 1, hd, T, T, hd, ldp, hd, th, sp, th, batch);
}

unsigned cuda_gemm_align(const void *p, int ld, long long stride) {
    unsigned long long a = (unsigned long long)(uintptr_t)p | ((unsigned long long)ld * 4ull) |
                           ((unsigned long long)stride * 4ull) | 256ull;
    return (unsigned)(a & (~a + 1ull));
}

void cuda_gemm_ref(const GemmShape *s, float alpha, const float *A, const float *B, float beta,
                   const float *C, float *D, const float *bias) {
    for (int b = 0; b < s->batch; b++) {
        const float *Ab = A + (size_t)b * s->sa, *Bb = B + (size_t)b * s->sb;
        const float *Cb = C ? C + (size_t)b * s->sc : NULL;
        float *Db = D + (size_t)b * s->sc;
        for (int j = 0; j < s->n; j++)
            for (int i = 0; i < s->m; i++) {
                double acc = 0.0;
                for (int l = 0; l < s->k; l++) {
                    // op(A)[i,l], op(B)[l,j] in column-major storage
                    float a = s->transa ? Ab[(size_t)i * s->lda + l] : Ab[(size_t)l * s->lda + i];
                    float bb = s->transb ? Bb[(size_t)l * s->ldb + j] : Bb[(size_t)j * s->ldb + l];
                    acc += (double)a * bb;
                }
                double d = alpha * acc;
                if (beta != 0.0f) d += (double)beta * Cb[(size_t)j * s->ldc + i];
                if (bias) d += bias[i];
                Db[(size_t)j * s->ldc + i] = (float)d;
            }
    }
}

int cuda_blocks_for(size_t n, int per_block, int max_blocks) {
    DINO_ASSERT(per_block > 0 && max_blocks > 0);
    size_t b = (n + (size_t)per_block - 1) / (size_t)per_block;
    if (b < 1) b = 1;
    if (b > (size_t)max_blocks) b = (size_t)max_blocks;
    return (int)b;
}

int cuda_gemm_mode_parse(const char *name, CudaGemmMode *mode) {
    if (!strcmp(name, "fp32")) *mode = CUDA_GEMM_FP32;
    else if (!strcmp(name, "tf32")) *mode = CUDA_GEMM_TF32;
    else if (!strcmp(name, "bf16")) *mode = CUDA_GEMM_BF16;
    else return -1;
    return 0;
}

int cuda_gemm_mode_choose(const char *name, CudaGemmMode *mode, char *err, size_t errlen) {
    *mode = CUDA_GEMM_TF32;
    if (name && *name && cuda_gemm_mode_parse(name, mode))
        return dino_errf(err, errlen, "DINO_CUDA_GEMM must be fp32, tf32 or bf16, got '%s'", name);
    return 0;
}

const char *cuda_gemm_mode_name(CudaGemmMode mode) {
    return mode == CUDA_GEMM_FP32 ? "fp32" : mode == CUDA_GEMM_TF32 ? "tf32" : "bf16";
}
