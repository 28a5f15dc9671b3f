"""Writes the small seed corpora of the fuzzers (fuzz/corpus/<reader>/): a few
valid inputs of every kind each reader accepts, as small as they can be, so
that libFuzzer starts from inside the formats. Run once; the files are
committed (the whole corpus stays far below 1 MB). Usage:
    python fuzz/make_seeds.py            (from the repository root, Pillow needed)
"""
import gzip
import io
import os
import struct

from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(reader, name, data):
    d = os.path.join(ROOT, reader)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def img_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def pattern(mode, w, h):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 37) % 256, (y * 53) % 256, ((x + y) * 29) % 256) for y in range(h) for x in range(w)])
    return im.convert(mode)


def images():
    rgb = pattern("RGB", 8, 8)
    put("image", "rgb_baseline.jpg", img_bytes(rgb, "JPEG", quality=50))
    put("image", "rgb_progressive.jpg", img_bytes(pattern("RGB", 16, 16), "JPEG", quality=50, progressive=True))
    put("image", "rgb_444.jpg", img_bytes(rgb, "JPEG", quality=50, subsampling=0))
    put("image", "grey.jpg", img_bytes(pattern("L", 8, 8), "JPEG", quality=50))
    put("image", "cmyk.jpg", img_bytes(pattern("CMYK", 8, 8), "JPEG", quality=50))
    put("image", "rgb.png", img_bytes(rgb, "PNG"))
    put("image", "rgba.png", img_bytes(pattern("RGBA", 4, 4), "PNG"))
    put("image", "la.png", img_bytes(pattern("LA", 4, 4), "PNG"))
    put("image", "grey1.png", img_bytes(pattern("1", 9, 3), "PNG"))
    put("image", "grey16.png", img_bytes(pattern("I;16", 4, 4), "PNG"))
    pal = pattern("P", 4, 4)
    put("image", "palette_trns.png", img_bytes(pal, "PNG", transparency=0))
    put("image", "interlaced.png", adam7_png())


def adam7_png():
    # Pillow cannot write interlaced PNG: build a tiny Adam7 grey image by hand.
    import zlib
    w = h = 3
    # The seven Adam7 passes as (x0, y0, dx, dy); empty passes have no scanlines.
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, w, dx))
        ys = list(range(y0, h, dy))
        if not xs or not ys:
            continue
        for y in ys:
            raw += b"\x00" + bytes((x * 80 + y * 20) % 256 for x in xs)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def idx_seed(images_file, labels_file):
    # fuzz_entry_idx: byte 0 = where the images file ends, as rest * b / 255.
    rest = len(images_file) + len(labels_file)
    for b in range(256):
        if rest * b // 255 == len(images_file):
            return bytes([b]) + images_file + labels_file
    raise ValueError("no split byte")


def idx():
    n, r, c = 2, 3, 3
    img = struct.pack(">BBBBIII", 0, 0, 8, 3, n, r, c) + bytes(range(n * r * c))
    lab = struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes([0, 1])
    put("idx", "grey_2x3x3.idx", idx_seed(img, lab))
    img4 = struct.pack(">BBBBIIII", 0, 0, 8, 4, 1, 2, 2, 3) + bytes(range(12))
    put("idx", "rgb_1x2x2.idx", idx_seed(img4, struct.pack(">BBBBI", 0, 0, 8, 1, 1) + b"\x07"))
    put("idx", "unlabeled.idx", idx_seed(img, b""))
    put("idx", "gzip.idx", idx_seed(gzip.compress(img, mtime=0), gzip.compress(lab, mtime=0)))


def cifar():
    px = bytes((i * 7) % 256 for i in range(3072))
    put("cifar", "cifar10_1.bin", b"\x00" + b"\x03" + px)
    put("cifar", "cifar100_1.bin", b"\x01" + b"\x02\x41" + px)


def lists():
    put("list", "labeled.txt", b"a.png 0\na.png 1\n")
    put("list", "unlabeled.txt", b"# images\n\na.png\n  a.png  \r\n")
    put("list", "tabs.txt", b"a.png\t3\nmissing.png\t2\n")


def args():
    put("args", "flags.bin", b"--lr\x000.1\x00--nb_knn\x0010\x0020\x00file")
    put("args", "equals.bin", b"--use_fp16=false\x00--global_crops_scale=0.4,1\x00--output_dir\x00out")
    put("args", "bools.bin", b"--use_fp16\x00true\x00--batch-size-per-gpu=64\x00a\x00b")
    put("args", "ranges.bin", b"--threads\x001024\x00--momentum_teacher=0.996\x00--nb_knn=1,10000")
    put("args", "refuse_partial_number.bin", b"--threads\x001abc")
    put("args", "refuse_out_of_range.bin", b"--nb_knn\x0010\x002000000000")
    put("args", "refuse_nan.bin", b"--lr\x00nan")


if __name__ == "__main__":
    images()
    idx()
    cifar()
    lists()
    args()
