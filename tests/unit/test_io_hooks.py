"""The napari reader and writer hooks, called directly (napari_dewedge.io.napari_hooks)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_dewedge.io import MrcReadError, MrcReadWarning, read_volume
from napari_dewedge.io.napari_hooks import get_reader, read_layers, write_mrc

from .test_io import GOOD

# --------------------------------------------------------------------------- #
# napari hooks, called directly
# --------------------------------------------------------------------------- #


def test_get_reader_accepts_good_files_and_lists(shared_data: Path) -> None:
    good = [str(shared_data / r) for r in GOOD]
    for p in good:
        assert get_reader(p) is read_layers
    assert get_reader(good[:3]) is read_layers
    assert get_reader(good[:2] + [str(shared_data / "mrc_cases/empty1.map")]) is None
    assert get_reader([]) is None
    assert get_reader(str(shared_data / "README.md")) is None
    assert get_reader(12345) is None  # type: ignore[arg-type]


def test_get_reader_checks_extension(shared_data: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "tomogram.tif"
    shutil.copy(shared_data / "mrc_cases/tiny1.map", renamed)
    assert get_reader(str(renamed)) is None
    for ext in (".rec", ".st", ".ali", ".mrcs", ".MRC"):
        copy = tmp_path / f"tomogram{ext}"
        shutil.copy(shared_data / "mrc_cases/tiny1.map", copy)
        assert get_reader(str(copy)) is read_layers


def test_read_layers(shared_data: Path) -> None:
    path = shared_data / "maps/groel_emd1997.map"
    (layer,) = read_layers(str(path))
    data, kwargs, kind = layer
    assert kind == "image"
    assert data.shape == (100, 100, 100)
    assert kwargs["name"] == "groel_emd1997"
    assert kwargs["scale"] == pytest.approx((2.02, 2.02, 2.02))
    assert kwargs["translate"] == pytest.approx((-101.0, -101.0, -101.0))
    assert kwargs["units"] == ("angstrom",) * 3
    assert kwargs["axis_labels"] == ("z", "y", "x")
    assert kwargs["metadata"]["path"] == str(path)
    assert kwargs["metadata"]["header"]["ispg"] == 1
    two = read_layers([str(path), str(shared_data / "mrc_cases/tiny1.map")])
    assert [k["name"] for _, k, _ in two] == ["groel_emd1997", "tiny1"]
    with pytest.raises(MrcReadError, match="empty file"):
        read_layers(str(shared_data / "mrc_cases/empty1.map"))


def test_read_layers_2d_image(shared_data: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MrcReadWarning)
        ((data, kwargs, _),) = read_layers(str(shared_data / "mrc_cases/swapped_byte_order.mrc"))
    assert data.ndim == 2 and len(kwargs["scale"]) == 2 and len(kwargs["translate"]) == 2
    assert kwargs["axis_labels"] == ("y", "x")


def test_write_mrc_hook(shared_data: Path, tmp_path: Path) -> None:
    data = np.random.default_rng(4).normal(size=(5, 6, 7)).astype(np.float32)
    attrs = {
        "name": "tomo dewedged",
        "scale": (1.0, 10.52, 10.52, 10.52),
        "translate": (0.0, 1.0, 2.0, 3.0),
        "metadata": {"provenance": {"operation": "dewedge", "source_layer": "tomo"}},
    }
    out = tmp_path / "result.mrc"
    assert write_mrc(str(out), data, attrs) == [str(out)]
    vol = read_volume(out)
    assert np.array_equal(vol.data, data)
    assert vol.voxel_size == (10.52, 10.52, 10.52) and vol.origin == (1.0, 2.0, 3.0)
    assert "tomo dewedged dewedge from tomo" in vol.labels[-1]
    # napari asks before replacing an ordinary file: the hook overwrites it
    assert write_mrc(str(out), data * 2, attrs) == [str(out)]
    assert np.array_equal(read_volume(out).data, data * 2)


def test_write_mrc_hook_converts_nanometres(tmp_path: Path) -> None:
    attrs = {"name": "x", "scale": (2.0, 1.5, 1.5), "units": ("nanometer",) * 3}
    (written,) = write_mrc(str(tmp_path / "nm.mrc"), np.zeros((2, 3, 4)), attrs)
    assert read_volume(written).voxel_size == (20.0, 15.0, 15.0)


def test_write_mrc_hook_protects_source_file(shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "tomo.mrc"
    shutil.copy(shared_data / "tomograms/microtubule_14pf.mrc", src)
    before = src.read_bytes()
    ((data, kwargs, _),) = read_layers(str(src))
    with pytest.raises(FileExistsError, match="source file"):
        write_mrc(str(src), np.asarray(data), kwargs)
    result_meta = {"source_path": str(src), "provenance": {"operation": "dewedge"}}
    with pytest.raises(FileExistsError, match="source file"):
        write_mrc(str(src), np.asarray(data), {"name": "r", "metadata": result_meta})
    assert src.read_bytes() == before
    # keeps the source's history labels and voxel size in another file
    (out,) = write_mrc(str(tmp_path / "copy.mrc"), data, kwargs)
    back = read_volume(out)
    assert back.voxel_size == (10.52, 10.52, 10.52)
    assert "converted from cylindra tests/14pf_MT.tif (uint8, 1.052 nm)" in back.labels


def test_write_mrc_hook_multiscale_writes_full_resolution(tmp_path: Path) -> None:
    levels = [np.ones((4, 8, 8), np.float32), np.ones((2, 4, 4), np.float32)]
    (out,) = write_mrc(str(tmp_path / "ms.mrc"), levels, {"multiscale": True, "scale": (2, 2, 2)})
    vol = read_volume(out)
    assert vol.data.shape == (4, 8, 8) and vol.voxel_size == (2.0, 2.0, 2.0)


def test_write_mrc_hook_rejects_rgb_and_4d(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RGB"):
        write_mrc(str(tmp_path / "rgb.mrc"), np.zeros((4, 4, 3)), {"rgb": True})
    with pytest.raises(ValueError, match="2D or 3D"):
        write_mrc(str(tmp_path / "t.mrc"), np.zeros((2, 3, 4, 5)), {})
    (out,) = write_mrc(
        str(tmp_path / "squeezed.mrc"), np.zeros((1, 3, 4, 5)), {"scale": (1, 2, 2, 2)}
    )
    assert read_volume(out).data.shape == (3, 4, 5)
