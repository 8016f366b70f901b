"""MRC reading, writing and the napari reader/writer hooks (called directly)."""

from __future__ import annotations

import bz2
import gzip
import io
import os
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
    write_volume,
)
from napari_dewedge.io import probe as probe_module
from napari_dewedge.io import write as write_module
from napari_dewedge.io.napari_hooks import get_reader, read_layers, write_mrc

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
