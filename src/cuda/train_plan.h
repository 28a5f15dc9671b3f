// Host-side planning for the CUDA training engine, in plain C so that it is
// built and tested on every machine, GPU or not: the GPU of each rank
// (the --device selector itself is src/device.h), the layout of the one device activation
// arena (every buffer of the teacher pass, the student's multi-crop forward
// and backward, the head and the loss, as offsets into one allocation made
// once), the per-group plan of a multi-crop batch (which rows of the
// crop-major feature matrix each resolution group fills), and the state
// machine of the double-buffered pinned staging area through which batches
// go to the GPU. The .cu files only execute what these functions decide.
#ifndef DINO_CUDA_TRAIN_PLAN_H
#define DINO_CUDA_TRAIN_PLAN_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "batch.h"
#include "device.h"
#include "head.h"
#include "vit.h"


// ---------------------------------------------------------------- device of a rank

// The GPU a rank uses: its node-local rank from the launcher's environment
// (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID, LOCAL_RANK,
// first found), else its global rank, modulo the visible devices.
int device_for_rank(int rank, int ndevices);

// ---------------------------------------------------------------- arena

// Device buffers are regions of one allocation laid out by arena.h (offsets
// in floats, counted with base NULL); every region starts on a 256-byte
// boundary (64 floats), the alignment cuBLASLt and vectorised kernels want.
#define ARENA_ALIGN_FLOATS 64

// ---------------------------------------------------------------- ViT activations

// One resolution group's backbone activations, mirroring src/vit.c's
// ViTActs: training keeps every block's inputs (LayerNorm outputs and the
// GELU are recomputed in backward), inference one set of buffers and, like
// the CPU, the residual stream of the last VIT_CUDA_KEEP_LAST blocks (for
// get_intermediate_layers). Attention
// keeps, per block, either the probabilities (B,NH,T,T) or, with the fused
// kernel, the row log-sum-exp (B,NH,T) that its backward needs.
typedef struct {
    int B, H, W, Np, T, D, NH, H4, CPP, depth, train, fused_attention;
    int nslots;        // residual slots: depth + 1 (train), min(depth, keep) + 1 (inference)
    size_t btd;        // B·T·D
    size_t att_block;  // floats of attention state per block
    // forward (offsets into the arena)
    size_t cols, pos, tok, res, mid, ln, stats1, stats2, qkv, att, atty, fc1, hbuf, out, statsf;
    size_t drop;       // 2·depth·B drop-path factors
} VitCudaLayout;

#define VIT_CUDA_KEEP_LAST 4

// Backward scratch of one group; the groups' backward passes run one after
// the other, so one scratch sized for the largest group serves all of them.
typedef struct {
    size_t btd_max, bth4_max, cols_max, pos_max;
    size_t dres, dbr, dln, datty, dqkv, dh, dtok, dpos, dtokens;
} VitCudaScratch;

void vit_cuda_layout(VitCudaLayout *l, Arena *a, const ViTConfig *cfg, int B, int H, int W,
                     int train, int fused_attention);
// Offset (floats) of residual slot k, the input of block k (k = depth: the
// last block's output), at l->btd floats per slot: training keeps every
// slot, inference cycles through nslots, so the outputs of the last
// nslots − 1 blocks survive the forward (what features_cuda reads).
size_t vit_cuda_res_slot(const VitCudaLayout *l, int k);
// Sizes (scratch->*_max) are grown with vit_cuda_scratch_need for every
// group first, then vit_cuda_scratch_place takes the regions once.
void vit_cuda_scratch_need(VitCudaScratch *s, const VitCudaLayout *l);
void vit_cuda_scratch_place(VitCudaScratch *s, Arena *a);

// DINO's interpolate_pos_encoding as a plan (the same decisions as
// src/vit.c): 0 when the stored grid is used as it is, else 1 with the
// output grid oh x ow and the bicubic source steps sh, sw.
int vit_pos_interp_plan(const ViTConfig *cfg, int H, int W, int *oh, int *ow, float *sh,
                        float *sw);

// ---------------------------------------------------------------- head activations

typedef struct {
    int N, nlayers, train;
    size_t h[HEAD_MAX_LAYERS], gel[HEAD_MAX_LAYERS];
    size_t z, znorm, W, vnorm, logits;
    size_t dW, d0, d1;  // train only
} HeadCudaLayout;

void head_cuda_layout(HeadCudaLayout *l, Arena *a, const HeadConfig *cfg, int N, int train);

// ---------------------------------------------------------------- multi-crop plan

// How a batch shaped like `b` runs: group g covers rows row0[g] ..
// row0[g] + rows[g] - 1 of the crop-major feature matrix (all crops of group
// 0 first, crop-major inside each group), with Bg = n_crops·B images of
// size x size and T tokens.
typedef struct {
    int B, n_groups, total_rows, ncrops;
    int size[BATCH_MAX_GROUPS], n_crops[BATCH_MAX_GROUPS], rows[BATCH_MAX_GROUPS];
    int row0[BATCH_MAX_GROUPS], tokens[BATCH_MAX_GROUPS];
    size_t pixels[BATCH_MAX_GROUPS];  // floats of the group's images
    size_t pixels_total;
} MultiCropPlan;

// 0, or -1 with err filled when the batch cannot be trained on (no global
// pair in group 0, a crop size that is not a multiple of the patch, ...).
int multicrop_plan(MultiCropPlan *p, const Batch *b, const ViTConfig *cfg, char *err,
                   size_t errlen);
// 1 when batch b has exactly the plan's shape (the arena can be reused).
int multicrop_plan_matches(const MultiCropPlan *p, const Batch *b);

// The whole training step's arena: the teacher over group 0 (inference),
// the student over every group (training), head activations for both, the
// logits' gradient, the centre's batch sum and the two staging slots'
// images. (The loss keeps its own workspace, DinoLossCuda.)
typedef struct {
    MultiCropPlan plan;
    VitCudaLayout teacher_vit, student_vit[BATCH_MAX_GROUPS];
    VitCudaScratch scratch;
    HeadCudaLayout teacher_head, student_head;
    size_t tfeat, sfeat, dfeat;  // (rows, D) CLS features
    size_t dlogits;              // (ncrops·B, K)
    size_t center_sum;           // (K)
    size_t drop[BATCH_MAX_GROUPS];  // offsets of each group's drop factors in one host buffer
    size_t drop_total;              // floats of that buffer (2·depth·rows summed over groups)
    size_t images[2];            // the two staging slots' device images (pixels_total each)
    size_t total;                // floats
} TrainArena;

// Lays out everything; returns the arena's size in floats.
size_t train_arena_layout(TrainArena *ta, const MultiCropPlan *p, const ViTConfig *vit,
                          const HeadConfig *head, int fused_attention);

// ---------------------------------------------------------------- staging ring

// Copies batch b's pixels, group after group, into dst (pixels_total floats,
// pinned memory in the engine), in parallel chunks: the host half of an
// upload.
void staging_copy_batch(float *dst, const Batch *b, const MultiCropPlan *p);

// Two pinned host buffers and two device image buffers. A batch goes
// host -> pinned (memcpy on this thread) -> device (cudaMemcpyAsync on the
// copy stream) and is read by the compute stream's forward pass. A slot can
// be refilled once (1) the copy that last read its pinned memory finished
// (host waits on the slot's upload event) and (2) the forward pass that last
// read its device buffer finished (the copy stream waits on the slot's
// consume event). The state machine says which waits each step needs and
// checks that the calls come in a legal order.
typedef enum { SLOT_FREE = 0, SLOT_UPLOADING = 1, SLOT_CONSUMING = 2 } SlotState;

typedef struct {
    SlotState state[2];
    int64_t batches;  // batches acquired so far
    int used[2];      // the slot has been uploaded at least once (its events exist)
} StagingRing;

typedef struct {
    int slot;
    int wait_upload;   // host must wait for the slot's previous upload event
    int wait_consume;  // the copy stream must wait for the slot's previous consume event
} StagingAcquire;

void staging_init(StagingRing *r);
// The slot for the next batch and the waits to perform before writing it.
StagingAcquire staging_acquire(StagingRing *r);
// The upload of the slot was enqueued (and its upload event recorded).
void staging_uploaded(StagingRing *r, int slot);
// The compute stream's last reader of the slot was enqueued (consume event recorded).
void staging_consumed(StagingRing *r, int slot);

#ifdef __cplusplus
}
#endif

#endif
