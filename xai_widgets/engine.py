"""The compute engine behind the widgets: one worker per view, one lock per model.

Everything that runs the user's model goes through here, so hooks one method sets on the
model never meet another computation:

- ``model_lock(model)`` is one re-entrant lock per model object; every job holds it while it
  runs the model (the widgets' workers, dataset and comparison jobs alike).
- ``Engine.submit(channel, work, apply)`` queues a job on a *channel* ("explain", "mask",
  "counterfactual", "curves", …). A newer job on the same channel supersedes the older one
  (newest request wins): queued work is dropped, running work sees ``cancelled()`` turn true
  and stops, and a stale result is never applied.
- Results are applied in one guarded step: under the apply lock (never the queue lock),
  after checking the job is still the newest of its channel. An exception in the work or in
  applying its result reaches ``on_error`` with its message; nothing stays "computing…".

>>> from xai_widgets.adapter import ModelAdapter
>>> from xai_widgets.engine import Engine
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> engine = Engine(ModelAdapter(model))
>>> seen = []
>>> _ = engine.submit("demo", lambda job: 6 * 7, seen.append, print)
>>> engine.wait(10), seen
(True, [42])
>>> engine.close()
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xai_widgets.errors import Cancelled, InputError

_MODEL_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(model) -> threading.RLock:
    """The one lock that serialises every computation on ``model`` (re-entrant)."""
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


def error_message(error: BaseException) -> str:
    """A message for the user: InputError text as is, anything else with its type."""
    if isinstance(error, InputError):
        return str(error)
    return f"{type(error).__name__}: {error}"


@dataclass
class Job:
    """What a job's work function receives: ``report(done, total)`` and ``check()``."""

    channel: str
    generation: int
    engine: Engine
    on_progress: Callable[[str, float], None] | None = None
    label: str = ""
    on_error: Callable[[str], None] | None = None

    def cancelled(self) -> bool:
        return self.engine.is_stale(self.channel, self.generation)

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled()

    def report(self, done: int, total: int) -> None:
        if self.on_progress is not None and not self.cancelled():
            self.on_progress(self.label, done / max(total, 1))

    def publish(self, apply: Callable[[Any], None], result: Any) -> None:
        """Apply an interim result (a progressive round) now, in the same guarded step as
        final results, unless a newer job superseded this one."""
        self.engine._apply(self, apply, result, self.on_error or (lambda message: None))


@dataclass
class _Pending:
    job: Job
    work: Callable[[Job], Any]
    apply: Callable[[Any], None]
    on_error: Callable[[str], None]


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_JOBS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


@atexit.register
def _stop_workers() -> None:
    """Stop and join every worker before the interpreter tears torch down under it (a daemon
    thread killed inside a torch op aborts the process)."""
    for engine in list(_ENGINES):
        engine.close(join_timeout=10.0)
    for job in list(_JOBS):
        job.join(10.0)


class Engine:
    """One worker thread that runs a view's jobs one at a time, under the model's lock.

    ``channels`` lists the channels in the order the worker serves them when several are
    queued (the main map first, diagnostics last).
    """

    def __init__(self, adapter, channels: tuple[str, ...] = ()):
        self.adapter = adapter
        self.channels = list(channels)
        self._generations: dict[str, int] = {}
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()                 # the queue
        self.apply_lock = threading.RLock()           # applying results to the views
        self._changed = threading.Condition(self._lock)
        self._running: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- queue -------------------------------------------------------------------------
    def submit(self, channel: str, work: Callable[[Job], Any], apply: Callable[[Any], None],
               on_error: Callable[[str], None],
               on_progress: Callable[[str, float], None] | None = None,
               supersedes: tuple[str, ...] = (), label: str = "") -> int:
        """Queue ``work(job)`` on ``channel``; ``apply(result)`` runs once it is done, only
        if no newer job was submitted to the channel meanwhile. Returns the generation."""
        with self._lock:
            for other in supersedes:
                self._bump(other)
            generation = self._bump(channel)
            job = Job(channel, generation, self, on_progress, label, on_error)
            self._pending[channel] = _Pending(job, work, apply, on_error)
            if channel not in self.channels:
                self.channels.append(channel)
            self._ensure_worker()
            self._changed.notify_all()
        return generation

    def supersede(self, *channels: str) -> None:
        """Make queued and running jobs of ``channels`` stale (their results are dropped)."""
        with self._lock:
            for channel in channels:
                self._bump(channel)
            self._changed.notify_all()

    def apply_now(self, channel: str, apply: Callable[[], None],
                  on_error: Callable[[str], None]) -> None:
        """Supersede ``channel`` and apply a result that needs no model call (a cache hit)
        on the calling thread, through the same guarded step."""
        with self._lock:
            generation = self._bump(channel)
        self._apply(Job(channel, generation, self), lambda _: apply(), None, on_error)

    def is_stale(self, channel: str, generation: int) -> bool:
        return self._closed or self._generations.get(channel, 0) != generation

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._closed or (not self._pending and self._running is None), timeout)

    def close(self, join_timeout: float | None = None) -> None:
        """Stop the worker (running work stops at its next check); optionally join it."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._changed.notify_all()
        thread = self._thread
        if (join_timeout is not None and thread is not None
                and thread is not threading.current_thread()):
            thread.join(join_timeout)

    # -- worker ------------------------------------------------------------------------
    def _bump(self, channel: str) -> int:
        self._generations[channel] = self._generations.get(channel, 0) + 1
        self._pending.pop(channel, None)
        return self._generations[channel]

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="xai-widgets-engine",
                                            daemon=True)
            self._thread.start()
            _ENGINES.add(self)

    def _next(self) -> _Pending | None:
        with self._lock:
            while not self._pending and not self._closed:
                self._changed.wait()
            if self._closed:
                return None
            channel = next(c for c in self.channels if c in self._pending)
            self._running = channel
            return self._pending.pop(channel)

    def _work(self) -> None:
        while True:
            pending = self._next()
            if pending is None:
                return
            job = pending.job
            result, failure = None, None
            try:
                if not job.cancelled():
                    with model_lock(self.adapter.model):
                        result = pending.work(job)
            except Cancelled:
                job = None
            except Exception as error:  # noqa: BLE001 - every failure is shown in the view
                failure = error_message(error)
            if job is not None:
                self._apply(job, pending.apply, result if failure is None else failure,
                            pending.on_error, failed=failure is not None)
            with self._lock:
                self._running = None
                self._changed.notify_all()

    def _apply(self, job: Job, apply, result, on_error, failed: bool = False) -> None:
        with self.apply_lock:
            if job.cancelled():
                return
            try:
                if failed:
                    on_error(result)
                else:
                    apply(result)
            except Exception as error:  # noqa: BLE001 - a failure to show is shown too
                try:
                    on_error(error_message(error))
                except Exception:  # noqa: BLE001 - nothing left to report to
                    pass


def run_in_background(work: Callable[[], Any], on_result: Callable[[Any], None],
                      on_error: Callable[[str], None], model=None) -> threading.Thread:
    """Run one long job (e.g. a dataset view) off the caller's thread, holding
    ``model_lock(model)`` while it runs when a model is given."""
    def target():
        try:
            if model is not None:
                with model_lock(model):
                    result = work()
            else:
                result = work()
        except Cancelled:
            return
        except Exception as error:  # noqa: BLE001 - every failure is shown in the view
            on_error(error_message(error))
            return
        try:
            on_result(result)
        except Exception as error:  # noqa: BLE001 - shown as well
            on_error(error_message(error))

    thread = threading.Thread(target=target, name="xai-widgets-job", daemon=True)
    _JOBS.add(thread)
    thread.start()
    return thread
