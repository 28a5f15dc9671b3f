"""Reference fixtures for the downstream-task tests (tests/test_labelprop.c):
the reference's label propagation for DAVIS video object segmentation,
restated here with PyTorch on CPU from its description (docs/DOWNSTREAM.md).

  PY=$(tools/venv.sh); $PY tools/make_downstream_fixtures.py   # writes tests/fixtures/downstream_*.bin

Features and masks come from fixture_io.fill, so the C test regenerates them;
only the configuration and the results are stored.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
SEED = 7000


def window_mask(h, w, r):
    """1 where source patch (si, sj) lies within r patches of query (qi, qj) in both directions."""
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ii, jj = ii.reshape(-1), jj.reshape(-1)
    near = ((ii[:, None] - ii[None, :]).abs() <= r) & ((jj[:, None] - jj[None, :]).abs() <= r)
    return near.float()  # (queries, sources)


def propagate(target, feats, segs, h, w, r, topk, temp=0.1):
    """target (hw, d); feats: list of (hw, d); segs: list of (C, hw). Returns (C, hw)."""
    n = len(feats)
    t = F.normalize(target, dim=1, p=2)
    s = F.normalize(torch.stack([f.T for f in feats]), dim=1, p=2)  # (n, d, hw)
    aff = torch.exp(torch.bmm(t.unsqueeze(0).repeat(n, 1, 1), s) / temp)  # (n, queries, sources)
    if r > 0:
        aff = aff * window_mask(h, w, r).unsqueeze(0)
    aff = aff.transpose(2, 1).reshape(-1, h * w)  # (n·sources, queries)
    kth = torch.topk(aff, dim=0, k=topk).values.min(dim=0).values
    aff[aff < kth] = 0
    aff = aff / aff.sum(dim=0, keepdim=True)
    src = torch.cat([m.T for m in segs]).T  # (C, n·hw), frame-major sources
    return src @ aff


def labels(seg, C, h, w, patch):
    up = F.interpolate(seg.reshape(1, C, h, w), scale_factor=patch, mode="bilinear",
                       align_corners=False, recompute_scale_factor=False)[0]
    for c in range(C):
        m = up[c]
        if m.max() > 0:
            m = m - m.min()
            up[c] = m / m.max()
    return up, torch.max(up, dim=0).indices


def case(name, h, w, d, C, n, r, topk, patch, seed):
    target = torch.from_numpy(fill((h * w, d), seed, -1.0, 1.0))
    feats = [torch.from_numpy(fill((h * w, d), seed + 1 + i, -1.0, 1.0)) for i in range(n)]
    segs = [torch.from_numpy(fill((C, h * w), seed + 100 + i, 0.0, 1.0)) for i in range(n)]
    seg = propagate(target, feats, segs, h, w, r, topk)
    up, lab = labels(seg.clone(), C, h, w, patch)
    # the margin between the two largest channels, so the test can tell a tie
    top2 = torch.topk(up, k=2, dim=0).values
    write(os.path.join(OUT, f"downstream_{name}.bin"), {
        "cfg": [h, w, d, C, n, r, topk, patch, seed],
        "seg": seg, "up": up, "labels": lab.float(), "margin": top2[0] - top2[1],
    })
    print(f"{name}: grid {h}x{w}, {n} context frames, window {r}, top-{topk}, labels {lab.unique().tolist()}")


if __name__ == "__main__":
    case("labelprop_window", 6, 7, 16, 3, 3, 2, 5, 4, SEED)
    case("labelprop_all", 5, 4, 8, 4, 2, 0, 3, 8, SEED + 500)
