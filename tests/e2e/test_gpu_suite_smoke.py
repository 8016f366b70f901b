"""The prepared GPU suite runs end to end on the CPU with --smoke (tiny sizes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_gpu_suite_smoke_writes_its_report(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--smoke"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "gpu.md").read_text(encoding="utf-8")
    assert "## CryoGEN paper shapes" in report and "| sphere |" in report
    assert "% of the float32 matmul rate" in report and "subtomograms/s" in report
    assert "CPU" in report  # every figure names its device
    assert (tmp_path / "paper_shapes_sphere.png").is_file()
