"""The MRC reader and writer inside a real napari viewer (headless Qt)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
napari = pytest.importorskip("napari")

from napari_dewedge.io import read_volume  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "src" / "napari_dewedge" / "napari.yaml"


@pytest.fixture
def plugin_name() -> str:
    """Name of the installed plugin whose manifest points at the io hooks."""
    if not MANIFEST.is_file():
        pytest.skip("plugin manifest src/napari_dewedge/napari.yaml not present")
    text = MANIFEST.read_text()
    if "napari_dewedge.io.napari_hooks:get_reader" not in text:
        pytest.skip("plugin manifest does not list the MRC reader")
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    if "napari-dewedge" not in pm._manifests:
        pytest.skip("napari-dewedge plugin is not installed (pip install -e .)")
    return "napari-dewedge"


def test_open_and_save_in_viewer(
    viewer, shared_data: Path, tmp_path: Path, plugin_name: str
) -> None:
    src = tmp_path / "microtubule_14pf.mrc"
    shutil.copy(shared_data / "tomograms/microtubule_14pf.mrc", src)
    layers = viewer.open(str(src), plugin=plugin_name)
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name == "microtubule_14pf"
    assert layer.data.shape == (44, 136, 84)
    assert tuple(layer.scale) == pytest.approx((10.52, 10.52, 10.52))
    assert layer.metadata["path"] == str(src)
    assert [str(u) for u in layer.units] == ["angstrom"] * 3

    out = tmp_path / "saved.mrc"
    written = viewer.layers.save(str(out), selected=False, plugin=plugin_name)
    assert [Path(p) for p in written] == [out]
    back = read_volume(out)
    assert np.array_equal(back.data, np.asarray(layer.data))
    assert back.voxel_size == (10.52, 10.52, 10.52)

    before = src.read_bytes()
    with pytest.raises(Exception, match="source file"):
        viewer.layers.save(str(src), selected=False, plugin=plugin_name)
    assert src.read_bytes() == before


def test_viewer_refuses_broken_file(
    viewer, shared_data: Path, plugin_name: str
) -> None:
    """The cheap header check turns a truncated file away before any data is read."""
    with pytest.raises(ValueError, match="refused the file|truncated"):
        viewer.open(str(shared_data / "mrc_cases/test_data_corrupt_header.map"), plugin=plugin_name)
    assert len(viewer.layers) == 0
