"""Peak memory and time of tiled inference on a large memory-mapped tomogram.

Writes a float32 tomogram (default 300 x 1000 x 1000 voxels, z y x, 1.2 GB) to
a raw file, opens it as a read-only ``np.memmap`` and runs a tiny-width U-Net
over it with :func:`napari_dewedge.core.inference.run_inference`. Prints the
device, the wall time and the peak resident memory of the process
(``resource.getrusage``, which counts the mapped input's pages too) and the
peak anonymous memory (``/proc/self/status``, Linux), next to the volume's size.

    python benchmarks/inference_memory.py                 # 300 x 1000 x 1000
    python benchmarks/inference_memory.py --shape 64 256 256 --tile 64
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def anon_rss_mib() -> float | None:
    """Current anonymous resident memory (heap, not file pages) in MiB; None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def write_volume(path: Path, shape: tuple[int, int, int], seed: int = 0) -> None:
    """A random tomogram written slab by slab with plain writes (never whole in memory,
    and not mapped, so its pages do not count in this process's resident memory)."""
    rng = np.random.default_rng(seed)
    step = max(1, (1 << 24) // (shape[1] * shape[2]))
    with open(path, "wb") as fh:
        for z0 in range(0, shape[0], step):
            z1 = min(shape[0], z0 + step)
            rng.standard_normal((z1 - z0, shape[1], shape[2]), dtype=np.float32).tofile(fh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(300, 1000, 1000), metavar=("Z", "Y", "X"))
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=None)
    parser.add_argument("--width", type=int, default=2, help="U-Net width (tiny by default: memory, not quality)")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--tmpdir", default=None, help="folder for the temporary raw volume")
    args = parser.parse_args(argv)

    import torch

    from napari_dewedge.core.device import configure_cpu_threads, resolve_device
    from napari_dewedge.core.inference import run_inference
    from napari_dewedge.core.model import TrainedModel
    from napari_dewedge.core.networks import UNet3D
    from napari_dewedge.core.wedge import WedgeGeometry

    configure_cpu_threads(args.threads)
    device = resolve_device(args.device)
    shape = tuple(args.shape)
    gib = np.prod(shape) * 4 / 2**30
    torch.manual_seed(0)
    net = UNet3D(depth=args.depth, width=args.width, norm="instance")
    model = TrainedModel(
        generator=net,
        network=net.config(),
        geometry=WedgeGeometry(),
        normalization={"mean": 0.0, "std": 1.0},
        subtomo_size=args.tile // 2,
        training={"noise_scale": 0.5},
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {device} ({name}); torch threads: {torch.get_num_threads()}")
    print(f"volume: {shape[0]} x {shape[1]} x {shape[2]} float32 = {gib:.2f} GiB (memory-mapped, read-only)")

    # Remove the temporary volume also when the run is ended with SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "tomogram.raw"
        t = time.perf_counter()
        write_volume(path, shape)
        print(f"wrote test volume in {time.perf_counter() - t:.1f} s; peak RSS so far {peak_rss_mib():.0f} MiB")
        volume = np.memmap(path, dtype=np.float32, mode="r", shape=shape)
        rss0 = peak_rss_mib()
        t0 = time.perf_counter()
        last = None
        shown = -1.0
        anon_peak = anon_rss_mib() or 0.0
        for event in run_inference(
            model,
            volume,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            samples=args.samples,
            device=device,
        ):
            last = event
            anon_peak = max(anon_peak, anon_rss_mib() or 0.0)
            if event.fraction - shown >= 0.1 or event.done:
                shown = event.fraction
                print(
                    f"  {event.done_tiles}/{event.total_tiles} tiles, {event.seconds:.0f} s, "
                    f"eta {event.eta_s or 0:.0f} s, peak RSS {peak_rss_mib():.0f} MiB, "
                    f"anonymous now {anon_rss_mib() or 0:.0f} MiB",
                    flush=True,
                )
        seconds = time.perf_counter() - t0
        assert last is not None and last.result is not None
        result = last.result
        finite = bool(np.isfinite(result.mean[:: max(1, shape[0] // 8)]).all())
        peak = peak_rss_mib()
        out_gib = gib * (2 if result.std is not None else 1)
        print()
        print("| device | volume (z,y,x) | tile | overlap | samples | time (s) | peak RSS (MiB) | "
              "peak anonymous RSS (MiB) | output arrays (MiB) |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(
            f"| {name} | {shape} | {result.tile} | {result.overlap} | {result.samples} | {seconds:.1f} | "
            f"{peak:.0f} (before: {rss0:.0f}) | {anon_peak:.0f} | {out_gib * 1024:.0f} |"
        )
        print("peak RSS includes the pages of the memory-mapped input that were read (file-backed, "
              "reclaimable); anonymous RSS is the process's own memory, sampled at every tile batch.")
        print(f"finite output: {finite}; GPU peak: "
              + (f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB" if device.type == "cuda" else "n/a"))
        del volume, result, last
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
