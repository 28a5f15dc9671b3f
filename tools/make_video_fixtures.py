"""Reference fixtures for video object segmentation (tests/test_davis.c,
tests/test_segment_video.c):

- the frame resize of the reference's eval_video_segmentation.py
  (cv2.resize, INTER_LINEAR, on 8-bit pixels) and its mask resize (Pillow
  NEAREST), on random images, up and down;
- the whole of eval_video_segmentation.py, restated (cv2.imread and resize,
  the ViT's last-layer tokens, the first frame plus a queue of previous
  frames, label_propagation, norm_mask, argmax, Pillow's resize back), on the
  synthetic video of tests/test_segment_video.c with the tiny ViT of
  tests/fixtures/eval_tiny_vit.pth (tools/make_eval_fixtures.py);
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


# --- eval_video_segmentation.py, restated, on the test's synthetic video -----

VW, VH, NF = 160, 80, 6  # tests/test_segment_video.c's video


def synthetic_frame(f):
    """The same bytes as make_frame in tests/test_segment_video.c."""
    y, x = np.mgrid[0:VH, 0:VW]
    t = (x * 13 + y * 7) % 23
    u = ((x // 3) * 5 + (y // 2) * 11) % 17
    o1 = (x >= 8 + 8 * f) & (x < 40 + 8 * f) & (y >= 10) & (y < 42)
    o2 = (x >= 124 - 6 * f) & (x < 148 - 6 * f) & (y >= 50) & (y < 74) & ~o1
    lab = np.where(o1, 1, np.where(o2, 2, 0)).astype(np.uint8)
    r = np.where(o1, 220 + t, np.where(o2, 20 + u, 100 + 2 * t))
    g = np.where(o1, 190 + u, np.where(o2, 40 + t, 120 + 2 * u))
    b = np.where(o1, 20 + t, np.where(o2, 200 + 2 * u, 90 + t))
    return np.stack([r, g, b], axis=-1).astype(np.uint8), lab


def vos_reference(frames_bgr, first_mask, run, patch, size, n_last, r, topk):
    """frames_bgr: what cv2.imread returns per frame. Returns per target frame
    (soft mask at patch resolution, labels at the frame's size, near-tie map)."""
    import queue
    import torch
    import torch.nn.functional as F

    def read_frame(img):
        h0, w0, _ = img.shape
        if h0 > w0:
            tw = size
            th = int(((tw * h0) / w0) // 64 * 64)
        else:
            th = size
            tw = int(((th * w0) / h0) // 64 * 64)
        img = cv2.resize(img, (tw, th)).astype(np.float32) / 255.0
        img = np.transpose(img[:, :, ::-1].copy(), (2, 0, 1))
        x = torch.from_numpy(img).float()
        for c, (m, s) in enumerate(zip([0.485, 0.456, 0.406], [0.228, 0.224, 0.225])):
            x[c].sub_(m)
            x[c].div_(s)
        return x, tw, th

    def features(x):
        with torch.no_grad():
            outs, _ = run(x.unsqueeze(0))
        h, w = int(x.shape[1] / patch), int(x.shape[2] / patch)
        return outs[-1][0, 1:, :].reshape(h * w, -1), h, w

    x0, tw, th = read_frame(frames_bgr[0])
    small = np.array(Image.fromarray(first_mask).resize((tw // patch, th // patch), 0))
    C = int(small.max()) + 1
    first_seg = torch.zeros(1, C, *small.shape)
    for c in range(C):
        first_seg[0, c] = torch.from_numpy((small == c).astype(np.float32))
    f1, h, w = features(x0)
    f1 = f1.T
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ii, jj = ii.reshape(-1), jj.reshape(-1)
    near = (((ii[:, None] - ii[None, :]).abs() <= r) & ((jj[:, None] - jj[None, :]).abs() <= r)).float()
    que = queue.Queue(n_last)
    results = []
    for cnt in range(1, len(frames_bgr)):
        xt, _, _ = read_frame(frames_bgr[cnt])
        ft, _, _ = features(xt)
        feats = [f1] + [p[0] for p in list(que.queue)]
        segs = [first_seg] + [p[1] for p in list(que.queue)]
        n = len(feats)
        tq = F.normalize(ft, dim=1, p=2).unsqueeze(0).repeat(n, 1, 1)
        src = F.normalize(torch.stack(feats), dim=1, p=2)
        aff = torch.exp(torch.bmm(tq, src) / 0.1)
        if r > 0:
            aff = aff * near.unsqueeze(0)
        aff = aff.transpose(2, 1).reshape(-1, h * w)
        kth = torch.topk(aff, dim=0, k=topk).values.min(dim=0).values
        aff[aff < kth] = 0
        aff = aff / aff.sum(dim=0, keepdim=True)
        sg = torch.cat(segs)
        sg = sg.reshape(n, C, -1).transpose(2, 1).reshape(-1, C).T
        seg = torch.mm(sg, aff).reshape(1, C, h, w)
        if que.qsize() == n_last:
            que.get()
        que.put([ft.T, seg.clone()])
        up = F.interpolate(seg, scale_factor=patch, mode="bilinear", align_corners=False,
                           recompute_scale_factor=False)[0]
        for c in range(C):
            m = up[c]
            if m.max() > 0:
                m = m - m.min()
                up[c] = m / m.max()
        lab = torch.max(up, dim=0).indices.numpy().astype(np.uint8)
        top2 = torch.topk(up, k=2, dim=0).values
        tie = ((top2[0] - top2[1]) <= 1e-4).numpy().astype(np.uint8)
        h0, w0 = frames_bgr[0].shape[:2]
        lab = np.array(Image.fromarray(lab).resize((w0, h0), 0))
        tie = np.array(Image.fromarray(tie).resize((w0, h0), 0))
        results.append((seg[0].numpy(), lab, tie))
    return results


def e2e_fixture():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_eval_fixtures import tiny_vit  # the weights of tests/fixtures/eval_tiny_vit.pth (teacher)
    run = tiny_vit(img_size=32, patch=8, dim=48, depth=2, heads=3, hidden=192)
    frames, first = [], None
    for f in range(NF):
        rgb, lab = synthetic_frame(f)
        frames.append(rgb[:, :, ::-1].copy())  # cv2.imread's BGR of the PNG frame
        if f == 0:
            first = lab
    size, n_last, r, topk = 64, 3, 4, 5
    res = vos_reference(frames, first, run, 8, size, n_last, r, topk)
    t = {"cfg": np.array([size, n_last, r, topk, NF], np.float32)}
    for i, (seg, _, _) in enumerate(res):
        t[f"seg{i + 1}"] = seg
    write(os.path.join(OUT, "video_e2e.bin"), t)
    # Labels and near ties of frames 1..NF-1, stacked vertically, as small PNGs.
    pal = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)
    for name, k in (("labels", 1), ("ties", 2)):
        im = Image.fromarray(np.concatenate([x[k] for x in res], axis=0))
        im.putpalette(pal)
        im.save(os.path.join(OUT, f"video_e2e_{name}.png"))
    ties = sum(int(x[2].sum()) for x in res)
    print("video_e2e: labels per frame", [np.bincount(x[1].ravel(), minlength=3).tolist() for x in res],
          "near ties", ties)


if __name__ == "__main__":
    resize_fixture()
    davis_fixture()
    e2e_fixture()
