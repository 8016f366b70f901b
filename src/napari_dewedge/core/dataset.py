"""A dataset of tomograms: what a model is trained on, as the peers do.

A dataset is a list of :class:`TomogramEntry`: a tomogram file with its own
wedge, voxel size and, optionally, even/odd half tomograms and a mask of where
subtomograms may be drawn. It comes from the command line's file list or from a
table (:func:`read_table`), a CSV file with the columns::

    tomogram, tilt_min, tilt_max, tilt_axis, even, odd, mask, voxel_size

where paths are relative to the table and an empty cell means "the default" or
"not given". Without a tilt range, the range comes from an IMOD ``.tlt`` or
``.rawtlt`` file beside the tomogram (:func:`find_tilt_file`, the minimum and
maximum of its angles). Every problem is a :class:`DatasetError` that names
the file, and for a table the row and the column.

Also here: :func:`parse_shard` and :func:`shard` (``--shard I/N``: every N-th
input starting at I, for cluster job arrays).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .wedge import WedgeGeometry

__all__ = [
    "TABLE_COLUMNS",
    "TILT_SUFFIXES",
    "VOXEL_SIZE_TOLERANCE",
    "DatasetError",
    "TomogramEntry",
    "TomogramData",
    "as_dataset",
    "read_tilt_angles",
    "find_tilt_file",
    "read_table",
    "check_voxel_sizes",
    "parse_shard",
    "shard",
]

TABLE_COLUMNS = ("tomogram", "tilt_min", "tilt_max", "tilt_axis", "even", "odd", "mask", "voxel_size")
TILT_SUFFIXES = (".tlt", ".rawtlt")
#: Relative difference of voxel sizes above which tomograms are not trained together
#: (and applying a model trained on other voxels warns).
VOXEL_SIZE_TOLERANCE = 0.05
#: Name endings that tomograms have and their tilt files do not (``TS_01_rec.mrc`` beside ``TS_01.tlt``).
_TOMOGRAM_ENDINGS = ("_full_rec", "_rec", "_flipped", "_bin2", "_bin4", "_bin8")

T = TypeVar("T")


class DatasetError(ValueError):
    """A problem with a dataset's files or table; the message names the file (row, column)."""


@dataclass(frozen=True)
class TomogramEntry:
    """One tomogram of a dataset: its file, wedge, optional halves, mask and voxel size.

    ``geometry`` None means "not given": the caller's default applies.
    ``voxel_size`` (Å, one number) None means "from the file's header".
    """

    tomogram: Path
    geometry: WedgeGeometry | None = None
    even: Path | None = None
    odd: Path | None = None
    mask: Path | None = None
    voxel_size: float | None = None

    @property
    def has_halves(self) -> bool:
        return self.even is not None and self.odd is not None


@dataclass(frozen=True, eq=False)
class TomogramData:
    """A tomogram in memory (or memory-mapped), ready to train on.

    ``even``/``odd`` are its half tomograms (same shape), ``mask`` where
    subtomograms may be drawn (same shape, nonzero = allowed; None: the
    automatic foreground mask). Shapes are checked here, with the name.
    """

    volume: Any
    geometry: WedgeGeometry
    name: str = "volume"
    voxel_size: tuple[float, float, float] | None = None
    even: Any = None
    odd: Any = None
    mask: Any = None

    def __post_init__(self) -> None:
        shape = tuple(np.shape(self.volume))
        if len(shape) != 3:
            raise DatasetError(f"{self.name}: a tomogram is 3D, this one has shape {shape}")
        if (self.even is None) != (self.odd is None):
            raise DatasetError(f"{self.name}: give both half tomograms (even and odd) or neither")
        for what in ("even", "odd", "mask"):
            other = getattr(self, what)
            if other is not None and tuple(np.shape(other)) != shape:
                raise DatasetError(f"{self.name}: the {what} volume has shape {tuple(np.shape(other))}, the "
                                   f"tomogram {shape}; they must match voxel for voxel")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(np.shape(self.volume))  # type: ignore[return-value]

    @property
    def has_halves(self) -> bool:
        return self.even is not None


def as_dataset(data: Any, geometry: WedgeGeometry | None = None, *, voxel_size: Any = None,
               name: str = "volume") -> list[TomogramData]:
    """A list of :class:`TomogramData` from one array (with ``geometry``), one item, or a list."""
    if isinstance(data, TomogramData):
        return [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, TomogramData) for d in data):
        return list(data)
    if geometry is None:
        raise ValueError("a bare volume needs its wedge geometry")
    vs = None
    if voxel_size is not None:
        vs = tuple(float(v) for v in np.broadcast_to(np.asarray(voxel_size, float), (3,)))
    return [TomogramData(data, geometry, name, vs)]


# --------------------------------------------------------------------------------------
# Tilt angles
# --------------------------------------------------------------------------------------


def read_tilt_angles(path: str | Path) -> tuple[float, float]:
    """``(min, max)`` of the tilt angles in an IMOD ``.tlt``/``.rawtlt`` file (one angle a line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read the tilt angles ({exc.strerror or exc})") from None
    angles = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        try:
            angle = float(words[0])
        except ValueError:
            raise DatasetError(f"{p}, line {number}: {words[0]!r} is not a tilt angle") from None
        if not math.isfinite(angle) or abs(angle) > 90:
            raise DatasetError(f"{p}, line {number}: tilt angle {angle:g} is outside -90..90 degrees")
        angles.append(angle)
    if len(angles) < 2:
        raise DatasetError(f"{p}: holds {len(angles)} tilt angle(s); a tilt series has at least two")
    return min(angles), max(angles)


def find_tilt_file(tomogram: str | Path) -> Path | None:
    """The ``.tlt`` or ``.rawtlt`` file beside a tomogram, or None.

    ``TS_01.mrc``, ``TS_01_rec.mrc`` and ``TS_01.rec`` all find ``TS_01.tlt``
    (a ``.tlt`` is preferred to a ``.rawtlt``: it holds the refined angles).
    """
    p = Path(tomogram)
    name = p.name
    for ending in (".gz", ".bz2"):
        if name.endswith(ending):
            name = name[: -len(ending)]
    stem = Path(name).stem
    stems = [stem] + [stem[: -len(e)] for e in _TOMOGRAM_ENDINGS if stem.endswith(e) and len(stem) > len(e)]
    for suffix in TILT_SUFFIXES:
        for candidate in stems:
            path = p.with_name(candidate + suffix)
            if path.is_file():
                return path
    return None


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def _number(table: Path, index: int, row: dict, column: str) -> float | None:
    text = _cell(row, column)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{table}, row {index}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DatasetError(f"{table}, row {index}, column {column}: {text!r} is not a finite number")
    return value


def _path(table: Path, index: int, row: dict, column: str) -> Path | None:
    text = _cell(row, column)
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = table.parent / path
    if not path.is_file():
        raise DatasetError(f"{table}, row {index}, column {column}: file {path} not found")
    return path


def read_table(path: str | Path) -> list[TomogramEntry]:
    """The tomograms listed in a CSV table (see the module docstring for its columns).

    Rows are counted from 1 for the first row under the header, as a
    spreadsheet shows them less the header; blank rows are skipped.
    """
    table = Path(path).expanduser()
    try:
        with open(table, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = list(reader)
    except OSError as exc:
        raise DatasetError(f"{table}: cannot read the table ({exc.strerror or exc})") from None
    except csv.Error as exc:
        raise DatasetError(f"{table}: not a CSV table ({exc})") from None
    if "tomogram" not in header:
        raise DatasetError(f"{table}: the header must name a 'tomogram' column; the columns are "
                           f"{', '.join(TABLE_COLUMNS)}")
    unknown = [h for h in header if h and h not in TABLE_COLUMNS]
    if unknown:
        raise DatasetError(f"{table}: unknown column(s) {', '.join(unknown)}; the columns are "
                           f"{', '.join(TABLE_COLUMNS)}")
    entries = []
    for index, row in enumerate(rows, start=1):
        if not any(_cell(row, c) for c in header if c):
            continue
        if None in row:  # more cells than the header has columns
            raise DatasetError(f"{table}, row {index}: more cells than the header's {len(header)} columns")
        tomogram = _path(table, index, row, "tomogram")
        if tomogram is None:
            raise DatasetError(f"{table}, row {index}, column tomogram: empty; every row names a tomogram")
        lo, hi = _number(table, index, row, "tilt_min"), _number(table, index, row, "tilt_max")
        axis = _cell(row, "tilt_axis") or "y"
        geometry = None
        if (lo is None) != (hi is None):
            missing = "tilt_max" if hi is None else "tilt_min"
            raise DatasetError(f"{table}, row {index}, column {missing}: empty; give both tilt_min and tilt_max "
                               "or neither")
        if lo is not None:
            try:
                geometry = WedgeGeometry(lo, hi, axis)
            except ValueError as exc:
                raise DatasetError(f"{table}, row {index}, columns tilt_min/tilt_max/tilt_axis: {exc}") from None
        elif _cell(row, "tilt_axis") and axis not in ("x", "y"):
            raise DatasetError(f"{table}, row {index}, column tilt_axis: {axis!r}; choose x or y")
        even, odd = _path(table, index, row, "even"), _path(table, index, row, "odd")
        if (even is None) != (odd is None):
            missing = "odd" if odd is None else "even"
            raise DatasetError(f"{table}, row {index}, column {missing}: empty; give both halves or neither")
        voxel = _number(table, index, row, "voxel_size")
        if voxel is not None and voxel <= 0:
            raise DatasetError(f"{table}, row {index}, column voxel_size: {voxel:g} must be > 0")
        entries.append(TomogramEntry(tomogram, geometry, even, odd, _path(table, index, row, "mask"), voxel))
    if not entries:
        raise DatasetError(f"{table}: lists no tomogram")
    return entries


def check_voxel_sizes(named_sizes: Sequence[tuple[str, float]], tolerance: float = VOXEL_SIZE_TOLERANCE) -> None:
    """Refuse tomograms whose voxel sizes differ by more than ``tolerance`` (relative)."""
    if len(named_sizes) < 2:
        return
    ref_name, ref = named_sizes[0]
    for name, size in named_sizes[1:]:
        if abs(size / ref - 1) > tolerance:
            raise DatasetError(
                f"{name}: voxel size {size:g} Å differs from {ref_name}'s {ref:g} Å by more than "
                f"{100 * tolerance:g} %; train tomograms of one pixel size together (bin them alike first)")


# --------------------------------------------------------------------------------------
# Shards (cluster job arrays)
# --------------------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)``, with 0 <= I < N."""
    try:
        first, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard takes I/N (e.g. 0/4, the first of 4 shards), got {text!r}") from None
    if count < 1 or not 0 <= first < count:
        raise ValueError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return first, count


def shard(items: Sequence[T], index: int, count: int) -> list[T]:
    """Every ``count``-th item starting at ``index``: shards 0..count-1 partition ``items``."""
    return list(items[index::count])
