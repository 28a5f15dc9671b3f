// `dino copy-detect`: copy detection on Copydays as the reference's
// eval_copy_detection.py evaluates it (docs/DOWNSTREAM.md). Every image is
// resized to --imsize square (bicubic); its descriptor is the CLS token ++
// the GeM (p = 4) of the patch tokens; with --whitening_path the mean of
// that folder's descriptors is subtracted and the PCA whitening learned on
// them (power 0.5) applied; descriptors are L2-normalised. The queries of
// each Copydays block (original, strong, jpegqual/N, crops/N) are ranked by
// cosine against the originals (+ --distractors_path), the first --topk (20)
// kept, and the block's mAP printed.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "eval/features.h"
#include "eval/retrieval.h"
#include "eval/retrieval_desc.h"
#include "eval/retrieval_input.h"
#include "image/decode.h"
#include "vit.h"

typedef struct {
    char **v;
    int n;
} Names;

static void names_free(Names *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL, s->n = 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

// The file names (not paths) in dir, sorted by bytes: those ending in .jpg
// (Copydays blocks, as the reference), or every .jpg/.jpeg/.png (the
// distractor and whitening folders). -1 when dir cannot be read.
static int list_names(const char *dir, int jpg_only, Names *out) {
    out->v = NULL, out->n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int cap = 0;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        int ok = jpg_only ? ends_with(s, ".jpg")
                          : ends_with(s, ".jpg") || ends_with(s, ".jpeg") || ends_with(s, ".png");
        if (!ok || s[0] == '.') continue;
        if (out->n == cap) out->v = reallocCheck(out->v, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 64));
        size_t len = strlen(s) + 1;
        out->v[out->n] = mallocCheck(len);
        memcpy(out->v[out->n++], s, len);
    }
    closedir(d);
    qsort(out->v, (size_t)out->n, sizeof(char *), cmp_str);
    return 0;
}

typedef struct {
    const EvalModel *em;
    int imsize, batch;
    struct ViTActs *acts;
    float *x;  // (batch, 3, imsize, imsize)
} Describer;

// Descriptors (n, 2·D) of the files dir/names[i].
static float *describe(Describer *ds, const char *dir, const Names *names, const char *what) {
    int D2 = 2 * ds->em->m.vit.dim, S = ds->imsize;
    float *out = mallocCheck(sizeof(float) * (size_t)(names->n ? names->n : 1) * D2);
    double t0 = dino_now(), last = t0;
    for (int i0 = 0; i0 < names->n; i0 += ds->batch) {
        int B = names->n - i0 < ds->batch ? names->n - i0 : ds->batch;
        for (int b = 0; b < B; b++) {
            char path[8192], err[1024];
            snprintf(path, sizeof path, "%s/%s", dir, names->v[i0 + b]);
            Image im;
            if (image_decode_file(path, 0, &im, err, sizeof err) != 0) dino_die("%s", err);
            retrieval_square_tensor(&im, S, ds->x + (size_t)b * 3 * S * S);
            image_free(&im);
        }
        retrieval_copy_descriptors(&ds->em->m.vit, &ds->em->w, ds->acts, ds->x, B,
                                   out + (size_t)i0 * D2);
        double now = dino_now();
        if (now - last > 10 || i0 + B == names->n) {
            dino_info("%s: %d/%d images, %.1f img/s", what, i0 + B, names->n,
                      (i0 + B) / (now - t0 > 1e-9 ? now - t0 : 1e-9));
            last = now;
        }
    }
    return out;
}

static const float *g_sim;

static int by_similarity(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_sim[i] != g_sim[j]) return g_sim[i] < g_sim[j] ? 1 : -1;
    return (i > j) - (i < j);
}

// The Copydays blocks, in the reference's order.
static const char *BLOCKS[] = {"original", "strong", "jpegqual/3", "jpegqual/5", "jpegqual/8",
                               "jpegqual/10", "jpegqual/15", "jpegqual/20", "jpegqual/30",
                               "jpegqual/50", "jpegqual/75", "crops/10", "crops/15", "crops/20",
                               "crops/30", "crops/40", "crops/50", "crops/60", "crops/70",
                               "crops/80"};
#define N_BLOCKS ((int)(sizeof BLOCKS / sizeof BLOCKS[0]))

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

// The sum of the block's query APs over the top k of the database (db:
// originals first). Positives: original i, or for 'strong' every original
// whose name starts with the query's first 4 characters; queries with none
// are counted in *no_positive. sim, order (n_db) and ranks (k) are scratch.
static double block_ap_sum(const float *qf, const Names *q, const Names *originals, const float *db,
                           int n_db, int D2, int k, int strong, float *sim, int *order, int *ranks,
                           int *no_positive) {
    double sum_ap = 0;
    for (int i = 0; i < q->n; i++) {
        const float *x = qf + (size_t)i * D2;
        for (int j = 0; j < n_db; j++) {
            double s = 0;
            for (int c = 0; c < D2; c++) s += (double)x[c] * db[(size_t)j * D2 + c];
            sim[j] = (float)s;
            order[j] = j;
        }
        g_sim = sim;
        qsort(order, (size_t)n_db, sizeof(int), by_similarity);
        int n_pos = 0, found = 0;
        for (int j = 0; j < originals->n; j++)
            n_pos += strong ? !strncmp(originals->v[j], q->v[i], 4) : j == i;
        for (int r = 0; r < k; r++) {
            int j = order[r];
            int pos = j < originals->n && (strong ? !strncmp(originals->v[j], q->v[i], 4) : j == i);
            if (pos) ranks[found++] = r;
        }
        if (n_pos == 0) (*no_positive)++;
        else sum_ap += retrieval_ap_from_ranks(ranks, found, n_pos);
    }
    return sum_ap;
}

int cmd_copy_detect(int argc, char **argv) {
    const char *whitening_path = NULL, *distractors_path = NULL;
    int imsize = 320, batch = 16, topk = 20;
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        EVAL_MODEL_FILE_ARG_SPECS(ma),
        {"data_path", ARG_STRING, &ma.data_path, "the Copydays folder (original/, strong/, jpegqual/N/, crops/N/)"},
        {"whitening_path", ARG_STRING, &whitening_path, "images to learn the PCA whitening on (none: no whitening)"},
        {"distractors_path", ARG_STRING, &distractors_path, "images added to the database as distractors"},
        {"imsize", ARG_INT, &imsize, "the square side every image is resized to", ARG_RANGE(1, ARG_MAX_IMAGE_SIDE)},
        {"batch_size_per_gpu", ARG_INT, &batch, "images per forward pass", ARG_RANGE(1, ARG_MAX_BATCH)},
        {"topk", ARG_INT, &topk, "ranks kept per query, as the reference's 20", ARG_RANGE(1, ARG_MAX_COUNT)},
        {NULL, 0, NULL, NULL},
    };
    args_parse("copy-detect", "--pretrained_weights FILE --data_path COPYDAYS [--whitening_path DIR] "
               "[--distractors_path DIR] [flags]", specs, argc, argv, NULL, 0);
    if (!ma.pretrained_weights) dino_die("dino copy-detect needs --pretrained_weights FILE");
    if (!ma.data_path) dino_die("dino copy-detect needs --data_path (the Copydays folder)");
    char dir[8192];
    snprintf(dir, sizeof dir, "%s/original", ma.data_path);
    Names originals;
    if (!is_dir(dir) || list_names(dir, 1, &originals) != 0)
        dino_die("%s: not a Copydays folder (no original/ in it)", ma.data_path);
    if (originals.n == 0) dino_die("%s: no .jpg images", dir);
    Names whit = {0}, distr = {0};
    if (whitening_path && (list_names(whitening_path, 0, &whit) != 0 || whit.n == 0))
        dino_die("--whitening_path %s: no folder of .jpg/.jpeg/.png images", whitening_path);
    if (distractors_path && (list_names(distractors_path, 0, &distr) != 0 || distr.n == 0))
        dino_die("--distractors_path %s: no folder of .jpg/.jpeg/.png images", distractors_path);

    EvalModel em;
    eval_model_load(&ma, &em);
    eval_model_require_vit(&ma, &em, "copy detection pools a ViT's CLS and patch tokens "
                           "(eval_copy_detection.py builds ViTs only); a ResNet has no tokens");
    const ViTConfig *cfg = &em.m.vit;
    if (imsize < cfg->patch) dino_die("--imsize %d is smaller than the model's patch size %d", imsize, cfg->patch);
    double pass = (double)vit_acts_bytes(cfg, batch, imsize, imsize, VIT_ACTS_INFER);
    if (pass > FEATURES_MAX_PASS_BYTES)
        dino_die("a forward pass of %d images at %d px needs %.1f GiB, above the %.0f GiB limit; lower "
                 "--batch_size_per_gpu or --imsize", batch, imsize, pass / (1 << 30), FEATURES_MAX_PASS_BYTES / (1 << 30));
    Describer ds = {&em, imsize, batch, vit_acts_create(cfg, batch, imsize, imsize, 0),
                    mallocCheck(sizeof(float) * (size_t)batch * 3 * imsize * imsize)};
    int D2 = 2 * cfg->dim;
    dino_info("%s: %d originals, %d distractors, %s; %s; %dx%d, CLS + GeM: %d floats", ma.data_path,
              originals.n, distr.n, whit.n ? "whitening learned on" : "no whitening", em.desc, imsize,
              imsize, D2);

    // Database: originals, then distractors.
    int n_db = originals.n + distr.n;
    float *db = mallocCheck(sizeof(float) * (size_t)n_db * D2);
    float *f = describe(&ds, dir, &originals, "original");
    memcpy(db, f, sizeof(float) * (size_t)originals.n * D2);
    free(f);
    if (distr.n) {
        f = describe(&ds, distractors_path, &distr, "distractors");
        memcpy(db + (size_t)originals.n * D2, f, sizeof(float) * (size_t)distr.n * D2);
        free(f);
    }
    float *mean = NULL, *dvt = NULL;
    if (whit.n) {
        f = describe(&ds, whitening_path, &whit, "whitening");
        mean = mallocCheck(sizeof(float) * D2);
        dvt = mallocCheck(sizeof(float) * (size_t)D2 * D2);
        char err[512];
        if (retrieval_whitening_learn(f, whit.n, D2, D2, 0.5, mean, dvt, err, sizeof err) != 0)
            dino_die("--whitening_path %s: %s", whitening_path, err);
        free(f);
        float *y = mallocCheck(sizeof(float) * (size_t)n_db * D2);
        if (retrieval_whitening_apply(db, n_db, D2, mean, dvt, D2, y) != 0) dino_die("out of memory");
        free(db);
        db = y;
    }
    retrieval_l2_normalize(db, n_db, D2);

    int k = topk < n_db ? topk : n_db;
    float *sim = mallocCheck(sizeof(float) * (size_t)n_db);
    int *order = mallocCheck(sizeof(int) * (size_t)n_db), *ranks = mallocCheck(sizeof(int) * (size_t)k);
    int scored_blocks = 0;
    for (int bl = 0; bl < N_BLOCKS; bl++) {
        char bdir[8300];
        snprintf(bdir, sizeof bdir, "%s/%s", ma.data_path, BLOCKS[bl]);
        Names q;
        if (!is_dir(bdir) || list_names(bdir, 1, &q) != 0 || q.n == 0) continue;
        int strong = !strcmp(BLOCKS[bl], "strong");
        // Every block but 'strong' holds the originals' images in their order.
        if (!strong && q.n != originals.n)
            dino_die("%s holds %d .jpg images but original/ holds %d: query i must be a copy of "
                     "original i", bdir, q.n, originals.n);
        float *qf = describe(&ds, bdir, &q, BLOCKS[bl]);
        if (mean) {
            float *y = mallocCheck(sizeof(float) * (size_t)q.n * D2);
            if (retrieval_whitening_apply(qf, q.n, D2, mean, dvt, D2, y) != 0) dino_die("out of memory");
            free(qf);
            qf = y;
        }
        retrieval_l2_normalize(qf, q.n, D2);
        int no_positive = 0;
        double sum_ap = block_ap_sum(qf, &q, &originals, db, n_db, D2, k, strong, sim, order, ranks,
                                     &no_positive);
        printf("eval on %s mAP=%.3f\n", BLOCKS[bl], sum_ap / q.n);
        if (no_positive)
            dino_warn("%s: %d queries have no original with the same first 4 characters; they count "
                      "as AP 0 (the reference stops on them)", BLOCKS[bl], no_positive);
        scored_blocks++;
        free(qf);
        names_free(&q);
    }
    if (!scored_blocks) dino_die("%s: no block of .jpg queries", ma.data_path);
    free(sim), free(order), free(ranks), free(db), free(mean), free(dvt), free(ds.x);
    vit_acts_free(ds.acts);
    names_free(&originals), names_free(&whit), names_free(&distr);
    eval_model_free(&em);
    return 0;
}
