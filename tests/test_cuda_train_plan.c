// Host-side logic of the CUDA engine, tested without a GPU: --device parsing
// (and the one-sentence refusal in a build without CUDA), the arena's
// alignment and non-overlap, the sizes of every activation region against
// src/vit.c's own accounting, the multi-crop plan's crop-major rows, the
// shared backward scratch, and the staging ring's legal and illegal orders.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batch.h"
#include "common.h"
#include "cuda/train_plan.h"
#include "ops.h"
#include "rng.h"
#include "testlib.h"

// A region: offset and size in floats, for the overlap check.
typedef struct {
    const char *name;
    size_t off, n;
} Region;

static int region_cmp(const void *a, const void *b) {
    const Region *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

// Sorted by offset, consecutive regions must not overlap and everything
// must lie within the arena.
static int regions_disjoint(Region *r, int n, size_t total, char *why, size_t whylen) {
    qsort(r, (size_t)n, sizeof *r, region_cmp);
    for (int i = 0; i < n; i++) {
        if (r[i].off % ARENA_ALIGN_FLOATS) {
            snprintf(why, whylen, "%s at %zu is not aligned", r[i].name, r[i].off);
            return 0;
        }
        if (r[i].off + r[i].n > total) {
            snprintf(why, whylen, "%s ends past the arena", r[i].name);
            return 0;
        }
        if (i + 1 < n && r[i].off + r[i].n > r[i + 1].off) {
            snprintf(why, whylen, "%s overlaps %s", r[i].name, r[i + 1].name);
            return 0;
        }
    }
    return 1;
}

static void test_device(void) {
    DeviceKind k = DEVICE_CUDA;
    char err[256] = "";
    CHECK(device_parse("cpu", &k, err, sizeof err) == 0 && k == DEVICE_CPU, "--device cpu parses");
    CHECK(device_parse(NULL, &k, err, sizeof err) == 0 && k == DEVICE_CPU, "no --device means cpu");
    CHECK(device_parse("gpu", &k, err, sizeof err) == -1 && strstr(err, "unknown device 'gpu'"),
          "--device gpu is refused: %s", err);
    int rc = device_parse("cuda", &k, err, sizeof err);
    if (device_cuda_compiled()) {
        CHECK(rc == 0 && k == DEVICE_CUDA, "--device cuda parses in a CUDA build");
    } else {
        CHECK(rc == -1 && !strcmp(err, "--device cuda: this build has no CUDA; rebuild with make CUDA=1"),
              "--device cuda in a CPU build: one clear sentence (%s)", err);
    }
    CHECK(!strcmp(device_name(DEVICE_CUDA), "cuda") && !strcmp(device_name(DEVICE_CPU), "cpu"),
          "device names");
}

// Runs `bin args`, its stdout and stderr into buf (at most n − 1 bytes);
// returns the exit status (-1 when it did not exit).
static int run_capture(const char *bin, const char *args, char *buf, size_t n) {
    const char *log = "/tmp/dino_test_cuda_train_plan_cli.txt";
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>&1", bin, args, log);
    int st = system(cmd);
    buf[0] = 0;
    FILE *f = fopen(log, "r");
    if (f) {
        size_t got = fread(buf, 1, n - 1, f);
        buf[got] = 0;
        fclose(f);
    }
    unlink(log);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The command line refuses --device cuda before touching any data.
static void test_cli_refusal(const char *argv0) {
    if (device_cuda_compiled()) return;
    // The binary sits next to this test's folder: BUILD/tests/test_x -> BUILD/dino.
    char bin[512];
    snprintf(bin, sizeof bin, "%s", argv0);
    char *slash = strrchr(bin, '/');
    if (slash) snprintf(slash, sizeof bin - (size_t)(slash - bin), "/../dino");
    else snprintf(bin, sizeof bin, "../dino");
    if (access(bin, X_OK) != 0) {
        CHECK(1, "build/dino not found from here; CLI refusal not exercised");
        return;
    }
    const char *sentence = "this build has no CUDA; rebuild with make CUDA=1";
    char buf[512];
    int code = run_capture(bin, "train --device cuda --data_path /nonexistent", buf, sizeof buf);
    CHECK(code == 1 && strstr(buf, sentence) && !strstr(buf, "nonexistent"),
          "dino train --device cuda exits 1 with the sentence before opening data (exit %d: %s)", code, buf);
    code = run_capture(bin, "bench train --device cuda", buf, sizeof buf);
    CHECK(code == 1 && strstr(buf, sentence),
          "dino bench train --device cuda: the same sentence (exit %d: %s)", code, buf);
    code = run_capture(bin, "features --device cuda --pretrained_weights /nonexistent", buf, sizeof buf);
    CHECK(code == 1 && strstr(buf, sentence) && !strstr(buf, "nonexistent"),
          "dino features --device cuda: the same sentence, before opening the model (exit %d: %s)", code, buf);
}

static void test_device_for_rank(void) {
    const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"};
    for (int i = 0; i < 4; i++) unsetenv(names[i]);
    CHECK(device_for_rank(5, 4) == 1 && device_for_rank(0, 1) == 0, "no launcher: global rank modulo devices");
    setenv("LOCAL_RANK", "3", 1);
    CHECK(device_for_rank(11, 8) == 3, "LOCAL_RANK picks the device");
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "2", 1);
    CHECK(device_for_rank(11, 8) == 2, "Open MPI's local rank comes first");
    CHECK(device_for_rank(11, 2) == 0, "local rank modulo the visible devices");
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "", 1);
    CHECK(device_for_rank(11, 8) == 3, "an empty variable is skipped");
    for (int i = 0; i < 4; i++) unsetenv(names[i]);
}

static void test_arena(void) {
    Arena a;
    arena_init(&a, NULL, ARENA_ALIGN_FLOATS);
    size_t o1 = arena_take(&a, 1), o2 = arena_take(&a, 0), o3 = arena_take(&a, 65), o4 = arena_take(&a, 64);
    CHECK(o1 == 0 && o2 == 64 && o3 == 128 && o4 == 256 && a.total == 320 && a.regions == 4,
          "arena offsets 0 64 128 256 total 320 (got %zu %zu %zu %zu %zu)", o1, o2, o3, o4, a.total);
}

static void test_plan(void) {
    ViTConfig v;
    vit_config_preset(&v, "vit_small", 16);
    Batch b = batch_shape(64, 224, 8, 96);
    MultiCropPlan p;
    char err[256];
    CHECK(multicrop_plan(&p, &b, &v, err, sizeof err) == 0, "ViT-S/16 2x224 + 8x96 plans");
    CHECK(p.total_rows == 640 && p.ncrops == 10 && p.row0[0] == 0 && p.rows[0] == 128 &&
              p.row0[1] == 128 && p.rows[1] == 512,
          "crop-major rows: group 0 rows 0..127, group 1 rows 128..639");
    CHECK(p.tokens[0] == 197 && p.tokens[1] == 37, "tokens 197 and 37");
    CHECK(p.pixels_total == (size_t)128 * 3 * 224 * 224 + (size_t)512 * 3 * 96 * 96, "pixels");
    CHECK(multicrop_plan_matches(&p, &b), "plan matches its batch");
    Batch b2 = batch_shape(64, 224, 6, 96);
    CHECK(!multicrop_plan_matches(&p, &b2), "a different local-crop count does not match");
    Batch bad = batch_shape(4, 30, 2, 16);
    CHECK(multicrop_plan(&p, &bad, &v, err, sizeof err) == -1 && strstr(err, "multiple of the patch"),
          "a 30-px crop at patch 16 is refused: %s", err);
    bad = batch_shape(4, 32, 2, 16);
    bad.groups[0].n_crops = 3;
    CHECK(multicrop_plan(&p, &bad, &v, err, sizeof err) == -1 && strstr(err, "2 global crops"),
          "group 0 must hold the 2 global crops: %s", err);
}

// Every region of a training arena is aligned, inside, and disjoint; the
// per-block sizes equal what src/vit.c allocates per ViTActs.
static void test_train_arena(int fused) {
    ViTConfig v;
    vit_config_preset(&v, "vit_tiny", 4);
    v.img_size = 16;
    v.depth = 3;
    HeadConfig h;
    head_config_default(&h, v.dim, 1000);
    h.hidden = 64;
    h.bottleneck = 32;
    Batch b = batch_shape(3, 16, 4, 8);
    MultiCropPlan p;
    char err[256];
    CHECK(multicrop_plan(&p, &b, &v, err, sizeof err) == 0, "tiny plan");
    TrainArena ta;
    size_t total = train_arena_layout(&ta, &p, &v, &h, fused);
    CHECK(total == ta.total && total > 0, "arena total");
    Region r[256];
    int n = 0;
#define R(name_, off_, n_) (r[n++] = (Region){(name_), (off_), (n_)})
    const VitCudaLayout *vl[1 + BATCH_MAX_GROUPS] = {&ta.teacher_vit, &ta.student_vit[0], &ta.student_vit[1]};
    for (int i = 0; i < 3; i++) {
        const VitCudaLayout *l = vl[i];
        size_t L = l->train ? (size_t)l->depth : 1, BT = (size_t)l->B * l->T;
        R("cols", l->cols, (size_t)l->B * l->Np * l->CPP);
        R("pos", l->pos, (size_t)l->T * l->D);
        R("tok", l->tok, (size_t)l->B * l->Np * l->D);
        R("res", l->res, (size_t)l->nslots * l->btd);
        CHECK(l->nslots == (l->train ? l->depth + 1 : (l->depth < 4 ? l->depth : 4) + 1),
              "residual slots: depth+1 in training, min(depth, 4)+1 in inference (%d)", l->nslots);
        R("ln", l->ln, l->btd);
        R("qkv", l->qkv, L * 3 * l->btd);
        R("att", l->att, l->train ? L * l->att_block : 1);  // inference: an empty (1-float) region
        R("atty", l->atty, L * l->btd);
        R("fc1", l->fc1, L * BT * l->H4);
        R("out", l->out, l->btd);
        R("statsf", l->statsf, 2 * BT);
        R("drop", l->drop, 2 * (size_t)l->depth * l->B);
        if (l->train) {
            R("mid", l->mid, L * l->btd);
            R("stats1", l->stats1, L * 2 * BT);
            R("stats2", l->stats2, L * 2 * BT);
            R("hbuf", l->hbuf, BT * l->H4);
        }
        CHECK(l->att_block == (fused ? BT * l->NH : BT * l->NH * l->T), "attention state per block (fused %d)", fused);
    }
    CHECK(ta.teacher_vit.B == 6 && !ta.teacher_vit.train && ta.student_vit[0].B == 6 &&
              ta.student_vit[1].B == 12 && ta.student_vit[1].T == 5,
          "teacher: 2B global crops, inference; student groups 2B and 4B crops");
    const VitCudaScratch *s = &ta.scratch;
    size_t btd = ta.student_vit[0].btd > ta.student_vit[1].btd ? ta.student_vit[0].btd : ta.student_vit[1].btd;
    CHECK(s->btd_max == btd, "scratch sized for the larger group (%zu)", btd);
    R("dres", s->dres, btd);
    R("dbr", s->dbr, btd);
    R("dln", s->dln, btd);
    R("datty", s->datty, btd);
    R("dqkv", s->dqkv, 3 * btd);
    R("dh", s->dh, s->bth4_max);
    R("dtok", s->dtok, s->cols_max);
    R("dpos", s->dpos, s->pos_max);
    R("dtokens", s->dtokens, btd);
    const HeadCudaLayout *hl[2] = {&ta.teacher_head, &ta.student_head};
    for (int i = 0; i < 2; i++) {
        const HeadCudaLayout *l = hl[i];
        for (int k = 0; k < h.nlayers; k++) {
            size_t out = k == h.nlayers - 1 ? h.bottleneck : h.hidden;
            R("h", l->h[k], (size_t)l->N * out);
            if (k < h.nlayers - 1) R("gel", l->gel[k], (size_t)l->N * out);
        }
        R("z", l->z, (size_t)l->N * h.bottleneck);
        R("znorm", l->znorm, l->N);
        R("W", l->W, (size_t)h.out_dim * h.bottleneck);
        R("vnorm", l->vnorm, h.out_dim);
        R("logits", l->logits, (size_t)l->N * h.out_dim);
        if (l->train) {
            R("dW", l->dW, (size_t)h.out_dim * h.bottleneck);
            R("d0", l->d0, (size_t)l->N * h.hidden);
            R("d1", l->d1, (size_t)l->N * h.hidden);
        }
    }
    CHECK(ta.teacher_head.N == 6 && ta.student_head.N == 18, "head rows: 2B teacher, ncrops·B student");
    R("tfeat", ta.tfeat, 6 * (size_t)v.dim);
    R("sfeat", ta.sfeat, 18 * (size_t)v.dim);
    R("dfeat", ta.dfeat, 18 * (size_t)v.dim);
    R("dlogits", ta.dlogits, 18 * (size_t)h.out_dim);
    R("center_sum", ta.center_sum, h.out_dim);
    R("images0", ta.images[0], p.pixels_total);
    R("images1", ta.images[1], p.pixels_total);
    CHECK(ta.drop[0] == 0 && ta.drop[1] == 2 * 3 * 6 && ta.drop_total == 2 * 3 * 18,
          "drop factors: group 0 at 0, group 1 after 2·depth·rows");
#undef R
    char why[256] = "";
    CHECK(regions_disjoint(r, n, total, why, sizeof why), "%d arena regions aligned, inside, disjoint %s", n, why);
}

// The device's position-embedding plan reproduces vit_interpolate_pos bit
// for bit when run through the same bicubic kernel (the CPU one here).
// The residual slots as vit_cuda_forward writes them (block li reads slot
// li, writes slot li + 1; in inference the mid-block residual shares the
// output's slot) and features_cuda reads them: every block reads its own
// input, and after the forward slot j still holds the output of block
// j − 1 for the last n blocks features may ask for (n <= VIT_CUDA_KEEP_LAST).
static void test_res_slots(void) {
    const int depths[] = {1, 2, 3, 4, 5, 12};
    int ok = 1, checked = 0;
    for (size_t di = 0; di < sizeof depths / sizeof *depths; di++) {
        ViTConfig v;
        vit_config_preset(&v, "vit_tiny", 4);
        v.depth = depths[di];
        for (int train = 0; train < 2; train++) {
            for (int B = 1; B <= 3; B += 2) {
                VitCudaLayout l;
                Arena a;
                arena_init(&a, NULL, ARENA_ALIGN_FLOATS);
                vit_cuda_layout(&l, &a, &v, 3, 16, 16, train, 0);
                l.B = B;  // features' view of a smaller last batch
                l.btd = (size_t)B * l.T * l.D;
                const int L = v.depth;
                int owner[VIT_MAX_DEPTH + 2];  // block whose output a slot holds (-1: the embedding)
                size_t off[VIT_MAX_DEPTH + 2];
                for (int k = 0; k <= L; k++) off[k] = vit_cuda_res_slot(&l, k);
                for (int k = 0; k <= L; k++) {
                    ok &= off[k] >= l.res && off[k] + l.btd <= l.res + (size_t)l.nslots * (size_t)3 * l.T * l.D;
                    owner[k] = -2;
                }
                owner[0] = -1;
                for (int li = 0; li < L; li++) {
                    // the slot read must still hold the previous block's output
                    int in = -1;
                    for (int k = 0; k <= L; k++)
                        if (off[k] == off[li]) in = owner[k] > in ? owner[k] : in;
                    ok &= in == li - 1 && off[li] != off[li + 1];
                    for (int k = 0; k <= L; k++)
                        if (off[k] == off[li + 1]) owner[k] = li;
                }
                const int keep = L < VIT_CUDA_KEEP_LAST ? L : VIT_CUDA_KEEP_LAST;
                for (int n = 1; n <= keep; n++)
                    for (int k = 0; k < n; k++) {
                        int j = L - n + k + 1;
                        ok &= owner[j] == j - 1;
                        checked++;
                    }
                if (train)
                    for (int k = 0; k <= L; k++)
                        for (int k2 = k + 1; k2 <= L; k2++) ok &= off[k] != off[k2];
            }
        }
    }
    CHECK(ok && checked > 0,
          "residual slots: each block reads its input; the last n <= %d block outputs survive (%d reads checked); "
          "training keeps every slot",
          VIT_CUDA_KEEP_LAST, checked);
}

static void test_pos_plan(void) {
    ViTConfig v;
    vit_config_preset(&v, "vit_small", 16);
    v.dim = 8;
    int g = vit_grid(&v), sizes[3] = {224, 96, 160};
    size_t npos = (size_t)(1 + g * g) * v.dim;
    float *pe = mallocCheck(npos * sizeof(float));
    fixture_fill(pe, npos, 7, -1.0f, 1.0f);
    for (int i = 0; i < 3; i++) {
        int S = sizes[i], T = vit_tokens(&v, S, S), oh, ow;
        float sh, sw;
        float *want = mallocCheck((size_t)T * v.dim * sizeof(float));
        float *got = callocCheck((size_t)T * v.dim, sizeof(float));
        vit_interpolate_pos(&v, pe, S, S, want);
        int interp = vit_pos_interp_plan(&v, S, S, &oh, &ow, &sh, &sw);
        if (!interp) memcpy(got, pe, npos * sizeof(float));
        else {
            memcpy(got, pe, (size_t)v.dim * sizeof(float));
            bicubic_forward(got + v.dim, pe + v.dim, g, g, oh, ow, v.dim, sh, sw);
        }
        CHECK(interp == (S != 224) && !memcmp(got, want, (size_t)T * v.dim * sizeof(float)),
              "pos plan at %d px: interpolate %d, grid %dx%d, bit-identical", S, interp, oh, ow);
        free(want);
        free(got);
    }
    free(pe);
}

// The staging copy puts every group's pixels at its offset, whole.
static void test_staging_copy(void) {
    ViTConfig v;
    vit_config_preset(&v, "vit_tiny", 4);
    Batch b = batch_shape(12, 64, 3, 32);  // group 0: 24 x 3 x 64 x 64 floats, two pieces
    MultiCropPlan p;
    char err[256];
    CHECK(multicrop_plan(&p, &b, &v, err, sizeof err) == 0, "plan for the copy");
    for (int g = 0; g < 2; g++) {
        b.groups[g].pixels = mallocCheck(p.pixels[g] * sizeof(float));
        fixture_fill(b.groups[g].pixels, p.pixels[g], 20 + g, -2.0f, 2.0f);
    }
    float *dst = mallocCheck(p.pixels_total * sizeof(float));
    staging_copy_batch(dst, &b, &p);
    CHECK(!memcmp(dst, b.groups[0].pixels, p.pixels[0] * sizeof(float)) &&
              !memcmp(dst + p.pixels[0], b.groups[1].pixels, p.pixels[1] * sizeof(float)),
          "staging copy: groups back to back (%zu + %zu floats)", p.pixels[0], p.pixels[1]);
    free(dst);
    free(b.groups[0].pixels);
    free(b.groups[1].pixels);
}

static void test_staging(void) {
    StagingRing r;
    staging_init(&r);
    StagingAcquire q = staging_acquire(&r);
    CHECK(q.slot == 0 && !q.wait_upload && !q.wait_consume, "first batch: slot 0, no waits");
    staging_uploaded(&r, 0);
    staging_consumed(&r, 0);
    q = staging_acquire(&r);
    CHECK(q.slot == 1 && !q.wait_upload && !q.wait_consume, "second batch: slot 1, no waits");
    staging_uploaded(&r, 1);
    // Batch 2 may be acquired while batch 1 is uploading (double buffering).
    q = staging_acquire(&r);
    CHECK(q.slot == 0 && q.wait_upload && q.wait_consume, "third batch reuses slot 0 after both waits");
    staging_uploaded(&r, 0);
    staging_consumed(&r, 1);
    staging_consumed(&r, 0);
    for (int i = 0; i < 7; i++) {
        q = staging_acquire(&r);
        staging_uploaded(&r, q.slot);
        staging_consumed(&r, q.slot);
    }
    CHECK(r.batches == 10 && q.slot == 1, "ten batches alternate slots");
    // An illegal order (a third batch while slot 0's images are unread) must
    // trip the invariant: run it in a child process.
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        StagingRing x;
        staging_init(&x);
        StagingAcquire a0 = staging_acquire(&x);
        staging_uploaded(&x, a0.slot);
        StagingAcquire a1 = staging_acquire(&x);
        staging_uploaded(&x, a1.slot);
        staging_acquire(&x);  // slot 0 still uploading: must abort
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "a third batch in flight trips the assertion");
}

int main(int argc, char **argv) {
    (void)argc;
    test_device();
    test_cli_refusal(argv[0]);
    test_device_for_rank();
    test_arena();
    test_plan();
    test_train_arena(0);
    test_train_arena(1);
    test_res_slots();
    test_pos_plan();
    test_staging_copy();
    test_staging();
    return test_finish();
}
