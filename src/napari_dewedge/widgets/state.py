"""State shared by the widgets of one viewer.

:class:`WedgeState`
    the missing-wedge geometry of a viewer. There is exactly one per viewer
    (:func:`get_wedge_state`); the inspector's slider, the estimate button and
    the dewedge widget all read and write that object, and every widget that
    draws the wedge listens to its ``changed`` signal.

:class:`SpectrumCache`
    central Fourier slices computed once per (layer, data, mode) and shared
    by all widgets (:data:`SPECTRA`). :meth:`SpectrumCache.request` computes
    them in a thread worker of the calling widget's
    :class:`~napari_dewedge.widgets._runner.TaskRunner` and calls back on the
    GUI thread; two widgets asking for one spectrum at once share one
    computation (the second worker waits for the first).

Widget registry
    :func:`register_widget` / :func:`find_widget` let a widget find the
    inspection widgets already open in a viewer (to reuse, not duplicate them).

Nothing here holds a viewer or a layer strongly: entries are keyed weakly,
so closing a viewer or deleting a layer frees everything.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from ..core.layers import geometry_of
from ..core.spectra import SpectrumSlices, central_slices
from ..core.wedge import WedgeGeometry

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "WedgeState",
    "get_wedge_state",
    "geometry_from_layer",
    "SpectrumCache",
    "SPECTRA",
    "register_widget",
    "find_widget",
    "SPECTRUM_MODES",
]

#: Spectrum modes of :func:`napari_dewedge.core.spectra.central_slices`, with labels.
SPECTRUM_MODES = {"central": "central planes", "average": "averaged"}

#: Cap on the voxels read for a spectrum: multiscale layers use the finest level below it.
MAX_SPECTRUM_VOXELS = 2**30


class WedgeState:
    """The missing-wedge geometry of one viewer.

    ``geometry`` is an immutable :class:`~napari_dewedge.core.wedge.WedgeGeometry`;
    :meth:`set` replaces it (validated) and emits ``changed(geometry)`` when it
    differs. ``origin`` says where the current value came from: ``"default"``,
    ``"metadata"`` (a layer's ``metadata["wedge"]``), ``"estimated"`` (from
    the data) or ``"user"``.
    """

    changed = Signal(object)

    def __init__(self, geometry: WedgeGeometry | None = None) -> None:
        self._geometry = geometry if geometry is not None else WedgeGeometry()
        self.origin = "default"

    @property
    def geometry(self) -> WedgeGeometry:
        return self._geometry

    @geometry.setter
    def geometry(self, value: WedgeGeometry) -> None:
        self.set(value)

    def set(
        self,
        geometry: WedgeGeometry | dict | None = None,
        *,
        tilt_min: float | None = None,
        tilt_max: float | None = None,
        tilt_axis: str | None = None,
        soft_edge: float | None = None,
        origin: str = "user",
    ) -> WedgeGeometry:
        """Replace the geometry, whole (``geometry``: a WedgeGeometry or its dict)
        or field by field; fields not given keep their value. Raises ValueError
        (from WedgeGeometry) for an invalid combination. Returns the new value."""
        if geometry is None:
            base = self._geometry
        elif isinstance(geometry, WedgeGeometry):
            base = geometry
        elif isinstance(geometry, dict):
            base = WedgeGeometry.from_dict(geometry)
        else:
            raise TypeError(f"geometry must be a WedgeGeometry or a dict, got {type(geometry).__name__}")
        new = WedgeGeometry(
            tilt_min=base.tilt_min if tilt_min is None else tilt_min,
            tilt_max=base.tilt_max if tilt_max is None else tilt_max,
            tilt_axis=base.tilt_axis if tilt_axis is None else tilt_axis,
            soft_edge=base.soft_edge if soft_edge is None else soft_edge,
        )
        self.origin = origin
        if new != self._geometry:
            self._geometry = new
            self.changed.emit(new)
        return new

    def adopt(self, layer: Any) -> WedgeGeometry | None:
        """A layer was chosen: the wedge recorded in its metadata becomes the viewer's
        wedge, unless the user or an estimate set one. Returns it (None: nothing adopted)."""
        if self.origin not in ("default", "metadata"):
            return None
        recorded = geometry_of(layer) if layer is not None else None
        if recorded is None:
            return None
        self.set(recorded, origin="metadata")
        return recorded

    def for_layer(self, layer: Any) -> WedgeGeometry:
        """The wedge that applies to ``layer``: the viewer's once it was set (by the user,
        an estimate or a layer's metadata), else the one recorded in the layer, else the default."""
        if self.origin == "default":
            recorded = geometry_of(layer) if layer is not None else None
            if recorded is not None:
                return recorded
        return self._geometry

    def reset(self) -> WedgeGeometry:
        """Back to the default (-60..60 degrees about y, hard edge)."""
        return self.set(WedgeGeometry(), origin="default")

    def __repr__(self) -> str:
        return f"WedgeState({self._geometry}, origin={self.origin!r})"


_STATES: "weakref.WeakKeyDictionary[Any, WedgeState]" = weakref.WeakKeyDictionary()


def get_wedge_state(viewer: "napari.viewer.Viewer") -> WedgeState:
    """The one :class:`WedgeState` of ``viewer`` (created on first use)."""
    if viewer is None:
        raise ValueError("get_wedge_state needs a napari viewer, got None")
    state = _STATES.get(viewer)
    if state is None:
        state = _STATES[viewer] = WedgeState()
    return state


#: The wedge recorded in a layer's metadata (``core.layers.geometry_of``).
geometry_from_layer = geometry_of


# --------------------------------------------------------------------------- spectra


class SpectrumCache:
    """Central Fourier slices per layer, computed once per data object and mode.

    Entries are keyed weakly by layer and remember the identity of the data
    they were computed from: replacing ``layer.data`` invalidates them.
    ``computations`` counts the spectra actually computed (a cheap way to
    check that moving a slider does not recompute anything).
    """

    def __init__(self) -> None:
        self._entries: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
        #: Computations in progress, by (id(data), mode): the threads asking for them meanwhile wait on these.
        self._pending: dict[tuple[int, str], Future] = {}
        self._lock = threading.Lock()
        self.computations = 0

    @staticmethod
    def _data(layer: Any) -> Any:
        from .panels import volume_of

        return volume_of(layer, MAX_SPECTRUM_VOXELS)

    def get(self, layer: Any, mode: str = "central") -> SpectrumSlices | None:
        """The cached spectrum of the layer's current data, or None."""
        _check_mode(mode)
        with self._lock:
            entry = self._entries.get(layer, {}).get(mode)
        if entry is None:
            return None
        data_ref, spectrum = entry
        return spectrum if data_ref() is self._data(layer) else None

    def put(self, layer: Any, data: Any, mode: str, spectrum: SpectrumSlices) -> None:
        """Store ``spectrum`` of ``data`` for ``layer`` (ignored when the layer
        holds other data by now)."""
        if data is not self._data(layer):
            return
        try:
            ref = weakref.ref(data)
        except TypeError:  # data that cannot be weakly referenced: hold it
            ref = (lambda d: (lambda: d))(data)
        with self._lock:
            self._entries.setdefault(layer, {})[mode] = (ref, spectrum)

    def compute(self, data: Any, mode: str = "central") -> SpectrumSlices:
        """Compute (no cache) the spectrum of an array; safe in any thread."""
        _check_mode(mode)
        spectrum = central_slices(data, mode=mode)
        with self._lock:
            self.computations += 1
        return spectrum

    def get_or_compute(self, layer: Any, mode: str = "central", data: Any = None) -> SpectrumSlices:
        """Cached spectrum, or compute and store it now (blocking; for workers).

        A computation of the same data and mode already running in another
        thread is waited for, not repeated."""
        data = self._data(layer) if data is None else data
        cached = self.get(layer, mode)
        if cached is not None:
            return cached
        spectrum = self._compute_shared(data, mode)
        self.put(layer, data, mode, spectrum)
        return spectrum

    def _compute_shared(self, data: Any, mode: str) -> SpectrumSlices:
        key = (id(data), mode)  # the caller holds data: its id is stable meanwhile
        with self._lock:
            future = self._pending.get(key)
            mine = future is None
            if mine:
                future = self._pending[key] = Future()
        if not mine:
            return future.result()
        try:
            spectrum = self.compute(data, mode)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(spectrum)
            return spectrum
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def request(
        self,
        runner: Any,
        layer: Any,
        mode: str,
        on_ready: Callable[[SpectrumSlices], None],
        on_error: Callable[[BaseException], None] | None = None,
        *,
        key: Hashable = "spectrum",
    ) -> int | None:
        """Get the spectrum of ``layer`` and pass it to ``on_ready`` on the GUI thread.

        Cached: the task ``key`` of ``runner`` (a widget's
        :class:`~napari_dewedge.widgets._runner.TaskRunner`) is cancelled,
        ``on_ready`` runs at once and None is returned. Otherwise the spectrum
        is computed (and cached) in a task ``key`` of ``runner``, superseding
        the one before, and its id is returned; the runner calls back only
        while its widget lives and only for its latest task of that key.
        """
        _check_mode(mode)
        cached = self.get(layer, mode)
        if cached is not None:
            runner.cancel(key)
            on_ready(cached)
            return None
        return runner.run(self.get_or_compute, layer, mode, self._data(layer), key=key, on_result=on_ready, on_error=on_error)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _check_mode(mode: str) -> None:
    if mode not in SPECTRUM_MODES:
        raise ValueError(f"spectrum mode must be one of {tuple(SPECTRUM_MODES)}, got {mode!r}")


#: The spectra of every layer in this process, shared by all widgets.
SPECTRA = SpectrumCache()


# --------------------------------------------------------------------------- registry

_WIDGETS: "weakref.WeakKeyDictionary[Any, weakref.WeakSet]" = weakref.WeakKeyDictionary()


def register_widget(viewer: Any, widget: Any) -> None:
    """Record ``widget`` as open in ``viewer`` (weakly)."""
    _WIDGETS.setdefault(viewer, weakref.WeakSet()).add(widget)


def find_widget(viewer: Any, cls: type) -> Any:
    """An open, live widget of type ``cls`` in ``viewer``, or None."""
    from .panels import is_alive

    for widget in list(_WIDGETS.get(viewer, ())):
        if isinstance(widget, cls) and is_alive(widget):
            return widget
    return None
