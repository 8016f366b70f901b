"""Datasets of tomograms: tables, tilt files, voxel sizes, shards."""

from __future__ import annotations

import itertools

import pytest

from napari_dewedge.core.dataset import (
    DatasetError,
    check_voxel_sizes,
    find_tilt_file,
    parse_shard,
    read_table,
    read_tilt_angles,
    shard,
)
from napari_dewedge.core.wedge import WedgeGeometry


def _touch(path):
    path.write_bytes(b"")
    return path


def test_tilt_angles_from_imod_files(tmp_path):
    tlt = tmp_path / "TS_01.tlt"
    tlt.write_text("-54.02\n -51.0\n\n0.0\n  62.5  extra\n")
    assert read_tilt_angles(tlt) == (-54.02, 62.5)
    (tmp_path / "bad.tlt").write_text("-50\nabc\n")
    with pytest.raises(DatasetError, match=r"bad.tlt, line 2: 'abc'"):
        read_tilt_angles(tmp_path / "bad.tlt")
    (tmp_path / "one.rawtlt").write_text("3\n")
    with pytest.raises(DatasetError, match="at least two"):
        read_tilt_angles(tmp_path / "one.rawtlt")
    (tmp_path / "wide.tlt").write_text("-95\n40\n")
    with pytest.raises(DatasetError, match="outside"):
        read_tilt_angles(tmp_path / "wide.tlt")


def test_tilt_file_found_beside_the_tomogram(tmp_path):
    _touch(tmp_path / "TS_01.rawtlt")
    assert find_tilt_file(tmp_path / "TS_01_rec.mrc") == tmp_path / "TS_01.rawtlt"
    _touch(tmp_path / "TS_01.tlt")  # refined angles win
    assert find_tilt_file(tmp_path / "TS_01.mrc") == tmp_path / "TS_01.tlt"
    assert find_tilt_file(tmp_path / "TS_01.rec.gz") == tmp_path / "TS_01.tlt"
    assert find_tilt_file(tmp_path / "TS_02.mrc") is None


def test_table_round_trip_with_halves_masks_and_defaults(tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("a.mrc", "a_even.mrc", "a_odd.mrc", "a_mask.mrc", "b.mrc"):
        _touch(tmp_path / "data" / name)
    table = tmp_path / "tomograms.csv"
    table.write_text(
        "tomogram,tilt_min,tilt_max,tilt_axis,even,odd,mask,voxel_size\n"
        "data/a.mrc,-54,62,x,data/a_even.mrc,data/a_odd.mrc,data/a_mask.mrc,10.5\n"
        "\n"
        f"{tmp_path / 'data' / 'b.mrc'},,,,,,,\n"
    )
    a, b = read_table(table)
    assert a.tomogram == tmp_path / "data" / "a.mrc" and a.geometry == WedgeGeometry(-54, 62, "x")
    assert a.has_halves and a.even.name == "a_even.mrc" and a.odd.name == "a_odd.mrc"
    assert a.mask.name == "a_mask.mrc" and a.voxel_size == 10.5
    assert b.geometry is None and not b.has_halves and b.mask is None and b.voxel_size is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("missing.mrc,-60,60,,,,,", r"row 1, column tomogram: file .*missing.mrc not found"),
        ("a.mrc,abc,60,,,,,", r"row 1, column tilt_min: 'abc' is not a number"),
        ("a.mrc,-60,,,,,,", r"row 1, column tilt_max: empty"),
        ("a.mrc,-60,60,z,,,,", r"row 1, columns tilt_min/tilt_max/tilt_axis"),
        ("a.mrc,,,,a.mrc,,,", r"row 1, column odd: empty"),
        ("a.mrc,,,,,,gone.mrc,", r"row 1, column mask: file .*gone.mrc not found"),
        ("a.mrc,,,,,,,-3", r"row 1, column voxel_size: -3 must be > 0"),
        (",-60,60,,,,,", r"row 1, column tomogram: empty"),
        ("a.mrc,-60,60,y,,,,,extra", r"row 1: more cells"),
    ],
)
def test_table_errors_name_the_file_row_and_column(tmp_path, row, message):
    _touch(tmp_path / "a.mrc")
    table = tmp_path / "t.csv"
    table.write_text("tomogram,tilt_min,tilt_max,tilt_axis,even,odd,mask,voxel_size\n" + row + "\n")
    with pytest.raises(DatasetError, match=message) as info:
        read_table(table)
    assert "t.csv" in str(info.value)


def test_table_header_is_checked(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("file,tilt_min\nx.mrc,3\n")
    with pytest.raises(DatasetError, match="'tomogram' column"):
        read_table(table)
    table.write_text("tomogram,angle\n")
    with pytest.raises(DatasetError, match="unknown column"):
        read_table(table)
    table.write_text("tomogram\n")
    with pytest.raises(DatasetError, match="lists no tomogram"):
        read_table(table)


def test_voxel_sizes_must_agree():
    check_voxel_sizes([("a.mrc", 10.0), ("b.mrc", 10.4)])
    with pytest.raises(DatasetError, match=r"b.mrc: voxel size 11 Å differs from a.mrc's 10 Å by more than 5 %"):
        check_voxel_sizes([("a.mrc", 10.0), ("b.mrc", 11.0)])


def test_shards_partition_the_inputs_exactly():
    items = [f"t{i}.mrc" for i in range(11)]
    for count in (1, 2, 3, 4, 11, 13):
        parts = [shard(items, i, count) for i in range(count)]
        assert sorted(itertools.chain(*parts)) == sorted(items)
        assert sum(len(p) for p in parts) == len(items)
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    assert shard(items, 1, 4) == ["t1.mrc", "t5.mrc", "t9.mrc"]
    assert parse_shard("2/8") == (2, 8)
    for bad in ("8/8", "-1/3", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
