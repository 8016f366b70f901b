"""One thread-worker lifecycle for every widget: :class:`TaskRunner`.

A widget makes one (``self.runner = TaskRunner(self, viewer)``) and starts its
background work with :meth:`TaskRunner.run`: keyed tasks (a new one supersedes
the running one of its key, whose later results are dropped by task id),
callbacks on the GUI thread only while the owner lives and never nested (what
arrives during a callback waits for its end), callback exceptions shown as
napari notifications, a generator's items coalesced on request, a napari
progress bar, and shutdown when the owner is destroyed or the window closes.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer, Signal

from .panels import is_alive

__all__ = ["TaskRunner"]

_log = logging.getLogger(__name__)
_ids = itertools.count(1)


def _report(exc: BaseException, where: str) -> None:
    """Show an exception as a napari notification (never raise it into Qt)."""
    _log.error("%s: %s", where, exc, exc_info=exc)
    try:
        from napari.utils.notifications import show_error

        show_error(f"{where}: {exc}")
    except Exception:  # noqa: BLE001 - no napari notifications here: the log has it
        pass


def _run_worker(worker: Any) -> None:
    """A worker's ``run`` without superqt's capture of its warnings.

    superqt's ``WorkerBase.run`` wraps the work in ``warnings.catch_warnings``
    and points the process-wide ``warnings.showwarning`` at the worker: two
    workers that overlap restore each other's hook out of order, and the
    process keeps one that calls a deleted worker's signals (the next warning,
    e.g. at exit, raises inside Qt and aborts the process). Here a warning in
    a worker goes to the process's hook (napari's notifications post it to
    the GUI thread), and a ``RuntimeError`` of the work (a CUDA out-of-memory
    error is one) is an error like any other: superqt drops it, with
    ``finished``, as the sign of a deleted worker, and the task never ends.
    """
    try:
        worker.started.emit()
        worker._running = True
        try:
            result = worker.work()
            if isinstance(result, Exception):
                raise result
            if not worker.abort_requested:
                worker.returned.emit(result)
        except Exception as exc:  # noqa: BLE001 - delivered to the GUI thread as ``errored``
            worker.errored.emit(exc)
        worker._running = False
        worker.finished.emit()
        worker._finished.emit(worker)
    except RuntimeError as exc:  # its signals are deleted (the application is closing): no one to tell
        _log.warning("a background task ended after its worker was deleted: %s", exc)


@functools.cache
def _worker_classes() -> tuple[type, type]:
    """napari's generator and function workers with :func:`_run_worker`; the generator
    worker closes its generator in the worker thread when quit, so the generator's
    ``finally`` blocks run there and at once."""
    from napari.qt.threading import FunctionWorker, GeneratorWorker

    class ClosingGeneratorWorker(GeneratorWorker):
        run = _run_worker

        def work(self) -> Any:
            try:
                return super().work()
            finally:
                if self.abort_requested:
                    try:
                        self._gen.close()
                    except Exception as exc:  # noqa: BLE001
                        _log.warning("closing a quit generator raised %r", exc)

    class PlainFunctionWorker(FunctionWorker):
        run = _run_worker

    return ClosingGeneratorWorker, PlainFunctionWorker


class _Task:
    def __init__(self, key: Hashable, worker: Any, callbacks: dict, throttle_s: float | None,
                 progress_of: Callable | None, on_cancel: Callable | None) -> None:  # fmt: skip
        self.id = next(_ids)
        self.key = self.id if key is None else key
        self.worker, self.callbacks, self.throttle_s = worker, callbacks, throttle_s
        self.progress_of, self.on_cancel = progress_of, on_cancel
        self.pending: list[Any] = []
        self.count, self.last = 0, 0.0
        self.timer: QTimer | None = None
        self.pbar: Any = None

    def close_bar(self) -> None:
        pbar, self.pbar = self.pbar, None
        if pbar is not None:
            try:
                pbar.close()
            except Exception:  # noqa: BLE001 - closed already
                pass

    def stop(self) -> None:
        """Ask the task to end; touches no widget (safe while the owner is destroyed)."""
        for action in (self.on_cancel, self.worker.quit):
            try:
                if action is not None:
                    action()
            except RuntimeError:  # the worker's Qt side is gone already
                pass
            except Exception as exc:  # noqa: BLE001
                _report(exc, "Stopping a background task")
        self.close_bar()
        timer, self.timer = self.timer, None
        if timer is not None and is_alive(timer):
            timer.stop()


def _stop_all(tasks: dict[Hashable, _Task]) -> None:
    for task in list(tasks.values()):
        task.stop()
    tasks.clear()


class TaskRunner(QObject):
    """Runs the background tasks of ``owner``, its Qt parent (it dies with it).

    With ``viewer``, the runner watches the viewer's main window and calls
    :meth:`shutdown` once it has closed. ``finished(key)`` is emitted when the
    current task of ``key`` has ended (returned, raised, or cancelled with
    :meth:`cancel`), after its callbacks; not for a superseded task (its key
    is busy with the new one), nor on :meth:`shutdown`.
    """

    finished = Signal(object)

    def __init__(self, owner: QObject, viewer: Any = None) -> None:
        super().__init__(owner)
        self._owner = weakref.ref(owner)
        self._tasks: dict[Hashable, _Task] = {}
        self._live: set[Any] = set()  # workers whose thread has not ended (cancelled ones too)
        self._queue: deque[Callable[[], Any]] = deque()
        self._dispatching = False
        self.closed = False
        tasks = self._tasks  # not self: these run while the Qt objects are being destroyed
        owner.destroyed.connect(lambda *_: _stop_all(tasks))
        self.destroyed.connect(lambda *_: _stop_all(tasks))
        window = getattr(getattr(viewer, "window", None), "_qt_window", None)
        self._window = weakref.ref(window) if isinstance(window, QObject) else None
        if self._window is not None:
            window.installEventFilter(self)

    # ------------------------------------------------------------------ API

    def run(self, func: Callable, *args: Any, key: Hashable = None,
            on_result: Callable[[Any], Any] | None = None, on_yield: Callable[[Any], Any] | None = None,
            on_error: Callable[[BaseException], Any] | None = None, progress: tuple[int | None, str] | None = None,
            progress_of: Callable[[Any], int | None] | None = None, throttle_s: float | None = None,
            on_cancel: Callable[[], Any] | None = None, **kwargs: Any) -> int | None:  # fmt: skip
        """Run ``func(*args, **kwargs)`` in a thread worker; return the task id
        (None after :meth:`shutdown`). Keywords not named here go to ``func``.

        ``key`` (default: the task id) names the task; a current task of that
        key is superseded. ``on_result(value)`` gets the return value (a
        generator's too), ``on_error(exc)`` an exception of ``func`` (default:
        a notification). ``on_yield`` gets each item of a generator; with
        ``throttle_s``, a *list* of all items since the call before (oldest
        first, never empty, the latest last) at most every ``throttle_s``
        seconds: the first at once, the rest after the interval, any waiting
        before ``on_result``/``on_error``. No item is lost.

        ``progress=(total, desc)`` opens a napari progress bar (total 0/None:
        indeterminate) that closes however the task ends; on each delivery it
        moves to the number of items yielded, or to ``progress_of(item)`` of
        the latest item where that is not None. See :meth:`progress_bar`.
        Cancelling (:meth:`cancel`, a superseding task, :meth:`shutdown`) calls
        ``on_cancel()`` (e.g. a job's stop flag) and quits the worker: a
        generator stops at its next yield and is closed, a function runs on.
        """
        if self.closed:
            return None
        from napari.qt.threading import create_worker

        cls = _worker_classes()[0 if inspect.isgeneratorfunction(func) else 1]
        worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True, _worker_class=cls, **kwargs)
        callbacks = {"result": on_result, "yield": on_yield, "error": on_error}
        task = _Task(key, worker, callbacks, throttle_s, progress_of, on_cancel)
        old = self._tasks.pop(task.key, None)
        if old is not None:
            old.stop()
        self._tasks[task.key] = task
        if progress is not None:
            from napari.utils import progress as napari_progress

            task.pbar = napari_progress(total=progress[0] or 0, desc=progress[1])
        if hasattr(worker, "yielded"):
            worker.yielded.connect(lambda item: self._post(self._on_yielded, task, item))
        worker.returned.connect(lambda value: self._post(self._on_end, task, "result", value))
        worker.errored.connect(lambda exc: self._post(self._on_end, task, "error", exc))
        worker.finished.connect(lambda: self._post(self._on_worker_finished, task))
        self._live.add(worker)
        worker.start()
        return task.id

    def cancel(self, key: Hashable) -> bool:
        """Stop the task of ``key`` (what it sends later is dropped) and emit
        ``finished(key)``. False when no task of that key is current."""
        task = self._tasks.pop(key, None)
        if task is None:
            return False
        task.stop()
        self._emit_finished(key)
        return True

    def cancel_all(self) -> None:
        for key in list(self._tasks):
            self.cancel(key)

    def busy(self, key: Hashable = None) -> bool:
        """Whether a task of ``key`` (of any key when None) is current."""
        return bool(self._tasks) if key is None else key in self._tasks

    def current(self, key: Hashable) -> int | None:
        """The id of the current task of ``key``, or None."""
        task = self._tasks.get(key)
        return None if task is None else task.id

    def running(self) -> int:
        """Worker threads not ended yet, cancelled and superseded ones included."""
        return len(self._live)

    def progress_bar(self, key: Hashable) -> Any:
        """The napari progress bar of the current task of ``key``, or None."""
        task = self._tasks.get(key)
        return None if task is None else task.pbar

    def shutdown(self) -> None:
        """Stop every task and refuse new ones (:attr:`closed`); emits nothing.
        Runs by itself when the owner is destroyed or the viewer's window closes."""
        self.closed = True
        _stop_all(self._tasks)

    # ------------------------------------------------------------------ the viewer's window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Close and self._window is not None and obj is self._window():
            QTimer.singleShot(0, self._after_window_close)
        return super().eventFilter(obj, event)

    def _after_window_close(self) -> None:
        """Shut down unless the close was refused (the window is still shown)."""
        window = self._window() if self._window is not None else None
        if is_alive(self) and (window is None or not is_alive(window) or not window.isVisible()):
            self.shutdown()

    # ------------------------------------------------------------------ what the workers send

    def _post(self, handler: Callable, *args: Any) -> None:
        self._queue.append(functools.partial(handler, *args))
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._queue:
                self._queue.popleft()()
        finally:
            self._dispatching = False

    def _current(self, task: _Task) -> bool:
        owner = self._owner()
        return self._tasks.get(task.key) is task and owner is not None and is_alive(owner) and is_alive(self)

    def _call(self, task: _Task, kind: str, *args: Any) -> None:
        callback = task.callbacks[kind]
        try:
            if callback is not None:
                callback(*args)
            elif kind == "error":
                _report(args[0], f"Background task {task.key!r} failed")
        except Exception as exc:  # noqa: BLE001 - reported, never raised into Qt
            _report(exc, f"Error in the {kind} callback of task {task.key!r}")

    def _on_yielded(self, task: _Task, item: Any) -> None:
        if not self._current(task):
            return
        task.count += 1
        task.pending.append(item)
        if task.throttle_s is None:
            self._flush(task)
            return
        wait = task.last + task.throttle_s - time.monotonic()
        if wait <= 0:
            self._flush(task)
            return
        if task.timer is None:
            task.timer = QTimer(self)
            task.timer.setSingleShot(True)
            task.timer.timeout.connect(lambda: self._post(lambda: self._current(task) and self._flush(task)))
        if not task.timer.isActive():
            task.timer.start(max(1, round(wait * 1000)))

    def _flush(self, task: _Task) -> None:
        items, task.pending = task.pending, []
        if not items:
            return
        task.last = time.monotonic()
        pbar = task.pbar
        if pbar is not None:
            n = task.count
            if task.progress_of is not None:
                n = next((p for p in map(task.progress_of, reversed(items)) if p is not None), pbar.n)
            if int(n) != pbar.n:
                pbar.update(int(n) - pbar.n)
        self._call(task, "yield", items if task.throttle_s is not None else items[0])

    def _on_end(self, task: _Task, kind: str, value: Any) -> None:
        if not self._current(task):
            return
        if task.timer is not None:
            task.timer.stop()
        self._flush(task)
        if self._tasks.get(task.key) is not task:  # the yield callback cancelled or superseded it
            return
        del self._tasks[task.key]
        task.close_bar()
        self._call(task, kind, value)
        self._emit_finished(task.key)

    def _on_worker_finished(self, task: _Task) -> None:
        self._live.discard(task.worker)
        if task.timer is not None and is_alive(task.timer):
            task.timer.deleteLater()
            task.timer = None
        if self._current(task):  # ended with neither a result nor an error: quit from elsewhere
            self.cancel(task.key)

    def _emit_finished(self, key: Hashable) -> None:
        if key not in self._tasks and is_alive(self):
            self.finished.emit(key)
