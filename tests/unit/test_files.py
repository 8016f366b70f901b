"""Atomic output files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from napari_dewedge.core.files import atomic_output


def test_atomic_output_replaces_the_target_with_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_output(target, "w", encoding="utf-8") as fh:
        fh.write("new")
        assert target.read_text() == "old"  # nothing at the target until the end
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_output_keeps_the_old_file_and_no_leftovers_on_error(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
