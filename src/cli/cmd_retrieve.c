// `dino retrieve`: image retrieval with DINO's CLS feature, as the
// reference's eval_image_retrieval.py computes it (docs/DOWNSTREAM.md):
// - the everyday use: --query IMG --data_path FOLDER prints the --topk
//   images of the folder nearest to the query (cosine similarity);
// - the benchmark: --dataset roxford5k|rparis6k --data_path ROOT reads
//   ROOT/<dataset>/gnd_<dataset>.pkl and ROOT/<dataset>/jpg/*.jpg and prints
//   mAP and mP@1,5,10 for the revisited protocol's Medium and Hard settings
//   (and Easy).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli/eval_common.h"
#include "commands.h"
#include "common.h"
#include "data/dataset.h"
#include "eval/retrieval.h"
#include "eval/retrieval_desc.h"
#include "eval/retrieval_input.h"
#include "eval/revisited_gnd.h"
#include "image/decode.h"

typedef struct {
    const EvalModel *em;
    int imsize, multiscale, crop_queries;
} Describer;

// The descriptor (D, normalised) of an image file, optionally cropped to box.
static void describe_image(const Describer *ds, const Image *im0, const char *name,
                           const double *box, float *out) {
    Image cropped = {0};
    const Image *im = im0;
    if (box) {
        if (retrieval_crop(im0, box, &cropped) != 0)
            dino_die("%s: the query region (%g, %g, %g, %g) leaves nothing of the %dx%d image", name,
                     box[0], box[1], box[2], box[3], im0->w, im0->h);
        im = &cropped;
    }
    int w, h;
    float *x = retrieval_thumbnail_tensor(im, ds->imsize, &w, &h);
    char err[512];
    const EvalModel *em = ds->em;
    int rc = em->m.backbone == MODEL_BACKBONE_RESNET
                 ? retrieval_resnet_descriptor(&em->m.resnet, (ResNetWeights *)&em->rw, x, h, w,
                                               ds->multiscale, out, err, sizeof err)
                 : retrieval_cls_descriptor(&em->m.vit, &em->w, x, h, w, ds->multiscale, out, err,
                                            sizeof err);
    if (rc != 0)
        dino_die("%s: %s", name, err);
    free(x);
    image_free(&cropped);
}

static void describe_file(const Describer *ds, const char *path, const double *box, float *out) {
    Image im;
    char err[1024];
    if (image_decode_file(path, 0, &im, err, sizeof err) != 0) dino_die("%s", err);
    describe_image(ds, &im, path, box, out);
    image_free(&im);
}

static void progress(const char *what, int64_t done, int64_t n, double t0, double *last) {
    double now = dino_now();
    if (now - *last > 10 || done == n) {
        dino_info("%s: %lld/%lld images, %.1f img/s", what, (long long)done, (long long)n,
                  done / (now - t0 > 1e-9 ? now - t0 : 1e-9));
        *last = now;
    }
}

static const float *g_sim;  // qsort has no context argument

// Descending similarity; equal similarities in database order.
static int by_similarity(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_sim[i] != g_sim[j]) return g_sim[i] < g_sim[j] ? 1 : -1;
    return (i > j) - (i < j);
}

// order (n): database indices by descending cosine of db (n, D) to q (D).
static void rank_database(const float *db, int64_t n, int D, const float *q, float *sim, int *order) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < D; k++) s += (double)db[(size_t)i * D + k] * q[k];
        sim[i] = (float)s;
        order[i] = (int)i;
    }
    g_sim = sim;
    qsort(order, (size_t)n, sizeof(int), by_similarity);
}

// The everyday use: the nearest images of --data_path to --query.
static void nearest_images(const Describer *ds, const char *data_path, const char *query, int topk) {
    char err[1024];
    Dataset *set = dataset_open(data_path, SPLIT_TRAIN, err, sizeof err);
    if (!set) dino_die("%s", err);
    int64_t n = dataset_size(set);
    if (n > (int64_t)1 << 30) dino_die("%s: %lld images is more than dino retrieve ranks", data_path, (long long)n);
    int D = model_feature_dim(&ds->em->m);
    float *q = mallocCheck(sizeof(float) * D), *db = mallocCheck(sizeof(float) * (size_t)n * D);
    describe_file(ds, query, NULL, q);
    dino_info("%s: %s; %s, thumbnails of %d px", dataset_describe(set), ds->em->desc,
              ds->multiscale ? "multiscale" : "single-scale", ds->imsize);
    double t0 = dino_now(), last = t0;
    for (int64_t i = 0; i < n; i++) {
        Image im;
        char name[4096];
        dataset_image_name(set, i, name, sizeof name);
        if (dataset_load(set, i, 0, &im, err, sizeof err) != 0) dino_die("%s", err);
        describe_image(ds, &im, name, NULL, db + (size_t)i * D);
        image_free(&im);
        progress("database", i + 1, n, t0, &last);
    }
    float *sim = mallocCheck(sizeof(float) * (size_t)n);
    int *order = mallocCheck(sizeof(int) * (size_t)n);
    rank_database(db, n, D, q, sim, order);
    int k = topk < n ? topk : (int)n;
    printf("query %s: the %d nearest of %lld images (cosine similarity of the CLS feature, %s, %d px)\n",
           query, k, (long long)n, ds->multiscale ? "multiscale" : "single-scale", ds->imsize);
    for (int r = 0; r < k; r++) {
        char name[4096];
        dataset_image_name(set, order[r], name, sizeof name);
        printf("%4d  %.4f  %s\n", r + 1, sim[order[r]], name);
    }
    free(q), free(db), free(sim), free(order);
    dataset_close(set);
}

// numpy's rounding to 2 decimals as str() shows it: "34.6", "100.0".
static void fmt2(double v, char *buf, size_t n) {
    snprintf(buf, n, "%.2f", v);
    size_t l = strlen(buf);
    while (l > 0 && buf[l - 1] == '0' && l >= 2 && buf[l - 2] != '.') buf[--l] = 0;
}

typedef struct {
    double map, mpr[3];
    int scored;  // queries with positives
} Setting;

static int *concat(const int *a, int na, const int *b, int nb, int *n) {
    int *o = mallocCheck(sizeof(int) * (size_t)(na + nb + 1));
    if (na) memcpy(o, a, sizeof(int) * na);  // a or b may be NULL when empty
    if (nb) memcpy(o + na, b, sizeof(int) * nb);
    *n = na + nb;
    return o;
}

// mAP and mean precision at 1, 5, 10 over the queries that have positives,
// as revisitop's compute_map (setting 0 Easy, 1 Medium, 2 Hard).
static Setting score_setting(const RevisitedGnd *g, const int *ranks, int setting) {
    static const int kappas[3] = {1, 5, 10};
    Setting s = {0};
    for (int i = 0; i < g->nq; i++) {
        const RevisitedQuery *q = &g->q[i];
        int n_ok, n_junk, *ok, *junk;
        if (setting == 0) {
            ok = concat(q->easy, q->n_easy, NULL, 0, &n_ok);
            junk = concat(q->junk, q->n_junk, q->hard, q->n_hard, &n_junk);
        } else if (setting == 1) {
            ok = concat(q->easy, q->n_easy, q->hard, q->n_hard, &n_ok);
            junk = concat(q->junk, q->n_junk, NULL, 0, &n_junk);
        } else {
            ok = concat(q->hard, q->n_hard, NULL, 0, &n_ok);
            junk = concat(q->junk, q->n_junk, q->easy, q->n_easy, &n_junk);
        }
        double prec[3];
        double ap = retrieval_revisited_ap(ranks + (size_t)i * g->n, g->n, ok, n_ok, junk, n_junk,
                                           kappas, 3, prec);
        if (ap >= 0) {
            s.map += ap;
            for (int k = 0; k < 3; k++) s.mpr[k] += prec[k];
            s.scored++;
        }
        free(ok);
        free(junk);
    }
    if (s.scored) {
        s.map /= s.scored;
        for (int k = 0; k < 3; k++) s.mpr[k] /= s.scored;
    }
    return s;
}

static int is_file_path(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void benchmark(const Describer *ds, const char *root, const char *dataset) {
    char dir[4096], gnd_path[4200], err[1024];
    // ROOT/<dataset>/ as the reference lays it out, or the dataset folder itself.
    snprintf(dir, sizeof dir, "%s/%s", root, dataset);
    snprintf(gnd_path, sizeof gnd_path, "%s/gnd_%s.pkl", dir, dataset);
    if (!is_file_path(gnd_path)) {
        snprintf(dir, sizeof dir, "%s", root);
        snprintf(gnd_path, sizeof gnd_path, "%s/gnd_%s.pkl", dir, dataset);
    }
    if (!is_file_path(gnd_path))
        dino_die("no ground truth for %s: neither %s/%s/gnd_%s.pkl nor %s/gnd_%s.pkl exists", dataset,
                 root, dataset, dataset, root, dataset);
    RevisitedGnd g;
    if (revisited_gnd_load(gnd_path, &g, err, sizeof err) != 0) dino_die("%s", err);
    if (g.n < 1 || g.nq < 1) dino_die("%s: no database images or no queries", gnd_path);
    int D = model_feature_dim(&ds->em->m);
    float *db = mallocCheck(sizeof(float) * (size_t)g.n * D);
    float *qf = mallocCheck(sizeof(float) * (size_t)g.nq * D);
    dino_info("%s: %d database images, %d queries; %s; %s, thumbnails of %d px%s", gnd_path, g.n,
              g.nq, ds->em->desc, ds->multiscale ? "multiscale" : "single-scale", ds->imsize,
              ds->crop_queries ? ", queries cropped to their region" : "");
    char path[8400];
    double t0 = dino_now(), last = t0;
    for (int i = 0; i < g.n; i++) {
        snprintf(path, sizeof path, "%s/jpg/%s.jpg", dir, g.imlist[i]);
        describe_file(ds, path, NULL, db + (size_t)i * D);
        progress("database", i + 1, g.n, t0, &last);
    }
    t0 = dino_now(), last = t0;
    for (int i = 0; i < g.nq; i++) {
        snprintf(path, sizeof path, "%s/jpg/%s.jpg", dir, g.qimlist[i]);
        if (ds->crop_queries && !g.q[i].has_bbx) dino_die("%s: query %d has no 'bbx' to crop to", gnd_path, i);
        describe_file(ds, path, ds->crop_queries ? g.q[i].bbx : NULL, qf + (size_t)i * D);
        progress("queries", i + 1, g.nq, t0, &last);
    }
    int *ranks = mallocCheck(sizeof(int) * (size_t)g.n * g.nq);
    float *sim = mallocCheck(sizeof(float) * (size_t)g.n);
    for (int i = 0; i < g.nq; i++)
        rank_database(db, g.n, D, qf + (size_t)i * D, sim, ranks + (size_t)i * g.n);
    Setting s[3];
    for (int k = 0; k < 3; k++) s[k] = score_setting(&g, ranks, k);
    char a[32], b[32];
    fmt2(s[1].map * 100, a, sizeof a);
    fmt2(s[2].map * 100, b, sizeof b);
    printf(">> %s: mAP M: %s, H: %s\n", dataset, a, b);
    printf(">> %s: mP@k[ 1  5 10] M: [%.2f %.2f %.2f], H: [%.2f %.2f %.2f]\n", dataset,
           s[1].mpr[0] * 100, s[1].mpr[1] * 100, s[1].mpr[2] * 100, s[2].mpr[0] * 100,
           s[2].mpr[1] * 100, s[2].mpr[2] * 100);
    fmt2(s[0].map * 100, a, sizeof a);
    printf(">> %s: mAP E: %s, mP@k[ 1  5 10] E: [%.2f %.2f %.2f]\n", dataset, a, s[0].mpr[0] * 100,
           s[0].mpr[1] * 100, s[0].mpr[2] * 100);
    printf("(queries with positives: E %d, M %d, H %d of %d)\n", s[0].scored, s[1].scored,
           s[2].scored, g.nq);
    free(db), free(qf), free(ranks), free(sim);
    revisited_gnd_free(&g);
}

int cmd_retrieve(int argc, char **argv) {
    const char *query = NULL, *dataset = NULL;
    int topk = 10, imsize = 224, multiscale = 0, crop_queries = 0;
    EvalModelArgs ma;
    eval_model_args_default(&ma);
    ArgSpec specs[] = {
        EVAL_MODEL_FILE_ARG_SPECS(ma),
        {"data_path", ARG_STRING, &ma.data_path, "folder of images to search, or the benchmark's root with --dataset"},
        {"query", ARG_STRING, &query, "an image: print the nearest images of --data_path"},
        {"topk", ARG_INT, &topk, "how many nearest images --query prints", ARG_RANGE(1, ARG_MAX_COUNT)},
        {"dataset", ARG_STRING, &dataset, "roxford5k or rparis6k: the revisited benchmark under --data_path"},
        {"imsize", ARG_INT, &imsize, "the longer side of the thumbnails (larger images are shrunk)", ARG_RANGE(1, ARG_MAX_IMAGE_SIDE)},
        {"multiscale", ARG_BOOL, &multiscale, "average the CLS features at scales 1, 1/sqrt(2), 1/2"},
        {"crop_queries", ARG_BOOL, &crop_queries, "crop benchmark queries to their region (revisitop's protocol; the reference does not)"},
        {NULL, 0, NULL, NULL},
    };
    args_parse("retrieve",
               "--pretrained_weights FILE --data_path FOLDER --query IMG [--topk 10] | "
               "--pretrained_weights FILE --dataset roxford5k|rparis6k --data_path ROOT [flags]",
               specs, argc, argv, NULL, 0);
    if (!ma.pretrained_weights) dino_die("dino retrieve needs --pretrained_weights FILE");
    if (!ma.data_path) dino_die("dino retrieve needs --data_path (a folder, or the benchmark's root)");
    if (!query == !dataset) dino_die("dino retrieve needs either --query IMG or --dataset roxford5k|rparis6k");
    if (dataset && strcmp(dataset, "roxford5k") && strcmp(dataset, "rparis6k"))
        dino_die("--dataset must be roxford5k or rparis6k, got '%s'", dataset);
    if (crop_queries && !dataset) dino_die("--crop_queries applies to the benchmark (--dataset)");
    EvalModel em;
    eval_model_load(&ma, &em);
    Describer ds = {&em, imsize, multiscale, crop_queries};
    if (query) nearest_images(&ds, ma.data_path, query, topk);
    else benchmark(&ds, ma.data_path, dataset);
    eval_model_free(&em);
    return 0;
}
