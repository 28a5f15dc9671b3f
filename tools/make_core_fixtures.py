"""Fixture for tests/test_rng.c: values of fixture_io.fill for a few seeds and
ranges, so the C generator is proved to reproduce the Python one exactly."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import fixture_io  # noqa: E402

out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "core_fill.dfx")
fixture_io.write(out, {
    "fill_s0_m1_1": fixture_io.fill((1000,), 0, -1.0, 1.0),
    "fill_s7_0_1": fixture_io.fill((10, 10), 7, 0.0, 1.0),
    "fill_s123456_m0.02_0.02": fixture_io.fill((257,), 123456, -0.02, 0.02),
})
print("wrote", out)
