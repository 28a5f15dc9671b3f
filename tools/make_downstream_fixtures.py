"""Reference fixtures for the downstream-task tests (tests/test_labelprop.c,
tests/test_retrieval.c): the reference's label propagation for DAVIS video
object segmentation, the revisited Oxford/Paris average precision, GeM
pooling and the PCA whitening of its copy detection, restated here with
PyTorch and NumPy on CPU from their descriptions (docs/DOWNSTREAM.md).

  PY=$(tools/venv.sh); $PY tools/make_downstream_fixtures.py   # writes tests/fixtures/downstream_*.bin

Features and masks come from fixture_io.fill, so the C test regenerates them;
only the configuration and the results are stored.
"""
import os
import sys

import numpy as np
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


def trapezoid_ap(ranks, n_pos):
    """Area under the precision-recall curve from the 0-based ranks of the positives found."""
    ap = 0.0
    for j, r in enumerate(ranks):
        before = 1.0 if r == 0 else j / r
        after = (j + 1) / (r + 1)
        ap += (before + after) / (2.0 * n_pos)
    return ap


def revisited(ranking, ok, junk, kappas):
    """One query: positives' positions, each lowered by the junk ranked before it."""
    where_ok = np.sort(np.nonzero(np.isin(ranking, ok))[0])
    where_junk = np.sort(np.nonzero(np.isin(ranking, junk))[0])
    pos = np.array([p - np.sum(where_junk < p) for p in where_ok])
    ap = trapezoid_ap(pos, len(ok))
    one_based = pos + 1
    prec = []
    for k in kappas:
        kq = min(one_based.max(), k)
        prec.append(np.sum(one_based <= kq) / kq)
    return ap, prec


def retrieval_case():
    rng = np.random.RandomState(11)
    n_db, nq, kappas = 40, 6, [1, 5, 10]
    out = {"kappas": kappas}
    for q in range(nq):
        ranking = rng.permutation(n_db)
        idx = rng.permutation(n_db)
        n_ok = 0 if q == 3 else rng.randint(1, 8)  # query 3 has no positive
        ok, junk = idx[:n_ok], idx[n_ok:n_ok + rng.randint(0, 6)]
        out[f"{q}.ranking"], out[f"{q}.ok"], out[f"{q}.junk"] = ranking, ok, junk
        if n_ok:
            ap, prec = revisited(ranking, ok, junk, kappas)
            out[f"{q}.ap"], out[f"{q}.prec"] = [ap], prec
    # GeM (p = 4) of patch tokens, as the copy-detection descriptor pools them
    tokens = torch.from_numpy(fill((2, 3, 5, 16), SEED + 900, -0.5, 1.0))  # (b, h, w, d)
    x = tokens.clamp(min=1e-6).permute(0, 3, 1, 2)
    out["gem"] = F.avg_pool2d(x.pow(4), (3, 5)).pow(1.0 / 4).reshape(2, -1)
    # whitening learned on n features of width d, applied to queries and a database
    n, d, keep = 60, 12, 8
    X = fill((n, d), SEED + 901, -1.0, 1.0).astype(np.float64)
    X[:, 5] = 0.5 * X[:, 0] + 0.1  # a near-degenerate direction
    X = X.astype(np.float32).astype(np.float64)  # as stored in the fixture
    mean = X.mean(axis=0)
    cov = X.T @ X / n  # not centred, as the reference computes it
    lam, V = np.linalg.eigh(cov)
    lam = np.maximum(lam, lam.max() * 1e-5)
    order = np.argsort(lam)[::-1][:keep]
    dvt = np.diag(lam[order] ** -0.5) @ V[:, order].T
    Q = fill((5, d), SEED + 902, -1.0, 1.0).astype(np.float64)
    D = fill((7, d), SEED + 903, -1.0, 1.0).astype(np.float64)

    def whiten(Z):
        Y = (Z - mean) @ dvt.T
        return Y / np.linalg.norm(Y, axis=1, keepdims=True)

    out["whiten.cfg"] = [n, d, keep]
    out["whiten.X"] = X  # stored: one column is derived from another
    out["whiten.mean"] = mean
    out["whiten.sim"] = whiten(Q) @ whiten(D).T  # cosine similarities: the eigenvectors' signs cancel
    write(os.path.join(OUT, "downstream_retrieval.bin"), out)
    print(f"retrieval: {nq} queries over {n_db}, GeM, whitening {d} -> {keep}")


if __name__ == "__main__":
    case("labelprop_window", 6, 7, 16, 3, 3, 2, 5, 4, SEED)
    case("labelprop_all", 5, 4, 8, 4, 2, 0, 3, 8, SEED + 500)
    case("labelprop_sparse", 12, 11, 16, 3, 3, 2, 5, 2, SEED + 1000)  # small window: the sparse path
    retrieval_case()
