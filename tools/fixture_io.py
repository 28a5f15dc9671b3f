"""Writes reference fixtures for the C tests (read by tests/fixture.c).

Layout (little-endian): b"DFX1", u32 count, then per tensor: u32 name length,
name, u32 ndim, i64 shape[ndim], float32 data. Also `fill`, the seeded value
generator that src/rng.c reproduces, so fixtures need not store their inputs.
"""
import struct

import numpy as np

MASK64 = (1 << 64) - 1


def _splitmix64(x):
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(MASK64)
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(MASK64)
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(MASK64)
    return x ^ (x >> np.uint64(31))


def fill(shape, seed, lo, hi):
    """float32 array equal to C's fixture_fill(x, n, seed, lo, hi)."""
    n = int(np.prod(shape)) if len(shape) else 1
    with np.errstate(over="ignore"):
        idx = (np.uint64(seed) << np.uint64(32)) + np.arange(n, dtype=np.uint64)
        u = (_splitmix64(idx) >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    x = np.float64(np.float32(lo)) + (np.float64(np.float32(hi)) - np.float64(np.float32(lo))) * u.astype(np.float64)
    return x.astype(np.float32).reshape(shape)


def write(path, tensors):
    """tensors: dict name -> array-like (torch tensors are detached and copied)."""
    with open(path, "wb") as f:
        f.write(b"DFX1")
        f.write(struct.pack("<I", len(tensors)))
        for name, t in tensors.items():
            if hasattr(t, "detach"):
                t = t.detach().cpu().numpy()
            a = np.ascontiguousarray(np.asarray(t, dtype=np.float32))
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", a.ndim))
            for d in a.shape:
                f.write(struct.pack("<q", d))
            f.write(a.astype("<f4").tobytes())
