"""The layout the architecture notes promise (docs/architecture.md), checked."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import napari_dewedge
import napari_dewedge.core

SRC = Path(napari_dewedge.__file__).resolve().parent
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt")


def _core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(napari_dewedge.core.__path__, "napari_dewedge.core."))


def test_core_does_not_import_qt_or_napari():
    """Every module of core/, imported in a fresh interpreter, loads no GUI toolkit."""
    modules = _core_modules()
    assert len(modules) > 20 and "napari_dewedge.core.pipeline" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({GUI!r}))\n"
        "print(','.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"core imports {result.stdout.strip()} {result.stderr[-2000:]}"


def test_wedge_and_spectra_stay_light():
    code = (
        "import sys, napari_dewedge.core.wedge, napari_dewedge.core.spectra;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt', 'torch')];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"core imports {result.stdout.strip()}"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_file_is_over_about_600_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 650


def test_widgets_and_cli_hold_no_training_or_inference_loop():
    """The jobs are core/pipeline's: widgets and the command line only consume its events."""
    loop = re.compile(r"\b(Trainer\(|run_inference\(|\.run\(\)\s*:|predict\()")
    offenders = []
    for folder in ("widgets", "cli"):
        for path in (SRC / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if loop.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []
    for path in (SRC / "widgets" / "dewedge.py", SRC / "cli" / "_commands.py"):
        assert "pipeline." in path.read_text(encoding="utf-8")
