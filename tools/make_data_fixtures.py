"""Writes the data/augmentation fixtures (tests/fixtures/data_*.bin) from
Pillow and torchvision with explicit parameters.

Inputs: a noise image rebuilt in C from fixture_io.fill (seeds below) and
tests/fixtures/data_photo.jpg (a real 720x477 photo, the Rust embedded book's
verify.jpeg from the rustup docs on the build machine). Large uint8 outputs are
stored as a 64-bit weighted hash (4 x 16-bit pieces) plus per-row sums, small
ones in full. Run: PY=$(tools/venv.sh); $PY tools/make_data_fixtures.py
"""
import os
import random
import sys

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
import torchvision.transforms as T
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

sys.path.insert(0, os.path.dirname(__file__))
from fixture_io import fill, write  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
PHOTO = os.path.join(ROOT, "data_photo.jpg")
MASK = (1 << 64) - 1


def noise(h, w, seed):
    """uint8 (h, w, 3) equal to C's fixture_fill(seed, 0, 256) truncated."""
    return fill((h, w, 3), seed, 0.0, 256.0).astype(np.uint8)


def hash64(a):
    """sum_i v_i * ((i * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) mod 2^64) mod 2^64, as 4 x 16 bits."""
    v = np.ascontiguousarray(a, dtype=np.uint8).reshape(-1).astype(np.uint64)
    with np.errstate(over="ignore"):
        i = np.arange(v.size, dtype=np.uint64)
        m = i * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
        h = int(np.sum(v * m, dtype=np.uint64))
    return np.array([(h >> (16 * k)) & 0xFFFF for k in range(4)], dtype=np.float32)


def rowsums(a):
    a = np.asarray(a, dtype=np.int64)
    return a.reshape(a.shape[0], -1).sum(axis=1).astype(np.float32)


def arr(im):
    return np.asarray(im, dtype=np.uint8)


def ops_fixture():
    t = {}
    src = noise(24, 32, 11)
    im = Image.fromarray(src)
    # Resize: (box, out size, filter) on a 48x64 noise image and the photo.
    big = noise(48, 64, 12)
    imb = Image.fromarray(big)
    cases = [
        ((0, 0, 64, 48), (100, 77), Image.BICUBIC),   # up, both axes
        ((0, 0, 64, 48), (20, 15), Image.BICUBIC),    # down, non-integer scale
        ((7, 5, 44, 34), (24, 24), Image.BICUBIC),    # crop + resize
        ((3, 9, 64, 40), (61, 13), Image.BICUBIC),    # up in x, down in y
        ((0, 0, 64, 48), (64, 30), Image.BICUBIC),    # vertical pass only
        ((1, 2, 50, 47), (49, 45), Image.BICUBIC),    # identity size (copy)
        ((0, 0, 64, 48), (33, 70), Image.BILINEAR),
        ((11, 4, 23, 40), (96, 96), Image.BILINEAR),
        ((0, 0, 1, 1), (5, 3), Image.BICUBIC),        # 1x1 source
    ]
    for k, (box, size, flt) in enumerate(cases):
        out = imb.crop(box).resize(size, flt)
        t[f"resize{k}.box"] = np.array(box, dtype=np.float32)
        t[f"resize{k}.size"] = np.array(size + (flt,), dtype=np.float32)
        t[f"resize{k}.out"] = arr(out)
    t["resize.count"] = np.array([len(cases)], dtype=np.float32)
    # Colour ops at several factors (inside and outside [0, 1]).
    factors = [0.0, 0.37, 0.6, 1.0, 1.2345, 1.4, 2.5]
    for k, f in enumerate(factors):
        t[f"brightness{k}"] = arr(F.adjust_brightness(im, f))
        t[f"contrast{k}"] = arr(F.adjust_contrast(im, f))
        t[f"saturation{k}"] = arr(F.adjust_saturation(im, f))
    t["factors"] = np.array(factors, dtype=np.float32)
    hues = [0.0, -0.05, 0.1, -0.1, 0.0371, 0.5, -0.5]
    for k, h in enumerate(hues):
        t[f"hue{k}"] = arr(F.adjust_hue(im, float(np.float32(h))))
    t["hues"] = np.array(hues, dtype=np.float32)
    t["grayscale"] = arr(F.rgb_to_grayscale(im, num_output_channels=3))
    t["solarize"] = arr(ImageOps.solarize(im))
    t["hflip"] = arr(F.hflip(im))
    sigmas = [0.1, 0.5, 1.0, 1.5, 2.0, 1.2345, 0.73]
    for k, s in enumerate(sigmas):
        t[f"blur{k}"] = arr(im.filter(ImageFilter.GaussianBlur(radius=float(np.float32(s)))))
    t["sigmas"] = np.array(sigmas, dtype=np.float32)
    for k, (h, w) in enumerate([(1, 1), (2, 3), (7, 5), (1, 9)]):
        tiny = Image.fromarray(noise(h, w, 20 + k))
        t[f"blur_tiny{k}"] = arr(tiny.filter(ImageFilter.GaussianBlur(radius=1.7)))
    x = F.normalize(F.to_tensor(im), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    t["normalize"] = x.numpy()
    # All 2^24 colours: HSV round trip at several hue shifts and RGB->L, as hashes.
    allc = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(allc >> 16) & 255, (allc >> 8) & 255, allc & 255], axis=-1).astype(np.uint8)
    full = Image.fromarray(rgb.reshape(4096, 4096, 3))
    t["all.hsv"] = hash64(arr(full.convert("HSV")))
    t["all.l"] = hash64(arr(full.convert("L")))
    for k, h in enumerate([0.0, -0.05, 0.0371]):
        t[f"all.hue{k}"] = hash64(arr(F.adjust_hue(full, float(np.float32(h)))))
    # CMYK (Adobe, inverted) and greyscale JPEGs written by Pillow, and Pillow's RGB decode of them.
    cm = Image.fromarray(noise(12, 16, 40)).convert("CMYK")
    cm.save(os.path.join(ROOT, "data_cmyk.jpg"), quality=90)
    t["cmyk.rgb"] = arr(Image.open(os.path.join(ROOT, "data_cmyk.jpg")).convert("RGB"))
    gr = Image.fromarray(noise(12, 16, 41)).convert("L")
    gr.save(os.path.join(ROOT, "data_grey.jpg"), quality=90)
    t["grey.rgb"] = arr(Image.open(os.path.join(ROOT, "data_grey.jpg")).convert("RGB"))
    write(os.path.join(ROOT, "data_ops.bin"), t)


def draw_params(img, crop, g):
    """Parameters of one DINO view drawn with torchvision's own get_params."""
    torch.manual_seed(g)
    random.seed(g)
    scale = (0.4, 1.0) if crop < 2 else (0.05, 0.4)
    i, j, h, w = T.RandomResizedCrop.get_params(img, scale, (3 / 4, 4 / 3))
    flip = float(torch.rand(1) < 0.5)
    jitter = float(not (0.8 < torch.rand(1)))
    perm, b, c, s, hu = T.ColorJitter.get_params((0.6, 1.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1))
    gray = float(torch.rand(1) < 0.2)
    sigma = random.uniform(0.1, 2.0)
    return dict(i=i, j=j, h=h, w=w, flip=flip, jitter=jitter, perm=[int(p) for p in perm],
                b=b, c=c, s=s, hue=hu, gray=gray, blur=1.0, sigma=float(np.float32(sigma)), solarize=0.0)


def apply_params(img, p, size):
    out = F.resized_crop(img, p["i"], p["j"], p["h"], p["w"], [size, size], InterpolationMode.BICUBIC)
    if p["flip"]:
        out = F.hflip(out)
    if p["jitter"]:
        for fn in p["perm"]:
            if fn == 0:
                out = F.adjust_brightness(out, p["b"])
            elif fn == 1:
                out = F.adjust_contrast(out, p["c"])
            elif fn == 2:
                out = F.adjust_saturation(out, p["s"])
            else:
                out = F.adjust_hue(out, p["hue"])
    if p["gray"]:
        out = F.rgb_to_grayscale(out, num_output_channels=3)
    if p["blur"]:
        out = out.filter(ImageFilter.GaussianBlur(radius=p["sigma"]))
    if p["solarize"]:
        out = ImageOps.solarize(out)
    return out


def pipeline_fixture():
    t = {}
    photo = Image.open(PHOTO).convert("RGB")
    a = arr(photo)
    t["photo.size"] = np.array([photo.width, photo.height], dtype=np.float32)
    t["photo.hash"] = hash64(a)
    t["photo.rowsums"] = rowsums(a)
    t["photo.strip"] = a[200:216]
    # Views with every operation switched on somewhere; sizes 224 (hash) and 96 (full).
    overrides = [
        dict(flip=1.0, jitter=1.0, gray=0.0, blur=1.0),
        dict(flip=0.0, jitter=1.0, gray=1.0, blur=1.0, solarize=1.0),
        dict(flip=1.0, jitter=1.0, gray=0.0, blur=0.0),
        dict(flip=0.0, jitter=0.0, gray=0.0, blur=1.0),
        dict(flip=1.0, jitter=1.0, gray=0.0, blur=1.0, solarize=1.0),
        dict(flip=0.0, jitter=1.0, gray=0.0, blur=0.0),
    ]
    sizes = [224, 224, 96, 96, 96, 96]
    crops = [0, 1, 2, 3, 4, 5]
    for k, (ov, size, crop) in enumerate(zip(overrides, sizes, crops)):
        p = draw_params(photo, crop, 1000 + k)
        p.update(ov)
        out = apply_params(photo, p, size)
        vec = [p["i"], p["j"], p["h"], p["w"], p["flip"], p["jitter"], *p["perm"], p["b"], p["c"],
               p["s"], p["hue"], p["gray"], p["blur"], p["sigma"], p["solarize"], size]
        t[f"view{k}.params"] = np.array(vec, dtype=np.float32)
        u = arr(out)
        t[f"view{k}.hash"] = hash64(u)
        t[f"view{k}.rowsums"] = rowsums(u)
        x = F.normalize(F.to_tensor(out), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
        if size <= 96:
            t[f"view{k}.tensor"] = x.numpy()
    t["views"] = np.array([len(sizes)], dtype=np.float32)
    # Evaluation transform: Resize(crop*256/224, bicubic) + CenterCrop + Normalize.
    for k, crop in enumerate([224, 96]):
        tf = T.Compose([T.Resize(crop * 256 // 224, interpolation=InterpolationMode.BICUBIC),
                        T.CenterCrop(crop)])
        u = arr(tf(photo))
        t[f"eval{k}.crop"] = np.array([crop], dtype=np.float32)
        t[f"eval{k}.hash"] = hash64(u)
        t[f"eval{k}.rowsums"] = rowsums(u)
    # A tall image for the eval path (width shorter) from noise.
    tall = Image.fromarray(noise(150, 70, 31))
    tf = T.Compose([T.Resize(64 * 256 // 224, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(64)])
    t["eval_tall"] = arr(tf(tall))
    write(os.path.join(ROOT, "data_pipeline.bin"), t)


if __name__ == "__main__":
    ops_fixture()
    pipeline_fixture()
    for f in ("data_ops.bin", "data_pipeline.bin"):
        print(f, os.path.getsize(os.path.join(ROOT, f)))
