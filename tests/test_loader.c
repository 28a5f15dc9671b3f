// Loader: batch shapes and layout, keyed shuffling (a permutation, new per
// epoch), DistributedSampler sharding with padding, drop-last, identical
// bytes for 0/1/2 worker threads and across runs, exact resume at (epoch,
// step), and bad files substituted by the next readable image, counted,
// with an all-bad dataset a clear error returned by the loader.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/loader.h"
#include "image/decode.h"
#include "rng.h"
#include "testlib.h"

static char tmp[256];

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

static uint64_t hash_batch(const Batch *b) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (int g = 0; g < b->n_groups; g++) {
        size_t S = (size_t)b->groups[g].size;
        h = hash_bytes(h, b->groups[g].pixels, sizeof(float) * b->groups[g].n_crops * b->B * 3 * S * S);
    }
    h = hash_bytes(h, b->indices, sizeof(int64_t) * b->B);
    h = hash_bytes(h, b->labels, sizeof(int32_t) * b->B);
    return h;
}

// n photo-like JPEGs w×h in class folders of tmp/name.
static void make_jpegs(const char *name, int n, int w, int h) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    mkdir(p, 0755);
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s/c%d", tmp, name, i % 3);
        mkdir(p, 0755);
        float v[3];
        fixture_fill(v, 3, 100 + i, 0.0f, 1.0f);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                    px[((size_t)y * w + x) * 3 + c] = (uint8_t)(128 + 100 * v[c] * ((x * (c + 1) + y * (3 - c) + i * 7) % 50) / 50.0f - 50 * v[(c + 1) % 3]);
        snprintf(p, sizeof p, "%s/%s/c%d/img%03d.jpg", tmp, name, i % 3, i);
        char err[256];
        image_write_jpeg(p, px, w, h, 85, err, sizeof err);
    }
    free(px);
}

static uint64_t run_epoch(const Dataset *ds, LoaderConfig cfg, int epoch, int64_t step, uint64_t *per_step, int max_steps) {
    Loader *l = loader_create(ds, &cfg, NULL, 0);
    loader_start(l, epoch, step);
    uint64_t h = 0;
    const Batch *b;
    int k = 0;
    while ((b = loader_next(l)) && k < max_steps) {
        uint64_t hb = hash_batch(b);
        if (per_step) per_step[b->step] = hb;
        h = h * 31 + hb;
        k++;
    }
    loader_free(l);
    return h;
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/dino_test_loader_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    make_jpegs("photos", 13, 120, 90);
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/photos", tmp);
    Dataset *ds = dataset_open(path, SPLIT_TRAIN, err, sizeof err);
    CHECK(ds && dataset_size(ds) == 13, "13 JPEGs in 3 classes: %s", ds ? dataset_describe(ds) : err);
    if (!ds) return test_finish();

    LoaderConfig cfg;
    loader_config_default(&cfg);
    cfg.batch_size = 4;
    cfg.aug.global_size = 32;
    cfg.aug.local_size = 16;
    cfg.aug.n_local = 3;
    cfg.seed = 7;
    Loader *l = loader_create(ds, &cfg, NULL, 0);
    CHECK(loader_steps_per_epoch(l) == 3, "drop_last: 13 images, batch 4 -> 3 steps");
    loader_start(l, 0, 0);
    const Batch *b = loader_next(l);
    CHECK(b && b->B == 4 && b->n_groups == 2 && b->groups[0].size == 32 && b->groups[0].n_crops == 2 &&
              b->groups[1].size == 16 && b->groups[1].n_crops == 3 && b->epoch == 0 && b->step == 0,
          "batch layout: 2x32 global + 3x16 local crops of 4 images");
    // Crop-major layout: crop c of image k at (c·B + k); check against a direct computation.
    if (b) {
        Image im;
        dataset_load(ds, b->indices[1], 0, &im, err, sizeof err);
        CropParams p;
        float *want = malloc(sizeof(float) * 3 * 32 * 32);
        uint8_t scratch[32 * 32 * 3];
        augment_params_for(&cfg.aug, cfg.seed, 0, b->indices[1], 1, im.w, im.h, &p);
        augment_apply(&im, &p, 32, want, scratch);
        CHECK(!memcmp(want, b->groups[0].pixels + (size_t)(1 * 4 + 1) * 3 * 32 * 32, sizeof(float) * 3 * 32 * 32),
              "global crop 1 of image 1 sits at slot 1*B+1 and equals augment_apply with its keyed params");
        CHECK(b->labels[1] == dataset_label(ds, b->indices[1]), "labels follow indices");
        free(want);
        image_free(&im);
    }
    loader_free(l);

    // Orders: permutations, differing by epoch and seed.
    l = loader_create(ds, &cfg, NULL, 0);
    int seen[13] = {0}, same = 1;
    for (int k = 0; k < 13; k++) {
        seen[loader_index(l, 0, k)]++;
        same &= loader_index(l, 0, k) == loader_index(l, 1, k);
    }
    int perm_ok = 1;
    for (int k = 0; k < 13; k++) perm_ok &= seen[k] == 1;
    CHECK(perm_ok && !same, "epoch order is a permutation and changes with the epoch");
    loader_free(l);
    // Sharding: world 3 -> 5 per rank (15 with 2 padded), rank r takes r::3 of the padded order.
    LoaderConfig c3 = cfg;
    c3.world_size = 3;
    c3.shuffle = 1;
    LoaderConfig c1 = cfg;
    Loader *all = loader_create(ds, &c1, NULL, 0);
    int shard_ok = 1, count[13] = {0};
    for (int r = 0; r < 3; r++) {
        c3.rank = r;
        Loader *lr = loader_create(ds, &c3, NULL, 0);
        shard_ok &= loader_samples_per_epoch(lr) == 5;
        for (int k = 0; k < 5; k++) {
            int64_t g = r + 3 * k;
            int64_t want = loader_index(all, 2, g % 13);
            shard_ok &= loader_index(lr, 2, k) == want;
            count[loader_index(lr, 2, k)]++;
        }
        loader_free(lr);
    }
    int cover = 1, extra = 0;
    for (int k = 0; k < 13; k++) { cover &= count[k] >= 1; extra += count[k] - 1; }
    CHECK(shard_ok && cover && extra == 2, "DistributedSampler sharding: padded to 15, rank r takes r::3, all images covered");
    loader_free(all);

    // Same bytes for 0, 1, 2 threads and two runs; drop_last off gives a short last batch.
    uint64_t h[4];
    int threads[4] = {0, 1, 2, 2};
    for (int t = 0; t < 4; t++) {
        LoaderConfig c = cfg;
        c.threads = threads[t];
        c.prefetch = t == 3 ? 1 : 3;
        h[t] = run_epoch(ds, c, 1, 0, NULL, 100);
    }
    CHECK(h[0] == h[1] && h[1] == h[2] && h[2] == h[3], "identical batch bytes with 0, 1, 2 threads, prefetch 1 and 3");
    LoaderConfig cl = cfg;
    cl.drop_last = 0;
    cl.threads = 2;
    l = loader_create(ds, &cl, NULL, 0);
    loader_start(l, 0, 0);
    int last_b = 0, steps = 0;
    while ((b = loader_next(l))) { last_b = b->B; steps++; }
    CHECK(steps == 4 && last_b == 1, "drop_last off: 4 steps, last batch has 1 image");
    loader_free(l);
    // Resume: starting at step 2 of epoch 3 gives the bytes of step 2 of a full run.
    uint64_t full[8] = {0}, part[8] = {0};
    run_epoch(ds, cfg, 3, 0, full, 100);
    run_epoch(ds, cfg, 3, 2, part, 100);
    CHECK(full[2] == part[2] && part[0] == 0 && full[2] != full[1], "resume at (epoch 3, step 2) reproduces that batch");
    // Eval mode: one centre crop, dataset order.
    LoaderConfig ce = cfg;
    ce.mode = LOADER_EVAL;
    ce.eval_crop = 32;
    ce.shuffle = 0;
    ce.drop_last = 0;
    l = loader_create(ds, &ce, NULL, 0);
    loader_start(l, 0, 0);
    b = loader_next(l);
    CHECK(b && b->n_groups == 1 && b->groups[0].size == 32 && b->indices[0] == 0 && b->indices[3] == 3,
          "eval mode: one 32-pixel crop per image, in dataset order");
    loader_free(l);
    dataset_close(ds);

    // Bad files: zero-byte, text, truncated; substituted by the next readable image.
    snprintf(path, sizeof path, "%s/bad", tmp);
    mkdir(path, 0755);
    make_jpegs("bad", 6, 40, 30);  // c0: img000, img003; c1: 001, 004; c2: 002, 005
    char f[600];
    snprintf(f, sizeof f, "%s/bad/c0/img000.jpg", tmp);
    FILE *fp = fopen(f, "wb"); fclose(fp);  // zero bytes
    snprintf(f, sizeof f, "%s/bad/c1/img001.jpg", tmp);
    fp = fopen(f, "wb"); fputs("this is not an image\n", fp); fclose(fp);
    snprintf(f, sizeof f, "%s/bad/c1/img004.jpg", tmp);
    if (truncate(f, 300) != 0) printf("truncate failed\n");
    ds = dataset_open(path, SPLIT_TRAIN, err, sizeof err);
    LoaderConfig cb = cfg;
    cb.shuffle = 0;
    cb.batch_size = 6;
    cb.threads = 2;
    l = loader_create(ds, &cb, NULL, 0);
    loader_start(l, 0, 0);
    b = loader_next(l);
    // Order: c0/000 (bad) c0/003 c1/001 (bad) c1/004 (bad) c2/002 c2/005.
    CHECK(b && b->indices[0] == 1 && b->indices[1] == 1 && b->indices[2] == 4 && b->indices[3] == 4 &&
              b->indices[4] == 4 && b->indices[5] == 5,
          "bad files replaced by the next readable image (indices %lld %lld %lld %lld %lld %lld)",
          b ? (long long)b->indices[0] : -1, b ? (long long)b->indices[1] : -1, b ? (long long)b->indices[2] : -1,
          b ? (long long)b->indices[3] : -1, b ? (long long)b->indices[4] : -1, b ? (long long)b->indices[5] : -1);
    CHECK(loader_bad_count(l) == 3, "3 unreadable files counted (%lld)", (long long)loader_bad_count(l));
    loader_free(l);
    dataset_close(ds);
    // All bad: loader_next ends and loader_error says why, once (the CLI prints it).
    snprintf(path, sizeof path, "%s/allbad", tmp);
    mkdir(path, 0755);
    snprintf(f, sizeof f, "%s/allbad/a.jpg", tmp);
    fp = fopen(f, "wb"); fputs("nope", fp); fclose(fp);
    ds = dataset_open(path, SPLIT_TRAIN, err, sizeof err);
    LoaderConfig ca = cfg;
    ca.batch_size = 1;
    Loader *la = loader_create(ds, &ca, NULL, 0);
    loader_start(la, 0, 0);
    const Batch *none = loader_next(la);
    const char *why = loader_error(la);
    CHECK(!none && why && strstr(why, "no readable image"),
          "a dataset with no readable image: no batch, and the error '%s'", why ? why : "(none)");
    loader_free(la);
    dataset_close(ds);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("could not remove %s\n", tmp);
    return test_finish();
}
