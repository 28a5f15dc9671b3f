"""Fixtures of `dino retrieve` and `dino copy-detect` (tests/test_retrieve.c),
from restatements of the reference's eval_image_retrieval.py and
eval_copy_detection.py with Pillow and PyTorch:

- retrieval_gnd_{list_p2,np_p2,np_p4}.pkl: one small synthetic ground truth
  in the shape of revisitop's gnd_roxford5k.pkl (a dict with 'gnd',
  'imlist', 'qimlist'), pickled three ways: Python lists at protocol 2, numpy
  arrays at protocol 2 (bytes through _codecs.encode) and at protocol 4; one
  query's 'hard' is an empty float64 array, as arrays built from empty lists
  are. retrieval_gnd.bin holds the same numbers for the test to compare.
- retrieval_inputs.bin: Pillow's thumbnail sizes for awkward aspect ratios;
  Pillow's LANCZOS resize (the thumbnail's filter); torch's bilinear
  interpolate at 1/sqrt(2) and 1/2; the retrieval descriptor (CLS, single
  and multi-scale) and the copy-detection descriptor (CLS ++ GeM p=4 at a
  square bicubic resize) of fixed images through the tiny ViT of
  tests/fixtures/eval_tiny_vit.pth.

Run with tools/venv.sh's python: `$(tools/venv.sh) tools/make_retrieval_fixtures.py`.
"""
import math
import os
import pickle
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def gnd_fixture():
    rng = np.random.default_rng(26)
    n, nq = 12, 3
    imlist = [f"db_{i:02d}" for i in range(n)]
    qimlist = [f"query_{i}" for i in range(nq)]
    gnd = []
    flat = {}
    for q in range(nq):
        perm = rng.permutation(n)
        easy = np.sort(perm[:3]).astype(np.int64)
        hard = np.sort(perm[3:5]).astype(np.int64) if q != 1 else np.zeros(0, np.float64)
        junk = np.sort(perm[5:6 + q]).astype(np.int64)
        bbx = np.round(rng.uniform(0, 30, 4), 1)
        bbx[2:] += 30
        gnd.append({"bbx": bbx, "easy": easy, "hard": hard, "junk": junk})
        flat[f"q{q}_easy"] = easy
        flat[f"q{q}_hard"] = hard
        flat[f"q{q}_junk"] = junk
        flat[f"q{q}_bbx"] = bbx
    flat["sizes"] = np.array([n, nq], np.float32)
    as_lists = {"gnd": [{k: v.tolist() for k, v in g.items()} for g in gnd],
                "imlist": imlist, "qimlist": qimlist}
    as_arrays = {"gnd": gnd, "imlist": imlist, "qimlist": qimlist}
    for name, obj, proto in (("list_p2", as_lists, 2), ("np_p2", as_arrays, 2), ("np_p4", as_arrays, 4)):
        with open(os.path.join(OUT, f"retrieval_gnd_{name}.pkl"), "wb") as f:
            pickle.dump(obj, f, protocol=proto)
    write(os.path.join(OUT, "retrieval_gnd.bin"), flat)
    print("retrieval_gnd: 3 pickles of", n, "images and", nq, "queries")


def image_u8(h, w, seed):
    return np.floor(fill((h, w, 3), seed, 0, 256)).clip(0, 255).astype(np.uint8)


def to_tensor(img):
    import torch
    x = torch.from_numpy(np.asarray(img, np.float32) / 255.0).permute(2, 0, 1).contiguous()
    for c in range(3):
        x[c] = (x[c] - MEAN[c]) / STD[c]
    return x


def inputs_fixture():
    import torch
    import torch.nn.functional as F
    from make_eval_fixtures import tiny_vit  # the weights of tests/fixtures/eval_tiny_vit.pth
    t = {}
    # Pillow's thumbnail sizes (the reference: img.thumbnail((s, s), ANTIALIAS)).
    cases = [(300, 100, 224), (100, 300, 224), (1024, 768, 224), (768, 1024, 224), (225, 224, 224),
             (224, 225, 224), (3, 1000, 224), (1000, 3, 224), (50, 40, 224), (641, 479, 224),
             (479, 641, 224), (333, 1000, 100), (1000, 333, 100), (1023, 767, 224), (500, 500, 224),
             (1000, 999, 7), (999, 1000, 7)]
    sizes = []
    for w, h, s in cases:
        im = Image.new("RGB", (w, h))
        im.thumbnail((s, s), Image.LANCZOS)
        sizes.append([w, h, s, im.size[0], im.size[1]])
    t["thumb_sizes"] = np.array(sizes, np.float32)
    # LANCZOS resizes of a 71x53 image (no reducing_gap: see docs/DOWNSTREAM.md).
    src = image_u8(53, 71, 2601)
    for name, size in (("lanczos_small", (30, 22)), ("lanczos_near", (64, 48))):
        t[name] = np.asarray(Image.fromarray(src).resize(size, Image.LANCZOS), np.float32)
    # Whole thumbnails (reducing_gap 2.0: Image.reduce by an integer factor first when the
    # image is twice the thumbnail or more, partial blocks at the edges), as the reference makes them.
    # Pillow 13 runs the vertical pass first for some sizes (97x203 -> 24x50 is one; we have not
    # found its rule), where a pixel can differ by one level from our horizontal-first resampling;
    # these cases are ones where it runs the horizontal pass first (docs/DOWNSTREAM.md).
    for name, (w, h, s, seed) in (("thumb_a", (300, 250, 40, 2604)), ("thumb_b", (203, 97, 50, 2605)),
                                  ("thumb_c", (130, 61, 60, 2606)), ("thumb_d", (203, 47, 30, 2607))):
        im = Image.fromarray(image_u8(h, w, seed))
        im.thumbnail((s, s), Image.LANCZOS)
        t[name] = np.asarray(im, np.float32)
        t[name + "_cfg"] = np.array([w, h, s, seed], np.float32)
    # torch's bilinear interpolate of a (3, 23, 31) tensor at the multiscale factors.
    x = torch.from_numpy(fill((1, 3, 23, 31), 2602, -2, 2))
    for name, s in (("interp_r2", 1 / 2 ** (1 / 2)), ("interp_half", 1 / 2)):
        t[name] = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)[0]
    # Descriptors through the tiny ViT (img 32, patch 8, D 48).
    run = tiny_vit(img_size=32, patch=8, dim=48, depth=2, heads=3, hidden=192)

    def model(inp):
        with torch.no_grad():
            outs, _ = run(inp)
        return outs[-1]

    im = Image.fromarray(image_u8(37, 45, 2603))
    th = im.copy()
    th.thumbnail((40, 40), Image.LANCZOS)
    xs = to_tensor(th).unsqueeze(0)
    t["thumb_px"] = np.asarray(th, np.float32)
    t["desc_single"] = F.normalize(model(xs)[:, 0], dim=1, p=2)[0]
    v = None
    for s in [1, 1 / 2 ** (1 / 2), 1 / 2]:
        inp = xs.clone() if s == 1 else F.interpolate(xs, scale_factor=s, mode="bilinear", align_corners=False)
        f = model(inp)[:, 0].clone()
        v = f if v is None else v + f
    v /= 3
    v /= v.norm()
    t["desc_multi"] = F.normalize(v, dim=1, p=2)[0]
    # Copy detection: Resize((32, 32), interpolation=3) on the PIL image, CLS ++ GeM(p=4).
    xc = to_tensor(im.resize((32, 32), Image.BICUBIC)).unsqueeze(0)
    feats = model(xc)
    b, h, w, d = 1, 32 // 8, 32 // 8, feats.shape[-1]
    pt = feats[:, 1:, :].reshape(b, h, w, d).clamp(min=1e-6).permute(0, 3, 1, 2)
    gem = F.avg_pool2d(pt.pow(4), (h, w)).pow(1.0 / 4).reshape(b, -1)
    t["desc_copy"] = torch.cat((feats[:, 0, :], gem), dim=1)[0]
    write(os.path.join(OUT, "retrieval_inputs.bin"), t)
    print("retrieval_inputs:", {k: tuple(np.shape(v)) for k, v in t.items()})


if __name__ == "__main__":
    gnd_fixture()
    inputs_fixture()
