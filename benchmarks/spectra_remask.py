"""Time the missing-wedge preview path: the spectrum (once per volume) against
re-masking it for a new tilt range (every slider move).

    python benchmarks/spectra_remask.py [--shape 200 512 512] [--repeats 50]

Prints the one-off spectrum times and the re-mask times (median, max), plus
re-masking as a fraction of the spectrum time measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from napari_dewedge.core.device import cpu_name
from napari_dewedge.core.spectra import central_slices, estimate_tilt_range, slice_masks
from napari_dewedge.core.wedge import WedgeGeometry


def _time(fn, repeats: int = 1) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    shape = tuple(args.shape)
    volume = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    print(f"volume {shape[0]}x{shape[1]}x{shape[2]} float32, CPU: {cpu_name()}")

    t_central = _time(lambda: central_slices(volume, "central"))[0]
    spectrum = central_slices(volume, "central")
    t_average = _time(lambda: central_slices(volume, "average"))[0]
    average = central_slices(volume, "average")
    print(f"spectrum, central planes (once per volume): {t_central * 1e3:8.1f} ms")
    print(f"spectrum, averaged planes (once per volume): {t_average * 1e3:8.1f} ms")

    # Every slider position is new: nothing comes from the mask cache.
    angles = iter(np.linspace(-80, -20, args.repeats * 3))
    masks_only = _time(lambda: slice_masks(shape, WedgeGeometry(float(next(angles)), 60.0)), args.repeats)
    remask = _time(lambda: spectrum.masked(WedgeGeometry(float(next(angles)), 60.0)), args.repeats)
    cached = _time(lambda: spectrum.masked(WedgeGeometry(-60.0, 60.0)), args.repeats)
    estimate = _time(lambda: estimate_tilt_range(average), 5)
    for name, values in [
        ("new wedge masks (3 planes)", masks_only),
        ("re-mask spectrum, new range", remask),
        ("re-mask spectrum, cached range", cached),
        ("estimate tilt range (from averaged)", estimate),
    ]:
        med = statistics.median(values)
        print(
            f"{name:38s} median {med * 1e3:7.2f} ms  max {max(values) * 1e3:7.2f} ms"
            f"  ({med / t_central:.3%} of the central spectrum)"
        )


if __name__ == "__main__":
    main()
