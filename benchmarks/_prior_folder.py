"""``--prior-folder DIR``: a benchmark's runs of ours start from the priors in DIR, not the package's.

Used to measure a prior made by ``scripts/train_prior.py --out DIR`` before it
ships: the runs and their table are those of the shipped prior's, and the
table's header says which priors they started from.
"""

from __future__ import annotations

from pathlib import Path


def use_prior_folder(folder: Path) -> str:
    """Point this process's priors at ``folder``; what they are, for the table's header."""
    from napari_dewedge.core.model import safe_torch_load
    from napari_dewedge.core.training import prior

    folder = Path(folder)
    files = sorted(folder.glob("unet-*.pt"))
    if not files:
        raise SystemExit(f"--prior-folder {folder}: no prior file (unet-*.pt) there")
    prior.PRIOR_DIR = folder
    described = []
    for path in files:
        about = safe_torch_load(path, "prior").get("about", {})
        copies = about.get("copies")
        copies = f", {copies[0]}-{copies[1]} copies a box" if copies and copies[0] != copies[1] else ""
        described.append(f"{path.stem}: {about.get('steps', '?')} steps on {about.get('scenes', '?')} boxes{copies}")
    return f"ours started from the priors in {folder} ({'; '.join(described)}), not the package's"
