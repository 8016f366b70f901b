"""Shared fixtures, and the test tiers.

Tests live in three folders, each a marker (``pytest -m unit`` ...):
``unit/`` (pure functions and core classes, no display), ``gui/`` (widgets on a
napari viewer) and ``e2e/`` (whole flows: the command line on files, every
widget docked together on each sample). Test behaviour, arrange-act-assert;
mark GPU-only tests with ``requires_cuda`` and long ones ``slow``; training in
tests stays tiny (a few steps of a depth-1 network).

Tests run headless. napari's canvas needs OpenGL, which Qt's ``offscreen``
platform does not give, so when the Xvfb binary is installed the pytest-xvfb
plugin starts a virtual screen (Mesa renders in software) and Qt uses it;
``make test`` installs Xvfb where it can. Without Xvfb, Qt falls back to the
``offscreen`` platform: the ``viewer`` fixture then answers the two OpenGL
queries napari makes when a layer is added with typical values (our widgets
paint with QPainter, not OpenGL), and tests that ask for ``make_napari_viewer``
directly are skipped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

_XVFB_OFF = "--no-xvfb" in sys.argv or "no:xvfb" in sys.argv
_XVFB = bool(shutil.which("Xvfb")) and importlib.util.find_spec("pytest_xvfb") is not None and not _XVFB_OFF
HAVE_SCREEN = bool(os.environ.get("DISPLAY")) or _XVFB
if not HAVE_SCREEN:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
elif os.environ.get("QT_QPA_PLATFORM") == "offscreen" and _XVFB:
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


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch CPU thread (small tensors, steady timings), then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="CUDA is not available")


@pytest.fixture
def viewer(make_napari_viewer, monkeypatch):
    """A napari viewer; on a machine without any screen, one whose layers can be
    added although there is no OpenGL (the canvas is never drawn then)."""
    if not HAVE_SCREEN:
        import napari._vispy.canvas as vcanvas
        import napari._vispy.layers.base as vbase
        import napari._vispy.layers.image as vimage
        import napari._vispy.layers.labels as vlabels

        monkeypatch.setattr(vimage, "get_gl_extensions", lambda: "GL_ARB_texture_float")
        for module in (vimage, vbase, vlabels, vcanvas):
            monkeypatch.setattr(module, "get_max_texture_sizes", lambda: (4096, 512))
    return make_napari_viewer()


TIERS = ("unit", "gui", "e2e")


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = next((t for t in TIERS if f"{os.sep}{t}{os.sep}" in str(item.fspath)), None)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
    if HAVE_SCREEN:
        return
    skip = pytest.mark.skip(reason="napari's canvas needs OpenGL: install Xvfb (make test does) or run with a display")
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "make_napari_viewer" in names and "viewer" not in names:
            item.add_marker(skip)
