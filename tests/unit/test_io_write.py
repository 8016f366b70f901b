"""MRC writing: round trips, dtypes, chunks, compression, atomic output and
protection of inputs (napari_dewedge.io.write)."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from napari_dewedge.io import read_volume, write_volume
from napari_dewedge.io import write as write_module

# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #


def _validate(path: Path) -> bool:
    return mrcfile.validate(path, print_file=io.StringIO())


def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(16, 20, 24)).astype(np.float32)
    out = tmp_path / "result.mrc"
    written = write_volume(
        out, data, voxel_size=(2.0, 3.0, 4.0), label="dewedged test", origin=(10, 20, 30)
    )
    assert written == out
    assert _validate(out)
    vol = read_volume(out)
    assert vol.data.dtype == np.float32 and np.array_equal(vol.data, data)
    assert vol.voxel_size == (2.0, 3.0, 4.0)
    assert vol.origin == (10.0, 20.0, 30.0)
    h = vol.header
    assert h["mode"] == 2 and h["ispg"] == 1
    assert h["dmin"] == pytest.approx(data.min()) and h["dmax"] == pytest.approx(data.max())
    assert h["dmean"] == pytest.approx(data.mean(), abs=1e-6)
    assert h["rms"] == pytest.approx(data.std(), rel=1e-5)
    label = vol.labels[-1]
    assert len(label) <= 80
    assert re.match(r"napari-dewedge \S+: dewedged test +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", label)
    assert list(tmp_path.iterdir()) == [out]


def test_write_keeps_real_tomogram_and_voxel_size(shared_data: Path, tmp_path: Path) -> None:
    src = read_volume(shared_data / "tomograms/microtubule_13pf.mrc", mmap=True)
    out = write_volume(
        tmp_path / "copy.rec", src.data, voxel_size=src.voxel_size, extra_labels=src.labels
    )
    back = read_volume(out)
    assert np.array_equal(back.data, src.data)
    assert back.voxel_size == src.voxel_size == (10.52, 10.52, 10.52)
    assert back.labels[: len(src.labels)] == src.labels
    assert back.labels[-1].startswith("napari-dewedge")


@pytest.mark.parametrize(
    "dtype", [np.int8, np.uint8, np.int16, np.uint16, np.float16, np.float64, bool]
)
def test_write_any_numeric_dtype_as_float32(tmp_path: Path, dtype) -> None:
    data = (np.arange(60) % 7).reshape(3, 4, 5).astype(dtype)
    out = write_volume(tmp_path / "typed.mrc", data)
    vol = read_volume(out)
    assert vol.data.dtype == np.float32 and vol.header["mode"] == 2
    assert np.array_equal(vol.data, data.astype(np.float32))
    assert vol.voxel_size == (1.0, 1.0, 1.0)


def test_write_in_chunks_from_memmap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.mrc"
    data = (np.random.default_rng(2).normal(size=(9, 7, 5)) * 100).astype(np.int16)
    with mrcfile.new(src) as m:
        m.set_data(data)
        m.voxel_size = 3.0
    mapped = read_volume(src, mmap=True).data
    assert isinstance(mapped, np.memmap)
    monkeypatch.setattr(write_module, "_WRITE_CHUNK_BYTES", 7 * 5 * 4 * 2)  # two sections a chunk
    seen = []

    class Spy:
        shape, dtype = mapped.shape, mapped.dtype

        def __getitem__(self, key):
            seen.append(key)
            return mapped[key]

    out = write_volume(tmp_path / "out.mrc", Spy(), voxel_size=3.0)
    assert len(seen) == 5 and all(isinstance(k, slice) for k in seen)
    vol = read_volume(out)
    assert np.array_equal(vol.data, data.astype(np.float32))
    f = data.astype(np.float64)
    assert vol.header["rms"] == pytest.approx(f.std(), rel=1e-6)
    assert vol.header["dmean"] == pytest.approx(f.mean(), rel=1e-6)


def test_write_2d_image(tmp_path: Path) -> None:
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = write_volume(tmp_path / "image.mrc", img, voxel_size=(5.0, 6.0))
    vol = read_volume(out)
    assert vol.data.shape == (3, 4) and np.array_equal(vol.data, img)
    assert vol.scale == (5.0, 6.0)


@pytest.mark.parametrize("suffix", [".mrc.gz", ".map.bz2"])
def test_write_compressed(tmp_path: Path, suffix: str) -> None:
    data = np.random.default_rng(3).normal(size=(4, 6, 8)).astype(np.float32)
    out = write_volume(tmp_path / f"packed{suffix}", data, voxel_size=7.0)
    vol = read_volume(out)
    assert vol.header["compression"] in ("gzip", "bzip2")
    assert np.array_equal(vol.data, data) and vol.voxel_size == (7.0, 7.0, 7.0)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "exists.mrc"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="already exists"):
        write_volume(out, np.zeros((2, 2, 2)))
    assert out.read_bytes() == b"precious"
    write_volume(out, np.ones((2, 2, 2)), overwrite=True)
    assert np.array_equal(read_volume(out).data, np.ones((2, 2, 2)))


def test_refuses_to_overwrite_inputs(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "input.mrc"
    shutil.copy(shared_data / "mrc_cases/tomo_int16.mrc", src)
    before = src.read_bytes()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for spelling in (src, "input.mrc", tmp_path / "sub" / ".." / "input.mrc"):
        with pytest.raises(FileExistsError, match="input file"):
            write_volume(spelling, np.zeros((2, 2, 2)), protected_paths=[str(src)])
    link = tmp_path / "link.mrc"
    os.symlink(src, link)
    with pytest.raises(FileExistsError, match="input file"):
        write_volume(link, np.zeros((2, 2, 2)), protected_paths=[src])
    assert src.read_bytes() == before
    # only an explicit overwrite=True replaces an input
    write_volume(src, np.zeros((2, 2, 2)), protected_paths=[src], overwrite=True)
    assert read_volume(src).data.shape == (2, 2, 2)


def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_module, "_WRITE_CHUNK_BYTES", 16)

    class Failing:
        shape, dtype = (6, 2, 2), np.dtype(np.float32)

        def __getitem__(self, key):
            if key.start >= 3:
                raise RuntimeError("disk on fire")
            return np.ones((key.stop - key.start, 2, 2), np.float32)

    new = tmp_path / "new.mrc"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_volume(new, Failing())
    assert list(tmp_path.iterdir()) == []

    old = tmp_path / "old.mrc"
    original = write_volume(old, np.full((2, 2, 2), 5.0)).read_bytes()
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_volume(old, Failing(), overwrite=True)
    assert old.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.mrc"]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"voxel_size": 0}, "voxel_size"),
        ({"voxel_size": (1, -2, 3)}, "voxel_size"),
        ({"voxel_size": (1, float("nan"), 3)}, "voxel_size"),
        ({"voxel_size": (1, 2)}, "voxel_size"),
        ({"origin": (1, 2, 3, 4)}, "origin"),
        ({"origin": (0, float("inf"), 0)}, "origin"),
    ],
)
def test_write_rejects_bad_arguments(tmp_path: Path, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        write_volume(tmp_path / "bad.mrc", np.zeros((2, 2, 2)), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_data_and_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="complex"):
        write_volume(tmp_path / "c.mrc", np.zeros((2, 2, 2), np.complex64))
    with pytest.raises(ValueError, match="shape"):
        write_volume(tmp_path / "d.mrc", np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="unsupported file name"):
        write_volume(tmp_path / "e.tif", np.zeros((2, 2, 2)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_volume(tmp_path / "missing" / "f.mrc", np.zeros((2, 2, 2)))
    assert list(tmp_path.iterdir()) == []


def test_long_label_is_trimmed(tmp_path: Path) -> None:
    out = write_volume(tmp_path / "l.mrc", np.zeros((2, 2, 2)), label="é" + "x" * 200)
    label = read_volume(out).labels[-1]
    assert len(label) == 80 and "..." in label and label.isascii()
