"""Sample data for napari: two synthetic phantoms with their missing wedge,
and a real microtubule tomogram.

Phantom samples give two layers: the observation (wedge + noise) and the
clean volume, hidden, marked as ground truth in ``metadata["dewedge_role"]`` so
that the comparison widget can score results against it. Every layer that has
a known wedge carries it in ``metadata["wedge"]``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np

from .core.phantoms import corrupt, hollow_sphere, prism_orientations, triangular_prism
from .core.wedge import WedgeGeometry

__all__ = ["SAMPLE_TOMOGRAM", "hollow_sphere_sample", "prism_sample", "microtubule_sample", "phantom_layers"]

#: The bundled real tomogram (see data/README.md for its source and licence).
SAMPLE_TOMOGRAM = Path(str(files("napari_dewedge") / "data" / "microtubule_13pf.mrc"))
SAMPLE_GEOMETRY = WedgeGeometry(-60.0, 60.0, "y")
SAMPLE_SNR = 2.0


def phantom_layers(name: str, clean: np.ndarray, geometry: WedgeGeometry = SAMPLE_GEOMETRY,
                   snr: float = SAMPLE_SNR, seed: int = 0) -> list[tuple]:
    """Layer data for a phantom: the corrupted observation and the hidden truth."""
    observed = corrupt(clean, geometry, snr=snr, seed=seed)
    wedge = geometry.to_dict()
    common = {"scale": (1.0, 1.0, 1.0)}
    return [
        (
            observed,
            {
                **common,
                "name": f"{name} (wedge + noise)",
                "metadata": {"dewedge_role": "corrupted", "wedge": wedge, "snr": snr, "seed": seed},
            },
            "image",
        ),
        (
            clean,
            {
                **common,
                "name": f"{name} (ground truth)",
                "visible": False,
                "metadata": {"dewedge_role": "ground_truth", "wedge": wedge},
            },
            "image",
        ),
    ]


def hollow_sphere_sample() -> list[tuple]:
    """Hollow sphere, outer diameter 70 px, shell 4 px, in 140^3; +-60 degree wedge."""
    return phantom_layers("hollow sphere", hollow_sphere())


def prism_sample() -> list[tuple]:
    """Triangular prism 20 px thick in 96^3, first of the reproducible orientations."""
    return phantom_layers("prism", triangular_prism(orientation=prism_orientations(1, seed=0)[0]))


def microtubule_sample() -> list[tuple]:
    """The real microtubule tomogram bundled with the package (10.52 Å voxels)."""
    from .io.napari_hooks import read_layers

    return read_layers(str(SAMPLE_TOMOGRAM))
