"""TaskRunner: the one worker lifecycle of the widgets (plain QWidget owners, no viewer)."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtWidgets import QWidget  # noqa: E402

from napari_dewedge.widgets import _runner  # noqa: E402
from napari_dewedge.widgets._runner import TaskRunner  # noqa: E402


@pytest.fixture
def owner(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def reports(monkeypatch):
    seen = []
    monkeypatch.setattr(_runner, "_report", lambda exc, where: seen.append((exc, where)))
    return seen


def _idle(qtbot, runner, timeout=5000):
    qtbot.waitUntil(lambda: not runner.busy() and runner.running() == 0, timeout=timeout)


def test_result_delivered_and_finished_emitted(qtbot, owner):
    runner = TaskRunner(owner)
    results, finished = [], []
    runner.finished.connect(finished.append)
    task = runner.run(lambda a, b=0: a + b, 2, b=3, key="sum", on_result=results.append)
    assert isinstance(task, int) and runner.busy("sum") and runner.busy() and runner.current("sum") == task
    with qtbot.waitSignal(runner.finished, timeout=5000):
        pass
    assert results == [5] and finished == ["sum"]
    assert not runner.busy("sum") and runner.current("sum") is None
    # Without a key every task is its own.
    task = runner.run(lambda: 1, on_result=results.append)
    assert runner.busy(task)
    _idle(qtbot, runner)
    assert results == [5, 1]


def test_superseded_result_is_dropped(qtbot, owner):
    runner = TaskRunner(owner)
    release = threading.Event()
    results = []

    def slow(value):
        release.wait(5)
        return value

    first = runner.run(slow, "old", key="k", on_result=results.append)
    second = runner.run(lambda: "new", key="k", on_result=results.append)
    assert second != first and runner.current("k") == second
    qtbot.waitUntil(lambda: results == ["new"], timeout=5000)
    release.set()
    _idle(qtbot, runner)  # the old worker ended too; its result went nowhere
    assert results == ["new"]


def test_generator_yields_are_throttled(qtbot, owner):
    runner = TaskRunner(owner)
    batches, results = [], []

    def count(n):
        for i in range(n):
            time.sleep(0.002)
            yield i
        return "done"

    runner.run(count, 200, on_yield=batches.append, on_result=results.append, throttle_s=0.05,
               progress=(200, "counting"))  # fmt: skip
    _idle(qtbot, runner)
    assert results == ["done"]
    assert 1 < len(batches) < 200  # coalesced ...
    assert [i for batch in batches for i in batch] == list(range(200))  # ... in order, none lost
    assert batches[-1][-1] == 199  # the last item was delivered (before the result)


def test_unthrottled_items_and_progress_bar(qtbot, owner, monkeypatch):
    bars = []

    class Bar:
        def __init__(self, total, desc):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    import napari.utils

    monkeypatch.setattr(napari.utils, "progress", Bar)
    runner = TaskRunner(owner)
    items = []

    def steps():
        yield from ({"step": s} for s in (1, 2, 5))

    positions = []
    runner.run(steps, key="p", progress=(5, "steps"), progress_of=lambda item: item["step"],
               on_yield=lambda item: (items.append(item), positions.append(runner.progress_bar("p").n)))  # fmt: skip
    bar = bars[0]
    assert (bar.total, bar.desc) == (5, "steps") and runner.progress_bar("p") is bar
    _idle(qtbot, runner)
    assert items == [{"step": 1}, {"step": 2}, {"step": 5}]
    assert positions == [1, 2, 5]
    assert bar.closed and runner.progress_bar("p") is None


def test_cancel_stops_a_generator_between_yields(qtbot, owner):
    runner = TaskRunner(owner)
    produced, seen, ended, finished = [], [], threading.Event(), []
    runner.finished.connect(finished.append)

    def forever():
        try:
            i = 0
            while True:
                time.sleep(0.005)
                produced.append(i)
                yield i
                i += 1
        finally:
            ended.set()

    runner.run(forever, key="gen", on_yield=seen.append, on_result=lambda _v: seen.append("result"))
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=5000)
    assert runner.cancel("gen") is True
    assert not runner.busy("gen") and finished == ["gen"]
    assert runner.cancel("gen") is False
    _idle(qtbot, runner)
    count = len(produced)
    time.sleep(0.1)
    assert len(produced) == count  # stopped
    n_seen = len(seen)
    qtbot.wait(50)
    assert len(seen) == n_seen and "result" not in seen  # nothing after the cancel


def test_errors_reach_on_error_and_callback_errors_are_reported(qtbot, owner, reports):
    runner = TaskRunner(owner)
    errors = []

    def fail():
        raise ValueError("bad input")

    runner.run(fail, on_error=errors.append)
    _idle(qtbot, runner)
    assert len(errors) == 1 and isinstance(errors[0], ValueError) and "bad input" in str(errors[0])
    assert not reports

    runner.run(fail)  # no on_error: a notification
    _idle(qtbot, runner)
    assert len(reports) == 1 and isinstance(reports[0][0], ValueError)

    def broken(_value):
        raise RuntimeError("callback bug")

    runner.run(lambda: 1, key="cb", on_result=broken)
    with qtbot.waitSignal(runner.finished, timeout=5000):  # still finishes
        pass
    assert len(reports) == 2 and "callback bug" in str(reports[1][0]) and "'cb'" in reports[1][1]


def test_no_callback_after_the_owner_is_deleted(qtbot):
    owner = QWidget()
    runner = TaskRunner(owner)
    release, started, stopped = threading.Event(), threading.Event(), threading.Event()
    calls = []

    def slow():
        release.wait(5)
        return 1

    def gen():
        try:
            started.set()
            while True:
                time.sleep(0.005)
                yield 0
        finally:
            stopped.set()

    runner.run(slow, on_result=calls.append, on_error=calls.append)
    runner.run(gen, on_cancel=lambda: calls.append("cancelled"))
    assert started.wait(5)
    owner.deleteLater()
    qtbot.waitUntil(lambda: not _runner.is_alive(owner), timeout=2000)
    assert calls == ["cancelled"]  # the owner's end stopped the tasks
    release.set()
    qtbot.waitUntil(lambda: runner.running() == 0, timeout=5000)
    assert stopped.wait(2)  # the generator was closed in its thread
    qtbot.wait(50)
    assert calls == ["cancelled"]


def test_shutdown_quits_running_workers(qtbot, owner):
    runner = TaskRunner(owner)
    stops, results, finished = [], [], []
    runner.finished.connect(finished.append)

    def forever(tag):
        while True:
            time.sleep(0.005)
            yield tag

    for tag in ("a", "b"):
        runner.run(forever, tag, key=tag, on_yield=results.append, on_cancel=lambda t=tag: stops.append(t))
    qtbot.waitUntil(lambda: {"a", "b"} <= set(results), timeout=5000)
    runner.shutdown()
    assert runner.closed and not runner.busy() and sorted(stops) == ["a", "b"]
    qtbot.waitUntil(lambda: runner.running() == 0, timeout=5000)
    assert finished == []  # shutdown emits nothing
    assert runner.run(lambda: 1) is None  # and starts nothing more


def test_shutdown_when_the_window_closes(qtbot):
    from qtpy.QtWidgets import QMainWindow

    class Viewer:  # what the runner reads of a napari viewer
        def __init__(self, window):
            self.window = type("Window", (), {"_qt_window": window})()

    window = QMainWindow()
    qtbot.addWidget(window)
    owner = QWidget()
    window.setCentralWidget(owner)
    runner = TaskRunner(owner, Viewer(window))
    window.show()
    qtbot.waitExposed(window)
    runner.run(lambda: time.sleep(0.05), key="k")
    window.close()
    qtbot.waitUntil(lambda: runner.closed, timeout=2000)
    assert not runner.busy()
    qtbot.waitUntil(lambda: runner.running() == 0, timeout=5000)


def test_callbacks_do_not_nest(qtbot, owner):
    from qtpy.QtWidgets import QApplication

    runner = TaskRunner(owner)
    depth, log = [0], []

    def on_yield(item):
        depth[0] += 1
        log.append((item, depth[0]))
        if item == 0:  # processes events, as adding a layer may: the next items must wait
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                QApplication.processEvents()
        depth[0] -= 1

    def three():
        yield from range(3)

    runner.run(three, on_yield=on_yield, on_result=lambda _v: log.append(("result", depth[0] + 1)))
    _idle(qtbot, runner)
    assert log == [(0, 1), (1, 1), (2, 1), ("result", 1)]


def test_supersede_closes_the_old_bar_and_calls_on_cancel(qtbot, owner):
    runner = TaskRunner(owner)
    release, cancelled = threading.Event(), []

    def slow_gen():
        yield 0
        release.wait(5)
        yield 1

    runner.run(slow_gen, key="k", progress=(2, "old"), on_cancel=lambda: cancelled.append("old"))
    old_bar = runner.progress_bar("k")
    runner.run(lambda: None, key="k", progress=(None, "new"))
    assert cancelled == ["old"] and runner.progress_bar("k") is not old_bar
    assert old_bar.n == 0 and getattr(old_bar, "disable", True)  # closed (tqdm disables a closed bar)
    release.set()
    _idle(qtbot, runner)
    assert runner.progress_bar("k") is None


def test_closing_the_viewer_ends_the_widgets_tasks(viewer, qtbot):
    from qtpy.QtCore import QThreadPool

    from napari_dewedge.widgets.compare import CompareWidget

    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Compare before and after")
    runner, stopped, seen = widget.runner, threading.Event(), []

    def forever():
        try:
            while True:
                time.sleep(0.005)
                yield 0
        finally:
            stopped.set()

    runner.run(forever, key="long", on_yield=seen.append)
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    viewer.close()
    qtbot.wait(50)
    assert stopped.wait(5)  # the window's close or the widget's end (whichever came first) quit it
    assert QThreadPool.globalInstance().waitForDone(10_000)


def test_overlapping_workers_leave_the_warning_hook_alone(qtbot, owner):
    """Two tasks that start and end out of order leave ``warnings.showwarning`` as it was
    (superqt's run swaps it per worker; out of order, the process kept a hook into a
    deleted worker, and the next warning aborted the process)."""
    import warnings

    runner = TaskRunner(owner)
    entered = [threading.Event(), threading.Event()]
    release = [threading.Event(), threading.Event()]
    results = []

    def task(i):
        entered[i].set()
        warnings.warn(f"from task {i}", UserWarning, stacklevel=1)
        release[i].wait(5)
        return i

    with warnings.catch_warnings():  # the tasks' warnings go to this test's filters, not pytest's report
        warnings.simplefilter("ignore")
        before = warnings.showwarning
        runner.run(task, 0, key="a", on_result=results.append)
        assert entered[0].wait(5)
        runner.run(task, 1, key="b", on_result=results.append)
        assert entered[1].wait(5)
        release[0].set()  # the first ends while the second runs on
        qtbot.waitUntil(lambda: results == [0], timeout=5000)
        release[1].set()
        _idle(qtbot, runner)
        assert warnings.showwarning is before
    assert sorted(results) == [0, 1]


def test_a_runtime_error_of_a_generator_is_an_error(qtbot, owner):
    """A RuntimeError (e.g. torch's out-of-memory error) ends the task through on_error;
    superqt's run took it for a deleted worker and the task never ended."""
    runner = TaskRunner(owner)
    errors, finished = [], []
    runner.finished.connect(finished.append)

    def fails():
        yield 1
        raise RuntimeError("CUDA out of memory")

    runner.run(fails, key="gen", on_error=errors.append)
    qtbot.waitUntil(lambda: finished == ["gen"], timeout=5000)
    assert [str(e) for e in errors] == ["CUDA out of memory"]
    _idle(qtbot, runner)
