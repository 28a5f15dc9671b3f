"""A folder of synthetic photographs for end-to-end training runs on machines
without a dataset (scripts/gpu_check.sh): smooth random colour fields with
some texture, written as JPEG when Pillow is installed (what ImageNet is),
else as PNG through zlib. Needs only numpy.

Run: python3 bench/make_synthetic_images.py OUT_DIR --n 704 --size 448
"""
import argparse
import os
import struct
import sys
import zlib

import numpy as np


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def image(rng, size):
    # A coarse random field upsampled (smooth shapes) plus fine noise (texture).
    g = rng.random((9, 9, 3))
    idx = np.linspace(0, 8, size)
    i0 = np.floor(idx).astype(int).clip(0, 7)
    f = (idx - i0)[:, None]
    rows = g[i0] * (1 - f)[:, :, None] + g[i0 + 1] * f[:, :, None]            # (size, 9, 3)
    cols = rows[:, i0] * (1 - f.T)[:, :, None] + rows[:, i0 + 1] * f.T[:, :, None]  # (size, size, 3)
    img = cols * 220 + rng.normal(0, 12, (size, size, 3))
    return img.clip(0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=704)
    ap.add_argument("--size", type=int, default=448)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    try:
        from PIL import Image  # noqa: F401
    except ImportError:
        Image = None
    rng = np.random.default_rng(0)
    for i in range(a.n):
        rgb = image(rng, a.size)
        if Image is not None:
            Image.fromarray(rgb).save(os.path.join(a.out, f"img{i:05d}.jpg"), quality=90)
        else:
            write_png(os.path.join(a.out, f"img{i:05d}.png"), rgb)
    print(f"{a.n} {'JPEG' if Image else 'PNG'} images of {a.size}x{a.size} in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
