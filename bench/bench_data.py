"""Loader benchmark: dino.c's loader vs torchvision's DINO augmentation.

Both produce 2x224 + 8x96 crops per image (DataAugmentationDINO as in
docs/DINO.md §5) from the same JPEG files, with 2 workers each, in one run. There are
no real photo collections on the build machine, so ~64 photo-like 500x375
JPEGs are made from the real photos available (tests/fixtures/data_photo.jpg,
plus any extra paths given with --photos): random crops, flips and colour
shifts, saved at quality 90.

Run: PY=$(tools/venv.sh); $PY bench/bench_data.py [--n 64] [--epochs 3] [--batch 16]
"""
import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
import torchvision
import torchvision.transforms as T
from torchvision import datasets

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


class GaussianBlur:
    def __init__(self, p=0.5, radius_min=0.1, radius_max=2.0):
        self.prob, self.radius_min, self.radius_max = p, radius_min, radius_max

    def __call__(self, img):
        if random.random() > self.prob:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.radius_min, self.radius_max)))


class Solarization:
    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        return ImageOps.solarize(img) if random.random() < self.p else img


class DataAugmentationDINO:
    def __init__(self, global_crops_scale=(0.4, 1.0), local_crops_scale=(0.05, 0.4), local_crops_number=8):
        flip_and_color_jitter = T.Compose([
            T.RandomHorizontalFlip(p=0.5),
            T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
        ])
        normalize = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
        bic = T.InterpolationMode.BICUBIC
        self.global_transfo1 = T.Compose([T.RandomResizedCrop(224, scale=global_crops_scale, interpolation=bic),
                                          flip_and_color_jitter, GaussianBlur(1.0), normalize])
        self.global_transfo2 = T.Compose([T.RandomResizedCrop(224, scale=global_crops_scale, interpolation=bic),
                                          flip_and_color_jitter, GaussianBlur(0.1), Solarization(0.2), normalize])
        self.local_crops_number = local_crops_number
        self.local_transfo = T.Compose([T.RandomResizedCrop(96, scale=local_crops_scale, interpolation=bic),
                                        flip_and_color_jitter, GaussianBlur(p=0.5), normalize])

    def __call__(self, image):
        crops = [self.global_transfo1(image), self.global_transfo2(image)]
        for _ in range(self.local_crops_number):
            crops.append(self.local_transfo(image))
        return crops


def make_photos(out, n, sources, seed=0):
    rng = random.Random(seed)
    imgs = [Image.open(p).convert("RGB") for p in sources]
    os.makedirs(os.path.join(out, "photos"), exist_ok=True)
    for k in range(n):
        src = imgs[k % len(imgs)]
        w = rng.randint(int(src.width * 0.6), src.width)
        h = min(src.height, int(w * 0.75))
        x, y = rng.randint(0, src.width - w), rng.randint(0, src.height - h)
        im = src.crop((x, y, x + w, y + h)).resize((500, 375), Image.BICUBIC)
        if rng.random() < 0.5:
            im = ImageOps.mirror(im)
        a = np.asarray(im).astype(np.float32) * np.array([rng.uniform(0.8, 1.2) for _ in range(3)], np.float32)
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(os.path.join(out, "photos", f"img{k:03d}.jpg"), quality=90)


def worker_init(_):
    torch.set_num_threads(1)


def cpu_seconds():
    """User + system CPU time of this process and its waited-for children."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def bench_torchvision(folder, epochs, batch):
    ds = datasets.ImageFolder(folder, transform=DataAugmentationDINO())
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=2, drop_last=True,
                                     worker_init_fn=worker_init)
    for _ in dl:  # warm-up epoch (imports, first decodes) is not timed
        pass
    n, t0, c0 = 0, time.perf_counter(), cpu_seconds()
    for _ in range(epochs):  # workers start and exit each epoch, so their CPU time is counted
        for crops, _ in dl:
            n += crops[0].shape[0]
    return n / (time.perf_counter() - t0), n, (cpu_seconds() - c0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--dir", default="/tmp/dino_bench_data")
    ap.add_argument("--photos", nargs="*", default=[])
    ap.add_argument("--dino", default=os.path.join(ROOT, "build", "dino"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    shutil.rmtree(args.dir, ignore_errors=True)
    make_photos(args.dir, args.n, [os.path.join(ROOT, "tests", "fixtures", "data_photo.jpg")] + args.photos)
    steps = args.epochs * (args.n // args.batch)
    cmd = [args.dino, "augment", args.dir, "--bench", str(steps), "--workers", "2", "--batch_size", str(args.batch)]
    print("$", " ".join(cmd), flush=True)
    c0 = cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    ours_cpu = (cpu_seconds() - c0) / (steps * args.batch)
    print(out.strip())
    ours = float(out.split("loader:")[1].split()[0])
    tv, n, tv_cpu = bench_torchvision(args.dir, args.epochs, args.batch)
    print(f"torchvision {torchvision.__version__} DataLoader(num_workers=2): {tv:.1f} images/s ({n} images)")
    print(f"dino.c loader: {ours:.1f} images/s  -> {ours / tv:.2f}x torchvision (wall clock)")
    print(f"CPU time per image: dino.c {1000 * ours_cpu:.1f} ms, torchvision {1000 * tv_cpu:.1f} ms "
          f"-> {tv_cpu / ours_cpu:.2f}x less CPU (a fairer measure on a shared machine)")


if __name__ == "__main__":
    sys.exit(main())
