"""MRC reading: real files, errors made on purpose, memory mapping and compression
(napari_dewedge.io.mrc, .probe, .volume)."""

from __future__ import annotations

import bz2
import gzip
import re
import shutil
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from napari_dewedge.io import (
    MrcFileNotFoundError,
    MrcPermissionError,
    MrcReadError,
    MrcReadWarning,
    Volume,
    as_float32,
    check_mrc,
    read_volume,
    require_3d,
)
from napari_dewedge.io import probe as probe_module
from napari_dewedge.io.napari_hooks import get_reader, read_layers

# --------------------------------------------------------------------------- #
# Every real file: expected shape, dtype, voxel size (z, y, x) or error text.
# --------------------------------------------------------------------------- #

GOOD = {
    "tomograms/microtubule_13pf.mrc": ((36, 206, 94), np.float32, (10.52, 10.52, 10.52)),
    "tomograms/microtubule_14pf.mrc": ((44, 136, 84), np.float32, (10.52, 10.52, 10.52)),
    "maps/betagal.mrc": ((100, 100, 100), np.float32, (3.54, 3.54, 3.54)),
    "maps/groel_emd1997.map": ((100, 100, 100), np.float32, (2.02, 2.02, 2.02)),
    # mapc/mapr/maps = 2, 1, 3: stored (z, x, y), returned (z, y, x)
    "mrc_cases/3pqr-mode0.ccp4": ((59, 69, 100), np.int8, (0.915521, 0.958532, 0.958532)),
    "mrc_cases/tiny1.map": ((3, 3, 3), np.int8, (1.0, 1.0, 1.0)),
    # old IMOD header, mode 0 with statistics 141..163: unsigned bytes
    "mrc_cases/mrc3D.mrc": ((78, 64, 32), np.uint8, (23.2, 23.2, 23.2)),
    "mrc_cases/new-head_int16.mrc": ((20, 30, 40), np.int16, (4.0, 4.0, 4.0)),
    "mrc_cases/tomo_int16.mrc": ((4, 6, 5), np.int16, (2.5, 2.5, 2.5)),
    # a single big-endian image without voxel size
    "mrc_cases/swapped_byte_order.mrc": ((2, 10), np.float32, (1.0, 1.0, 1.0)),
}
BROKEN = {
    "maps/ribosome.em": r"not an MRC file.*TOM/EM",
    "mrc_cases/emd_3197.png": r"not an MRC file.*PNG",
    "mrc_cases/empty1.map": r"empty file",
    "mrc_cases/test_data_corrupt_header.map": r"truncated data block.*34279084 bytes.*only 84",
}


def _read_quietly(path, **kwargs) -> Volume:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MrcReadWarning)
        return read_volume(path, **kwargs)


def _raw_mrcfile_data(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.open(path, permissive=True) as m:
            return np.array(m.data)


def test_every_shared_file_is_covered(shared_data: Path) -> None:
    found = {
        str(p.relative_to(shared_data))
        for sub in ("tomograms", "maps", "mrc_cases")
        for p in (shared_data / sub).iterdir()
        if p.is_file()
    }
    assert found == set(GOOD) | set(BROKEN)


@pytest.mark.parametrize("rel", sorted(GOOD))
def test_read_good_files(shared_data: Path, rel: str) -> None:
    shape, dtype, voxel = GOOD[rel]
    path = shared_data / rel
    vol = _read_quietly(path)
    assert vol.data.shape == shape
    assert vol.data.dtype == np.dtype(dtype)
    assert vol.data.dtype.isnative
    assert vol.voxel_size == pytest.approx(voxel, rel=1e-6)
    assert vol.scale == pytest.approx(voxel[3 - len(shape) :], rel=1e-6)
    assert vol.path == path
    assert vol.memory_mapped is False and not isinstance(vol.data, np.memmap)
    assert vol.header["mode"] in (0, 1, 2)
    assert all(isinstance(label, str) for label in vol.header["labels"])
    meta = vol.layer_metadata()
    assert meta["path"] == str(path)
    assert meta["voxel_size"] == vol.voxel_size
    assert meta["header"]["nx"] == vol.header["nx"]
    # the values are those mrcfile itself reads (up to the axis order / signedness)
    raw = _raw_mrcfile_data(path)
    assert vol.data.size == raw.size
    expected = raw.astype(raw.dtype.newbyteorder("="))
    got = np.ascontiguousarray(vol.data).view(expected.dtype)  # uint8 seen as stored int8
    assert np.array_equal(np.sort(got, axis=None), np.sort(expected, axis=None))


@pytest.mark.parametrize("rel", sorted(BROKEN))
def test_read_broken_files_raise_clear_errors(shared_data: Path, rel: str) -> None:
    path = shared_data / rel
    with pytest.raises(MrcReadError, match=BROKEN[rel]) as info:
        read_volume(path)
    assert str(info.value).startswith(str(path))
    assert isinstance(info.value, ValueError)
    assert get_reader(str(path)) is None


def test_em_file_named_as_mrc_is_still_recognised(shared_data: Path, tmp_path: Path) -> None:
    fake = tmp_path / "ribosome.mrc"
    shutil.copy(shared_data / "maps/ribosome.em", fake)
    with pytest.raises(MrcReadError, match=r"not an MRC file.*TOM/EM"):
        read_volume(fake)
    assert get_reader(str(fake)) is None


def test_axis_reorder_of_ccp4_map(shared_data: Path) -> None:
    path = shared_data / "mrc_cases/3pqr-mode0.ccp4"
    vol = _read_quietly(path)
    with mrcfile.open(path) as m:
        raw = np.array(m.data)  # (sections=z, rows=x, columns=y)
        assert (int(m.header.mapc), int(m.header.mapr)) == (2, 1)
    assert np.array_equal(vol.data, raw.transpose(0, 2, 1))
    assert vol.header["ispg"] == 155
    assert any("mapc/mapr/maps" in w for w in vol.warnings)
    # origin from n[xyz]start (columns are y, rows are x here) times the voxel size
    assert vol.origin == pytest.approx((13 * 0.915521, -43 * 0.958532, -98 * 0.958532), rel=1e-5)


def test_unsigned_bytes_match_header_statistics(shared_data: Path) -> None:
    with pytest.warns(MrcReadWarning, match="unsigned"):
        vol = read_volume(shared_data / "mrc_cases/mrc3D.mrc")
    assert vol.data.min() == vol.header["dmin"] == 141
    assert vol.data.max() == vol.header["dmax"] == 163
    assert any(label.startswith("SerialEM") for label in vol.labels)


def test_imod_header_fields(shared_data: Path) -> None:
    vol = _read_quietly(shared_data / "mrc_cases/new-head_int16.mrc")
    assert vol.origin == (-90.0, -964.0, -944.0)
    assert any(label.startswith("TILT: Tomographic reconstruction") for label in vol.labels)
    h = vol.header
    assert (h["nx"], h["ny"], h["nz"]) == (40, 30, 20)
    assert (h["mapc"], h["mapr"], h["maps"]) == (1, 2, 3)
    assert h["cella"] == pytest.approx((160.0, 120.0, 80.0))
    keys = ("mx", "my", "mz", "ispg", "nlabl", "exttyp", "nsymbt", "machst")
    for key in keys + ("dmin", "dmax", "dmean", "rms"):
        assert key in h


def test_swapped_byte_order_gives_native_data(shared_data: Path) -> None:
    path = shared_data / "mrc_cases/swapped_byte_order.mrc"
    with pytest.warns(MrcReadWarning, match="voxel size"):
        vol = read_volume(path)
    raw = _raw_mrcfile_data(path)
    assert raw.dtype.byteorder == ">"
    expected = raw.astype(np.float32)
    assert vol.data.dtype == np.dtype(np.float32) and vol.data.dtype.isnative
    assert np.array_equal(vol.data, expected)
    assert vol.voxel_size == (1.0, 1.0, 1.0)
    with pytest.raises(MrcReadError, match="2D image"):
        require_3d(vol.data, path)


def test_swapped_byte_order_is_converted_even_when_mapping(shared_data: Path) -> None:
    with pytest.warns(MrcReadWarning) as record:
        vol = read_volume(shared_data / "mrc_cases/swapped_byte_order.mrc", mmap=True)
    assert any("converted in memory" in str(w.message) for w in record)
    assert not vol.memory_mapped and not isinstance(vol.data, np.memmap)
    assert vol.data.dtype.isnative
    assert any("memory-mapped" in w for w in vol.warnings)


# --------------------------------------------------------------------------- #
# Errors made on purpose
# --------------------------------------------------------------------------- #


def _write_float_file(path: Path, shape=(4, 5, 6), voxel=2.0) -> np.ndarray:
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel
    return data


def _patch_int32(path: Path, offset: int, value: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(np.int32(value).astype("<i4").tobytes())


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mrc"
    with pytest.raises(MrcFileNotFoundError, match="file not found") as info:
        read_volume(path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, MrcReadError)
    assert str(info.value).startswith(str(path))
    assert get_reader(str(path)) is None


def test_folder_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "stack.mrc"
    folder.mkdir()
    with pytest.raises(MrcReadError, match="folder"):
        read_volume(folder)
    assert get_reader(str(folder)) is None


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.mrc"
    _write_float_file(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(probe_module, "open", refuse, raising=False)
    with pytest.raises(MrcPermissionError, match="permission denied") as info:
        read_volume(path)
    assert isinstance(info.value, PermissionError)
    assert str(info.value).startswith(str(path))
    assert get_reader(str(path)) is None


def test_unknown_mode(tmp_path: Path) -> None:
    path = tmp_path / "mode7.mrc"
    _write_float_file(path)
    _patch_int32(path, 12, 7)
    with pytest.raises(MrcReadError, match="unknown or unsupported MRC mode 7"):
        read_volume(path)
    assert get_reader(str(path)) is None


def test_complex_modes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "fft.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.ones((4, 4, 4), dtype=np.complex64))
    with pytest.raises(MrcReadError, match=r"complex data \(MRC mode 4"):
        read_volume(path)
    _patch_int32(path, 12, 3)
    with pytest.raises(MrcReadError, match=r"complex data \(MRC mode 3"):
        read_volume(path)


def test_truncated_data_block(tmp_path: Path) -> None:
    path = tmp_path / "cut.mrc"
    _write_float_file(path, shape=(8, 8, 8))
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(MrcReadError, match=r"truncated data block.*2048 bytes.*only 1948 bytes"):
        read_volume(path)
    assert get_reader(str(path)) is None


def test_short_junk_and_text_files(tmp_path: Path) -> None:
    short = tmp_path / "short.mrc"
    short.write_bytes(b"\x01\x02\x03" * 10)
    with pytest.raises(MrcReadError, match="not an MRC file.*1024-byte header"):
        read_volume(short)
    junk = tmp_path / "junk.map"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MrcReadError, match="not an MRC file"):
        read_volume(junk)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for p in (short, junk, text):
        assert get_reader(str(p)) is None


def test_missing_voxel_size_defaults_to_one_angstrom(tmp_path: Path) -> None:
    path = tmp_path / "novoxel.mrc"
    data = _write_float_file(path, voxel=0.0)
    with pytest.warns(MrcReadWarning, match="no voxel size"):
        vol = read_volume(path)
    assert vol.voxel_size == (1.0, 1.0, 1.0)
    assert any("voxel size" in w for w in vol.warnings)
    assert np.array_equal(vol.data, data)


def test_require_3d() -> None:
    vol = np.zeros((4, 5, 6), dtype=np.int16)
    assert require_3d(vol, "tomo.mrc") is vol
    with pytest.raises(MrcReadError, match=r"^tomo.mrc: is a 2D image"):
        require_3d(np.zeros((5, 6)), "tomo.mrc")
    with pytest.raises(ValueError, match="2D image.*more than one section"):
        require_3d(np.zeros((1, 5, 6)), "section.mrc")
    with pytest.raises(ValueError, match="4 dimensions"):
        require_3d(np.zeros((2, 3, 5, 6)), "stack.mrcs")


def test_as_float32_converts_only_when_needed() -> None:
    f = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert as_float32(f) is f or np.shares_memory(as_float32(f), f)
    assert not np.shares_memory(as_float32(f, copy=True), f)
    i = np.arange(-12, 12, dtype=np.int16).reshape(2, 3, 4)
    out = as_float32(i)
    assert out.dtype == np.float32 and np.array_equal(out, i)
    big = f.astype(">f4")
    out = as_float32(big)
    assert out.dtype == np.dtype(np.float32) and out.dtype.isnative and np.array_equal(out, f)


# --------------------------------------------------------------------------- #
# Memory mapping and compression
# --------------------------------------------------------------------------- #


def test_memory_mapping_above_threshold(shared_data: Path) -> None:
    path = shared_data / "tomograms/microtubule_14pf.mrc"
    loaded = read_volume(path)
    assert not loaded.memory_mapped
    mapped = read_volume(path, mmap_threshold_bytes=1024)
    assert mapped.memory_mapped and isinstance(mapped.data, np.memmap)
    assert not mapped.data.flags.writeable
    assert np.array_equal(mapped.data, loaded.data)
    assert read_volume(path, mmap_threshold_bytes=1024, mmap=False).memory_mapped is False
    assert isinstance(read_volume(path, mmap=True).data, np.memmap)


def test_memory_mapped_views_keep_dtype_and_axes(shared_data: Path) -> None:
    ccp4 = _read_quietly(shared_data / "mrc_cases/3pqr-mode0.ccp4", mmap=True)
    assert ccp4.memory_mapped and isinstance(ccp4.data, np.memmap)
    assert np.array_equal(ccp4.data, _read_quietly(shared_data / "mrc_cases/3pqr-mode0.ccp4").data)
    bytes_ = _read_quietly(shared_data / "mrc_cases/mrc3D.mrc", mmap=True)
    assert bytes_.memory_mapped and bytes_.data.dtype == np.uint8


@pytest.mark.parametrize("opener,suffix", [(gzip.open, ".gz"), (bz2.open, ".bz2")])
@pytest.mark.parametrize("rel", ["tomograms/microtubule_14pf.mrc", "mrc_cases/new-head_int16.mrc"])
def test_compressed_copies_read_the_same(
    shared_data: Path, tmp_path: Path, opener, suffix, rel
) -> None:
    src = shared_data / rel
    dst = tmp_path / (src.name + suffix)
    with open(src, "rb") as fin, opener(dst, "wb", compresslevel=1) as fout:
        shutil.copyfileobj(fin, fout)
    plain = _read_quietly(src)
    packed = _read_quietly(dst, mmap=True, mmap_threshold_bytes=0)
    assert not packed.memory_mapped and not isinstance(packed.data, np.memmap)
    assert any("cannot be memory-mapped" in w for w in packed.warnings)
    assert np.array_equal(packed.data, plain.data)
    assert packed.data.dtype == plain.data.dtype
    assert packed.voxel_size == plain.voxel_size and packed.origin == plain.origin
    assert packed.header["compression"] in ("gzip", "bzip2")
    assert get_reader(str(dst)) is read_layers
    layer = read_layers(str(dst))[0]
    assert layer[1]["name"] == src.stem


def test_truncated_gzip(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "tomograms/microtubule_14pf.mrc"
    packed = gzip.compress(src.read_bytes(), compresslevel=1)
    dst = tmp_path / "cut.mrc.gz"
    dst.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(MrcReadError, match=r"^" + re.escape(str(dst)) + r": truncated"):
        read_volume(dst)


@pytest.mark.parametrize("compress,suffix", [(gzip.compress, ".gz"), (bz2.compress, ".bz2")])
def test_corrupt_compressed_stream(shared_data: Path, tmp_path: Path, compress, suffix) -> None:
    packed = bytearray(compress((shared_data / "mrc_cases/tiny1.map").read_bytes()))
    packed[len(packed) // 2 :] = b"\x00" * (len(packed) - len(packed) // 2)
    dst = tmp_path / f"tiny1.map{suffix}"
    dst.write_bytes(bytes(packed))
    with pytest.raises(MrcReadError, match=r"corrupt|truncated") as info:
        read_volume(dst)
    assert str(info.value).startswith(str(dst))


def test_absurd_dimensions_are_reported_without_overflow(tmp_path: Path) -> None:
    path = tmp_path / "huge.mrc"
    _write_float_file(path, shape=(2, 2, 2))
    for offset in (0, 4, 8):
        _patch_int32(path, offset, 2**31 - 1)
    with pytest.raises(MrcReadError, match=r"truncated data block.*2147483647 x 2147483647"):
        read_volume(path)


def test_check_mrc_returns_header(shared_data: Path) -> None:
    header = check_mrc(shared_data / "tomograms/microtubule_13pf.mrc")
    assert (header["nz"], header["ny"], header["nx"]) == (36, 206, 94)
    assert header["labels"][-1].startswith("converted from cylindra")


def test_io_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, napari_dewedge.io.napari_hooks; "
        "print(any(m in sys.modules for m in ('napari', 'torch', 'qtpy', 'PyQt6')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mrc_module_keeps_the_public_names() -> None:
    """``from napari_dewedge.io.mrc import X`` works for every public name of the package."""
    import napari_dewedge.io as io_package
    from napari_dewedge.io import mrc

    assert sorted(mrc.__all__) == sorted(io_package.__all__)
    for name in io_package.__all__:
        assert getattr(mrc, name) is getattr(io_package, name)
