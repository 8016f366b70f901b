"""Learn the built-in prior of a U-Net (``napari_dewedge/data/priors/``) on simulated tomograms.

The scenes: ``--scenes`` boxes of ``--size``^3, each crowded with 14 copies (``--copies``)
of two public single-particle maps (``../shared/data/maps``: beta-galactosidase,
NGL viewer test data, MIT; GroEL, EMDB 1997, PowerFit test case, Apache-2.0),
each copy turned at random, scaled to 0.25-0.55 of its box and kept where it
is densest (the maximum of overlapping copies). Each box is seen through a
missing wedge about y (one of five ranges of 110-120 degrees measured, two of
them asymmetric) with white noise at SNR 0.5, 0.7, 1 or 2 (``phantoms.corrupt``),
and normalised as the trainer normalises a tomogram (its mean and standard
deviation). No cell and no benchmark scene is among them.

The U-Net (``--width``, the quick preset's otherwise) learns, with the truth
as its target, to map random subtomograms of the observation (the quick
preset's size and batch) to those of the truth, normalised alike: mean squared
error, Adam (lr 2e-3, betas 0.9/0.999), a linear warm-up over 100 steps and a
cosine decay over ``--steps``. The file records how it was made.

    python scripts/train_prior.py --width 8 --steps 3600     # about 12 minutes on 2 cores
    python scripts/train_prior.py --width 16 --steps 2400

A prior made elsewhere (``--out DIR``) is measured before it ships with
``benchmarks/versus.py --prior-folder DIR`` (and ``paper_shapes.py``), best
beside runs of the shipped prior in the same hour.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO.parent / "shared" / "data" / "maps"
MAP_FILES = ("betagal.mrc", "groel_emd1997.map")
TILTS = ((-60.0, 60.0), (-48.0, 64.0), (-64.0, 48.0), (-55.0, 55.0), (-50.0, 60.0))
SNRS = (0.5, 1.0, 0.7, 2.0)


def read_maps(folder: Path = MAPS) -> list[np.ndarray]:
    """The maps, each from its median up, scaled so that its 99.9th percentile is 1."""
    from napari_dewedge.io import read_volume

    out = []
    for name in MAP_FILES:
        m = np.asarray(read_volume(folder / name).data, dtype=np.float32)
        m = m - np.median(m)
        out.append(np.clip(m / np.percentile(m, 99.9), 0, None))
    return out


def crowded(maps: list[np.ndarray], size: int, rng: np.random.Generator, copies: int = 14) -> np.ndarray:
    """A ``size``^3 box of ``copies`` randomly turned and scaled copies of the maps."""
    from scipy import ndimage
    from scipy.spatial.transform import Rotation

    box = np.zeros((size,) * 3, np.float32)
    for _ in range(copies):
        m = maps[rng.integers(len(maps))]
        zoom = rng.uniform(0.25, 0.55)
        turn = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix() / zoom
        edge = min(size - 1, int(np.ceil(max(m.shape) * zoom)))
        centre_out, centre_in = (edge - 1) / 2, (np.array(m.shape) - 1) / 2
        part = ndimage.affine_transform(m, turn, offset=centre_in - turn @ np.full(3, centre_out),
                                        output_shape=(edge,) * 3, order=1)
        corner = [int(rng.integers(0, size - edge)) for _ in range(3)]
        where = tuple(slice(c, c + edge) for c in corner)
        box[where] = np.maximum(box[where], part)
    return box


def scenes(count: int, size: int, seed: int, copies: tuple[int, int] = (14, 14)) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (observation, truth) pairs, both normalised by the observation's mean and deviation.

    Each box holds a number of copies drawn uniformly from ``copies`` (both ends included).
    """
    from napari_dewedge.core.phantoms import corrupt
    from napari_dewedge.core.wedge import WedgeGeometry

    rng = np.random.default_rng(seed)
    maps = read_maps()
    pairs = []
    for i in range(count):
        # a fixed number draws nothing, so the default's boxes are those of the shipped prior
        n = copies[0] if copies[0] == copies[1] else int(rng.integers(copies[0], copies[1] + 1))
        truth = crowded(maps, size, rng, n)
        observed = corrupt(truth, WedgeGeometry(*TILTS[i % len(TILTS)], "y"), snr=SNRS[i % len(SNRS)],
                           seed=seed * 1000 + i)
        mean, std = float(observed.mean()), float(observed.std())
        pairs.append(((observed - mean) / std, (truth - mean) / std))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=None, help="U-Net width (default: the quick preset's)")
    parser.add_argument("--steps", type=int, default=3600)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copies", type=int, nargs=2, default=(14, 14), metavar=("LO", "HI"),
                        help="copies of the maps a box holds, drawn from LO-HI (default: 14 in every box)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="folder (default: the package's priors)")
    args = parser.parse_args(argv)

    import torch

    from napari_dewedge.core.model import atomic_torch_save
    from napari_dewedge.core.networks import build_generator
    from napari_dewedge.core.training import TrainingConfig
    from napari_dewedge.core.training.prior import PRIOR_DIR, prior_file, prior_payload

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    quick = TrainingConfig.preset("quick")
    unet = dict(quick.unet)
    if args.width is not None:
        unet["width"] = args.width
    size, batch = quick.subtomo_size, quick.batch_size
    net = build_generator(unet).train()
    t0 = time.perf_counter()
    pairs = scenes(args.scenes, args.size, args.seed, tuple(args.copies))
    print(f"{len(pairs)} scenes in {time.perf_counter() - t0:.0f} s; U-Net {net.config()}", flush=True)
    rng = np.random.default_rng(args.seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, betas=(0.9, 0.999))
    t0, smooth = time.perf_counter(), None
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = 2e-3 * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        picks = [pairs[rng.integers(len(pairs))] for _ in range(batch)]
        corners = rng.integers(0, args.size - size + 1, size=(batch, 3))
        cut = [tuple(slice(c, c + size) for c in corner) for corner in corners]
        x = torch.from_numpy(np.stack([p[0][w] for p, w in zip(picks, cut)])[:, None].copy())
        target = torch.from_numpy(np.stack([p[1][w] for p, w in zip(picks, cut)])[:, None].copy())
        loss = torch.mean((net(x.contiguous(memory_format=torch.channels_last_3d)) - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if (step + 1) % 200 == 0 or step + 1 == args.steps:
            print(f"step {step + 1}: loss {smooth:.4f}, {time.perf_counter() - t0:.0f} s", flush=True)
    seconds = time.perf_counter() - t0
    about = {
        "made_by": "scripts/train_prior.py", "maps": list(MAP_FILES), "scenes": args.scenes, "size": args.size,
        "copies": list(args.copies),
        "tilts": [list(t) for t in TILTS], "snrs": list(SNRS), "subtomo_size": size, "batch_size": batch,
        "steps": args.steps, "seed": args.seed, "final_loss": round(float(smooth), 5), "seconds": round(seconds, 1),
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
        "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d"),
    }
    path = atomic_torch_save(prior_payload(net.eval(), about), prior_file(net.config(), args.out or PRIOR_DIR))
    print(f"written: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
