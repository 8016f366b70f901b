"""One thread-worker lifecycle for every widget: :class:`TaskRunner`.

A widget makes one runner (``self.runner = TaskRunner(self, viewer)``) and
starts its background work with :meth:`TaskRunner.run`. The runner

- starts a napari thread worker (a function, or a generator function that
  yields progress items) and calls back on the GUI thread;
- keys tasks: a new task with the key of a running one supersedes it (the old
  one is asked to quit and everything it sends later is dropped, by task id);
- calls back only while the owner widget is alive, and reports exceptions of
  callbacks as napari notifications instead of raising them into Qt;
- coalesces a generator's items when asked (``throttle_s``) and drives a napari
  progress bar;
- shuts everything down when the owner is destroyed or the viewer's window
  closes (:meth:`shutdown`).

All callbacks run on the GUI thread, never re-entrantly from the runner itself;
a callback that processes events (adding a layer can) may see the next one
of its task run inside it.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import time
import weakref
from typing import Any, Callable, Hashable

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


@functools.cache
def _closing_generator_worker() -> type:
    """napari's GeneratorWorker, closing its generator in the worker thread when
    it is quit (so the generator's ``finally`` blocks run there, at once)."""
    from napari.qt.threading import GeneratorWorker

    class ClosingGeneratorWorker(GeneratorWorker):
        def work(self) -> Any:
            try:
                return super().work()
            finally:
                if self.abort_requested:
                    try:
                        self._gen.close()
                    except Exception as exc:  # noqa: BLE001
                        _log.warning("closing a quit generator raised %r", exc)

    return ClosingGeneratorWorker


class _Task:
    __slots__ = ("id", "key", "worker", "callbacks", "progress_of", "on_cancel", "throttle_s",
                 "pending", "count", "last", "timer", "pbar")  # fmt: skip

    def __init__(self, key: Hashable, **fields: Any) -> None:
        self.id, self.key = next(_ids), key
        self.pending: list[Any] = []
        self.count, self.last, self.timer, self.pbar = 0, 0.0, None, None
        for name, value in fields.items():
            setattr(self, name, value)


def _stop(task: _Task) -> None:
    """Ask a task to end and release its progress bar. Touches no widget, so
    it is safe while the owner is being destroyed."""
    for action in (task.on_cancel, task.worker.quit):
        if action is not None:
            try:
                action()
            except RuntimeError:  # the worker's Qt side is gone already
                pass
            except Exception as exc:  # noqa: BLE001
                _report(exc, "Stopping a background task")
    _close_bar(task)


def _close_bar(task: _Task) -> None:
    pbar, task.pbar = task.pbar, None
    if pbar is not None:
        try:
            pbar.close()
        except Exception:  # noqa: BLE001 - closed already
            pass


def _stop_all(tasks: dict[Hashable, _Task]) -> None:
    for task in list(tasks.values()):
        _stop(task)
    tasks.clear()


class TaskRunner(QObject):
    """Runs the background tasks of ``owner`` (its Qt parent: it dies with it).

    With ``viewer``, the runner also watches the viewer's main window and calls
    :meth:`shutdown` once it is closed. ``finished(key)`` is emitted when the
    current task of ``key`` has ended (returned, raised or cancelled with
    :meth:`cancel`), after its callbacks; not for a superseded task (its key
    is busy with the new one) nor on :meth:`shutdown`.
    """

    finished = Signal(object)

    def __init__(self, owner: QObject, viewer: Any = None) -> None:
        super().__init__(owner)
        self._owner = weakref.ref(owner)
        self._tasks: dict[Hashable, _Task] = {}
        self._live: set[Any] = set()  # workers whose thread has not finished (cancelled ones too)
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
        (None after :meth:`shutdown`: nothing is started).

        ``key`` (default: the task id, i.e. unique) names the task: a running
        task with the same key is superseded. ``on_result(value)`` gets the
        return value (a generator's too), ``on_error(exc)`` an exception of
        ``func`` (default: a notification). ``on_yield`` gets a generator's
        items: each one as it comes, or, with ``throttle_s``, a *list* of all
        items received since the last call (oldest first, never empty; the
        latest is ``items[-1]``), at most once per ``throttle_s`` seconds; the
        first item goes at once, the rest waits for the interval, and a batch
        still waiting is delivered before ``on_result``/``on_error``.

        ``progress=(total, desc)`` opens a napari progress bar (total None or 0:
        indeterminate), closed whenever the task ends. Its position is the
        number of items yielded, or ``progress_of(item)`` of the latest item
        for which that is not None; it moves when items are delivered (so with
        the throttle). :meth:`progress_bar` gives the bar to change its total
        or description. ``on_cancel()`` is called (from any thread's point of
        view: keep it a plain flag) when the task is cancelled, superseded or
        shut down, besides the worker's quit, which stops a generator at its
        next yield (a function runs to its end, its result dropped).
        ``kwargs`` go to ``func``: the names above are the runner's.
        """
        if self.closed:
            return None
        from napari.qt.threading import create_worker

        cls = _closing_generator_worker() if inspect.isgeneratorfunction(func) else None
        worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True, _worker_class=cls, **kwargs)
        task = _Task(key, worker=worker, progress_of=progress_of, on_cancel=on_cancel, throttle_s=throttle_s,
                     callbacks={"result": on_result, "yield": on_yield, "error": on_error})  # fmt: skip
        if key is None:
            task.key = key = task.id
        old = self._tasks.pop(key, None)
        if old is not None:
            _stop(old)
        self._tasks[key] = task
        if progress is not None:
            from napari.utils import progress as napari_progress

            total, desc = progress
            task.pbar = napari_progress(total=total or 0, desc=desc)
        if hasattr(worker, "yielded"):
            worker.yielded.connect(lambda item: self._on_yielded(task, item))
        worker.returned.connect(lambda value: self._on_end(task, "result", value))
        worker.errored.connect(lambda exc: self._on_end(task, "error", exc))
        worker.finished.connect(lambda: self._on_worker_finished(task))
        self._live.add(worker)
        worker.start()
        return task.id

    def cancel(self, key: Hashable) -> bool:
        """Stop the task of ``key`` (its later results are dropped); emits
        ``finished(key)``. False when no task of that key runs."""
        task = self._tasks.pop(key, None)
        if task is None:
            return False
        self._stop_task(task)
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
        """Worker threads not finished yet, cancelled and superseded ones included."""
        return len(self._live)

    def progress_bar(self, key: Hashable) -> Any:
        """The napari progress bar of the current task of ``key``, or None."""
        task = self._tasks.get(key)
        return None if task is None else task.pbar

    def shutdown(self) -> None:
        """Stop every task, refuse new ones (:attr:`closed`); emits nothing.
        Called when the owner is destroyed and when the viewer's window closes."""
        self.closed = True
        for task in list(self._tasks.values()):
            self._stop_timer(task)
        _stop_all(self._tasks)

    # ------------------------------------------------------------------ window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Close and self._window is not None and obj is self._window():
            QTimer.singleShot(0, self._after_window_close)
        return super().eventFilter(obj, event)

    def _after_window_close(self) -> None:
        """The window got a close event: shut down unless the close was refused."""
        if not is_alive(self):
            return
        window = self._window() if self._window is not None else None
        if window is None or not is_alive(window) or not window.isVisible():
            self.shutdown()

    # ------------------------------------------------------------------ worker signals

    def _current(self, task: _Task) -> bool:
        owner = self._owner()
        return self._tasks.get(task.key) is task and owner is not None and is_alive(owner) and is_alive(self)

    def _call(self, task: _Task, kind: str, *args: Any) -> None:
        callback = task.callbacks[kind]
        if callback is None:
            if kind == "error":
                _report(args[0], "A background task failed")
            return
        try:
            callback(*args)
        except Exception as exc:  # noqa: BLE001 - reported, never raised into Qt
            _report(exc, f"Error in the {kind} callback of task {task.key!r}")

    def _on_yielded(self, task: _Task, item: Any) -> None:
        if not self._current(task):
            return
        task.count += 1
        if task.throttle_s is None:
            self._deliver(task, [item])
            return
        task.pending.append(item)
        wait = task.last + task.throttle_s - time.monotonic()
        if wait <= 0:
            self._flush(task)
        elif task.timer is None:
            task.timer = timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda: self._current(task) and self._flush(task))
            timer.start(max(1, int(wait * 1000)))
        elif not task.timer.isActive():
            task.timer.start(max(1, int(wait * 1000)))

    def _flush(self, task: _Task) -> None:
        items, task.pending = task.pending, []
        if items:
            task.last = time.monotonic()
            self._deliver(task, items)

    def _deliver(self, task: _Task, items: list[Any]) -> None:
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
        self._stop_timer(task)
        self._flush(task)
        if self._tasks.get(task.key) is not task:  # the yield callback started or cancelled one
            return
        del self._tasks[task.key]
        _close_bar(task)
        self._call(task, kind, value)
        self._emit_finished(task.key)

    def _on_worker_finished(self, task: _Task) -> None:
        self._live.discard(task.worker)
        if self._current(task):  # ended without a result or an error (aborted from elsewhere)
            self.cancel(task.key)

    def _stop_task(self, task: _Task) -> None:
        self._stop_timer(task)
        _stop(task)

    def _stop_timer(self, task: _Task) -> None:
        timer, task.timer = task.timer, None
        if timer is not None and is_alive(timer):
            timer.stop()
            timer.deleteLater()

    def _emit_finished(self, key: Hashable) -> None:
        if key not in self._tasks and is_alive(self):
            self.finished.emit(key)
