"""The documentation's screenshot script runs against the widgets as they are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_screenshots_script_draws_the_inspection_widgets(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    cmd = [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--steps", "0", "--size", "32", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("inspector_phantom.png", "inspector_tomogram.png", "orthoviews_tomogram.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
