"""Time the Fourier metrics on a 128^3 pair (and optionally larger).

    python benchmarks/metrics_speed.py [--size 128]

The baseline is one numpy rfftn of the same volume, timed in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from napari_dewedge.core.metrics import directional_resolution, fsc, missing_wedge_fsc, ssim
from napari_dewedge.core.wedge import WedgeGeometry


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.size,) * 3, dtype=np.float32)
    b = a + rng.standard_normal(a.shape, dtype=np.float32)
    base = _median_time(lambda: np.fft.rfftn(a), args.repeats)
    print(f"{args.size}^3 float32, CPU; baseline numpy rfftn: {base * 1e3:.1f} ms")
    for name, fn in [
        ("fsc", lambda: fsc(a, b)),
        ("missing_wedge_fsc", lambda: missing_wedge_fsc(a, b, WedgeGeometry())),
        ("directional_resolution", lambda: directional_resolution(a, b)),
        ("ssim (3D)", lambda: ssim(a, b)),
    ]:
        t = _median_time(fn, args.repeats)
        print(f"{name:24s} {t * 1e3:8.1f} ms  ({t / base:5.1f} x rfftn)")


if __name__ == "__main__":
    main()
