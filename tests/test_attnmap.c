// Tests of src/eval/attnmap.c against tests/fixtures/eval_attention.bin
// (tools/make_eval_fixtures.py: a tiny reference ViT in PyTorch, fill()
// weights, a 43x61 image cropped to 40x56, patch 8):
// - CLS→patch maps taken from the last block's attention equal the script's;
// - threshold masks at 0.6 and 0.25 equal visualize_attention.py's exactly;
// - stable tie order and the threshold arithmetic on hand-made cases;
// - viridis matches matplotlib's bytes at 0, 0.5, 1; heat maps min-max
//   normalise and upsample by nearest neighbour; overlay blends at alpha 0.5
//   with a contour; the grid layout; PNG files read back identical.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "eval/attnmap.h"
#include "fixture.h"
#include "testlib.h"

static void test_fixture_masks(void) {
    Fixture fx = fixture_load("eval_attention.bin");
    const FixtureTensor *attn = fixture_get(&fx, "attn"), *maps = fixture_get(&fx, "maps");
    int nh = (int)attn->shape[0], T = (int)attn->shape[1], n = T - 1;
    float *got = mallocCheck((size_t)nh * n * sizeof(float));
    attnmap_cls(attn->data, nh, T, got);
    test_close("CLS->patch maps from the attention tensor", got, maps->data, (size_t)nh * n, 0, 0);
    float *mask = mallocCheck((size_t)nh * n * sizeof(float));
    attnmap_threshold(maps->data, nh, n, 0.6, mask);
    test_close("threshold 0.6 masks equal visualize_attention.py's", mask,
               fixture_get(&fx, "mask_0.6")->data, (size_t)nh * n, 0, 0);
    attnmap_threshold(maps->data, nh, n, 0.25, mask);
    test_close("threshold 0.25 masks", mask, fixture_get(&fx, "mask_0.25")->data, (size_t)nh * n, 0, 0);
    free(got);
    free(mask);
    fixture_free(&fx);
}

static void test_threshold_cases(void) {
    // Equal values: a stable ascending sort keeps the later positions.
    float eq[4] = {0.25f, 0.25f, 0.25f, 0.25f}, m[8];
    attnmap_threshold(eq, 1, 4, 0.6, m);
    CHECK(m[0] == 0 && m[1] == 1 && m[2] == 1 && m[3] == 1, "ties: mask %g %g %g %g (want 0 1 1 1)",
          m[0], m[1], m[2], m[3]);
    // Unnormalised input, two heads: 0.5 of the mass is the single largest value.
    float two[8] = {1, 6, 2, 3, /* head 2 */ 4, 1, 1, 2};
    attnmap_threshold(two, 2, 4, 0.5, m);
    // head 1: sorted 1,2,3,6 /12 -> cum .083 .25 .5 1 ; > .5 keeps only the 6.
    // head 2: sorted 1,1,2,4 /8 -> cum .125 .25 .5 1 ; keeps only the 4.
    CHECK(m[0] == 0 && m[1] == 1 && m[2] == 0 && m[3] == 0 && m[4] == 1 && m[5] == 0 && m[6] == 0 &&
              m[7] == 0,
          "cumulative sum equal to 1 - threshold is not kept (strict >)");
    attnmap_threshold(two, 2, 4, 1.0, m);
    int all = 1;
    for (int i = 0; i < 8; i++) all &= m[i] == 1;
    CHECK(all, "threshold 1 keeps every patch");
}

static void test_pictures(void) {
    uint8_t c[3];
    attnmap_viridis(0.0f, c);
    CHECK(c[0] == 68 && c[1] == 1 && c[2] == 84, "viridis(0) = (68,1,84): got (%d,%d,%d)", c[0], c[1], c[2]);
    attnmap_viridis(0.5f, c);
    CHECK(c[0] == 32 && c[1] == 144 && c[2] == 140, "viridis(0.5) = matplotlib bytes (32,144,140): got (%d,%d,%d)",
          c[0], c[1], c[2]);
    attnmap_viridis(1.0f, c);
    CHECK(c[0] == 253 && c[1] == 231 && c[2] == 36, "viridis(1) = (253,231,36): got (%d,%d,%d)", c[0], c[1], c[2]);
    attnmap_viridis(NAN, c);
    CHECK(c[0] == 68, "viridis(NaN) is the lowest colour, no crash");

    // Heat map of a 2x3 map upsampled by 4: min at (0,0), max at (1,2).
    float map[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.9f};
    uint8_t heat[8 * 12 * 3];
    attnmap_heat_rgb(map, 2, 3, 4, heat);
    const uint8_t *px00 = heat, *px_last = heat + ((7 * 12) + 11) * 3, *px_blk = heat + ((4 * 12) + 9) * 3;
    CHECK(px00[0] == 68 && px00[1] == 1 && px00[2] == 84, "heat map minimum is viridis(0)");
    CHECK(px_last[0] == 253 && px_last[1] == 231 && px_last[2] == 36, "heat map maximum is viridis(1)");
    CHECK(memcmp(px_last, px_blk, 3) == 0, "nearest upsampling: the whole 4x4 block has one colour");
    uint8_t mid[3];
    attnmap_viridis((0.5f - 0.1f) / 0.8f, mid);
    CHECK(memcmp(heat + ((5 * 12) + 5) * 3, mid, 3) == 0, "heat map value 0.5 maps to viridis(0.5)");

    // Overlay: 2x2 mask with one set cell, scale 3, image 6x7 (a column beyond the grid).
    uint8_t img[6 * 7 * 3], out[6 * 7 * 3];
    for (int i = 0; i < 6 * 7 * 3; i++) img[i] = (uint8_t)(i % 251);
    float mk[4] = {0, 1, 0, 0};
    uint8_t col[3] = {255, 0, 0};
    attnmap_overlay(img, 6, 7, mk, 2, 2, 3, col, out);
    // Cell (0,1) covers rows 0-2, cols 3-5; its centre (1,4) is inside, its border is contour.
    const uint8_t *in = img + (1 * 7 + 4) * 3, *o = out + (1 * 7 + 4) * 3;
    CHECK(o[0] == (uint8_t)lrintf(0.5f * in[0] + 127.5f) && o[1] == (uint8_t)lrintf(0.5f * in[1]),
          "overlay blends at alpha 0.5 inside the mask");
    o = out + (0 * 7 + 3) * 3;
    CHECK(o[0] == 255 && o[1] == 0 && o[2] == 0, "overlay draws the mask outline in full colour");
    CHECK(memcmp(out + (4 * 7 + 1) * 3, img + (4 * 7 + 1) * 3, 3) == 0 &&
              memcmp(out + (0 * 7 + 6) * 3, img + (0 * 7 + 6) * 3, 3) == 0,
          "overlay leaves pixels outside the mask and beyond the grid unchanged");

    // Grid of 5 tiles 2x3 in rows of 3, gap 1: 2 rows -> 2*2+3 = 7 high, 3*3+4 = 13 wide.
    uint8_t t[5][2 * 3 * 3];
    const uint8_t *tp[5];
    for (int k = 0; k < 5; k++) {
        memset(t[k], 10 * (k + 1), sizeof t[k]);
        tp[k] = t[k];
    }
    int gh, gw;
    uint8_t *grid = attnmap_grid(tp, 5, 2, 3, 3, 1, &gh, &gw);
    CHECK(gh == 7 && gw == 13, "grid size %dx%d (want 7x13)", gh, gw);
    CHECK(grid[(1 * 13 + 1) * 3] == 10 && grid[(4 * 13 + 5) * 3] == 50 && grid[(4 * 13 + 9) * 3] == 200,
          "tiles land in row-major cells, the empty cell stays background");

    // PNG round trip.
    char err[256];
    char path[128];
    snprintf(path, sizeof path, "/tmp/dino_test_attnmap_%d.png", (int)getpid());
    CHECK(png_write_rgb(path, gw, gh, grid, err, sizeof err) == 0, "PNG written");
    int rw, rh;
    uint8_t *back = png_read_rgb(path, &rw, &rh, err, sizeof err);
    CHECK(back && rw == gw && rh == gh && memcmp(back, grid, (size_t)gw * gh * 3) == 0,
          "PNG reads back identical");
    free(back);
    remove(path);
    free(grid);
    CHECK(png_write_rgb("/nonexistent_dir/x.png", 2, 2, img, err, sizeof err) == -1 && strstr(err, "cannot write"),
          "unwritable PNG path: %s", err);
}

int main(void) {
    test_fixture_masks();
    test_threshold_cases();
    test_pictures();
    return test_finish();
}
