"""Reference fixtures for video object segmentation (tests/test_davis.c,
tests/test_segment_video.c):

- the frame resize of the reference's eval_video_segmentation.py
  (cv2.resize, INTER_LINEAR, on 8-bit pixels) and its mask resize (Pillow
  NEAREST), on random images, up and down;
- DAVIS-2017 J and F on synthetic masks, from a numpy transcription of the
  davis2017-evaluation formulas (db_eval_iou, f_measure with _seg2bmap and a
  disk dilation through cv2.dilate, db_statistics), restated here from their
  description in docs/DOWNSTREAM.md.

  /work/main/.venv/bin/python tools/make_video_fixtures.py   # needs opencv-python-headless
"""
import math
import os
import sys

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def resize_fixture():
    rng = np.random.default_rng(2601)
    t = {}
    cases = [(30, 18, 24, 14), (21, 13, 40, 24), (24, 12, 12, 6), (19, 27, 17, 11), (12, 8, 37, 17)]
    for i, (w, h, W, H) in enumerate(cases):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        t[f"cv{i}_in"] = img
        t[f"cv{i}_out"] = cv2.resize(img, (W, H))  # INTER_LINEAR is the default
        lab = rng.integers(0, 6, (h, w), dtype=np.uint8)
        t[f"nn{i}_in"] = lab
        t[f"nn{i}_out"] = np.array(Image.fromarray(lab).resize((W, H), 0))
    t["cases"] = np.array(cases, dtype=np.float32)
    # Pillow NEAREST at DAVIS sizes, as index maps (an int32 row holding its x):
    # 854x480 frames to the /16 and /8 grids of 832x480, and the labels back up.
    spans = [(854, 52), (854, 104), (480, 30), (480, 60), (832, 854), (416, 854), (1920, 120)]
    for i, (a, b) in enumerate(spans):
        row = Image.fromarray(np.arange(a, dtype=np.int32)[None, :])
        t[f"nnmap{i}"] = np.array(row.resize((b, 1), 0))[0]
    t["spans"] = np.array(spans, dtype=np.float32)
    write(os.path.join(OUT, "video_resize.bin"), t)
    print("video_resize.bin:", len(cases), "cases")


# --- davis2017-evaluation, transcribed ---------------------------------------

def disk(r):
    L = np.arange(-r, r + 1)
    X, Y = np.meshgrid(L, L)
    return (X ** 2 + Y ** 2 <= r ** 2).astype(np.uint8)


def seg2bmap(seg):
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def iou(gt, res):
    gt, res = gt.astype(bool), res.astype(bool)
    inter = np.sum(gt & res)
    union = np.sum(gt | res)
    return 1.0 if np.isclose(union, 0) else inter / union


def f_measure(res, gt, bound_th=0.008):
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(res.shape))
    fg_b = seg2bmap(res)
    gt_b = seg2bmap(gt)
    k = disk(int(bound_pix))
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), k)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), k)
    gt_match = gt_b * fg_dil
    fg_match = fg_b * gt_dil
    n_fg, n_gt = np.sum(fg_b), np.sum(gt_b)
    if n_fg == 0 and n_gt > 0:
        p, r = 1, 0
    elif n_fg > 0 and n_gt == 0:
        p, r = 0, 1
    elif n_fg == 0 and n_gt == 0:
        p, r = 1, 1
    else:
        p, r = np.sum(fg_match) / float(n_fg), np.sum(gt_match) / float(n_gt)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def statistics(v):
    M = np.nanmean(v)
    O = np.nanmean(v > 0.5)
    ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [v[ids[i]:ids[i + 1] + 1] for i in range(4)]
    return M, O, np.nanmean(bins[0]) - np.nanmean(bins[3])


def blob(h, w, cy, cx, ry, rx, rng):
    yy, xx = np.mgrid[0:h, 0:w]
    m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    m ^= rng.random((h, w)) < 0.02  # ragged edges and specks
    return m


def davis_fixture():
    rng = np.random.default_rng(2602)
    h, w, nf = 41, 63, 6  # bound_pix = ceil(0.008·75.1) = 1; the second case uses 4 px
    t = {}
    gts, ress = [], []
    for f in range(nf):
        gt = np.zeros((h, w), np.uint8)
        res = np.zeros((h, w), np.uint8)
        gt[blob(h, w, 14 + f, 14 + 3 * f, 8, 11, rng)] = 1
        res[blob(h, w, 15 + f, 16 + 3 * f + (f % 3), 8, 10, rng)] = 1
        gt[blob(h, w, 28, 48 - 2 * f, 6, 7, rng)] = 2
        if f != 3:  # one frame where object 2 is lost
            res[blob(h, w, 29, 48 - 3 * f, 5, 7, rng)] = 2
        gt[rng.random((h, w)) < 0.005] = 255  # void pixels: background here
        gts.append(gt)
        ress.append(res)
    gts, ress = np.stack(gts), np.stack(ress)
    nobj = 2
    J = np.zeros((nobj, nf))
    F = np.zeros((nobj, nf))
    F4 = np.zeros((nobj, nf))
    for k in range(1, nobj + 1):
        for f in range(nf):
            g = (np.where(gts[f] == 255, 0, gts[f]) == k)
            r = ress[f] == k
            J[k - 1, f] = iou(g, r)
            F[k - 1, f] = f_measure(r, g)
            F4[k - 1, f] = f_measure(r, g, bound_th=4)
    stats = np.array([[*statistics(J[k]), *statistics(F[k])] for k in range(nobj)])
    # statistics alone on other lengths (where the bin edges fall)
    lens = [1, 2, 3, 5, 7, 8, 13, 50]
    rng2 = np.random.default_rng(2603)
    t.update({"gt": gts, "res": ress, "J": J, "F": F, "F4": F4, "stats": stats,
              "lens": np.array(lens, dtype=np.float32)})
    for n in lens:
        t[f"vals_len{n}"] = rng2.random(n).astype(np.float32).astype(np.float64)  # as stored
        t[f"stats_len{n}"] = np.array(statistics(t[f"vals_len{n}"]))
    write(os.path.join(OUT, "video_davis.bin"), t)
    print("video_davis.bin: J", J.mean(axis=1), "F", F.mean(axis=1))


if __name__ == "__main__":
    resize_fixture()
    davis_fixture()
