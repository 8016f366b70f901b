"""Shared fixtures.

Tests run headless. napari's canvas needs OpenGL, which Qt's ``offscreen``
platform does not give, so when the Xvfb binary is installed the pytest-xvfb
plugin starts a virtual screen (Mesa renders in software) and Qt uses it;
``make test`` installs Xvfb where it can. Without Xvfb, Qt falls back to the
``offscreen`` platform and the tests that need a napari canvas are skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

HAVE_SCREEN = bool(os.environ.get("DISPLAY") or shutil.which("Xvfb"))
if not HAVE_SCREEN:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
elif os.environ.get("QT_QPA_PLATFORM") == "offscreen" and shutil.which("Xvfb"):
    # A virtual screen is coming: let Qt use it (xcb) so the canvas gets OpenGL.
    del os.environ["QT_QPA_PLATFORM"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real test data (``../shared/data`` beside the checkout)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="CUDA is not available")


def pytest_collection_modifyitems(config, items):
    if HAVE_SCREEN:
        return
    skip = pytest.mark.skip(reason="napari's canvas needs OpenGL: install Xvfb (make test does) or run with a display")
    for item in items:
        if "make_napari_viewer" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
