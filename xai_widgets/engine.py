"""The compute engine behind the widgets: requests, generations, a worker thread, a cache.

Every user change becomes a ``Request`` with a new generation number. A cache hit answers
at once, with no model call. Otherwise the worker thread computes the newest request only;
long work checks ``cancelled()`` and stops as soon as a newer request arrives, and a result
whose generation is no longer the newest is cached but never delivered.

>>> from xai_widgets.adapter import ModelAdapter
>>> from xai_widgets.engine import Engine, Request
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> adapter = ModelAdapter(model)
>>> engine = Engine(adapter, adapter.image(images[0])[0])
>>> engine.run(Request("saliency")).attributions.shape
(10, 28, 28)
>>> engine.close()
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch

from xai_widgets import methods
from xai_widgets.baselines import blend, check_alpha, make_baseline
from xai_widgets.compute import compute
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.explanation import Explanation
from xai_widgets.superpixels import compose, segment


@dataclass(frozen=True)
class Request:
    """One state of the view: what to compute. Hashable, so it is also the cache key."""

    method: str
    params: tuple = ()
    baseline: str = "zero"
    baseline_alpha: float = 0.0
    targets: Any = "all"

    @classmethod
    def of(cls, method: str, params: dict | None = None, baseline: str = "zero",
           baseline_alpha: float = 0.0) -> "Request":
        """The request for a view state; a baseline a method does not use is left out, so
        moving the baseline slider under saliency is a cache hit, not a recomputation."""
        items = tuple(sorted((params or {}).items()))
        if method in methods.names() and not methods.spec(method).needs_baseline:
            return cls(method, items)
        return cls(method, items, baseline, baseline_alpha)


def error_message(error: BaseException) -> str:
    """A message for the user: InputError text as is, anything else with its type."""
    if isinstance(error, InputError):
        return str(error)
    return f"{type(error).__name__}: {error}"


_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


_JOBS: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()


@atexit.register
def _stop_workers() -> None:
    """Stop and join every worker before the interpreter tears torch down under it (a daemon
    thread killed inside a torch op aborts the process)."""
    for engine in list(_ENGINES):
        engine.close(join_timeout=10.0)
    for job in list(_JOBS):
        job.join(10.0)


def run_in_background(work: Callable[[], Any], on_result: Callable[[Any], None],
                      on_error: Callable[[str], None]) -> threading.Thread:
    """Run one long job (e.g. a dataset view) off the caller's thread."""
    def target():
        try:
            result = work()
        except Cancelled:
            return
        except Exception as error:  # noqa: BLE001 - every failure is shown in the view
            on_error(error_message(error))
            return
        on_result(result)

    thread = threading.Thread(target=target, name="xai-widgets-job", daemon=True)
    _JOBS.add(thread)
    thread.start()
    return thread


class Engine:
    """Computes explanations of one image off the caller's thread, newest request first."""

    def __init__(self, adapter, image: torch.Tensor, data: torch.Tensor | None = None,
                 notes: list[str] | None = None, cache_size: int = 128):
        self.adapter = adapter
        self.image = image
        self.data = data
        self.notes = list(notes or [])
        self.cache_size = cache_size
        self.generation = 0
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._pending = None
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- synchronous use -------------------------------------------------------------
    def run(self, request: Request, progress: Callable | None = None) -> Explanation:
        """Compute (or fetch from the cache) on the calling thread."""
        hit = self.cached(request)
        if hit is not None:
            return hit
        result = self._compute(request, progress=progress)
        self._store(request, result)
        return result

    def baseline_image(self, baseline: str, alpha: float) -> torch.Tensor:
        """The (1,C,H,W) baseline blended toward the image, as explanations use it."""
        return blend(make_baseline(baseline, self.image, self.data), self.image, check_alpha(alpha))

    def segments(self, method: str, params: dict | None = None) -> torch.Tensor:
        """The (H, W) superpixel labels of the image (cached by ``superpixels.segment``)."""
        return segment(self.image, method, **(params or {}))

    def mask(self, segments: torch.Tensor, hidden: list[int], baseline: torch.Tensor):
        """The image with ``hidden`` segments replaced by ``baseline`` (1,C,H,W) and its class
        probabilities: one forward pass of one image."""
        keep = torch.ones(1, int(segments.max()) + 1, dtype=torch.bool, device=self.image.device)
        keep[0, list(hidden)] = False
        masked = compose(self.image, baseline, segments.to(self.image.device), keep)
        return masked, self.adapter.probabilities(masked)[0]

    def cached(self, request: Request) -> Explanation | None:
        key = (self.adapter.version(), request)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    # -- asynchronous use ------------------------------------------------------------
    def submit(self, request: Request, on_result: Callable[[Explanation], None],
               on_error: Callable[[str], None],
               on_progress: Callable[[int, int], None] | None = None) -> int:
        """Queue ``request``; superseding any older one. Returns its generation.

        ``on_result``/``on_error`` run (on this thread for a cache hit, else on the worker)
        only while the request is still the newest one.
        """
        with self._lock:
            self.generation += 1
            generation = self.generation
            hit = self.cached(request)
            if hit is not None:
                self._pending = None
                on_result(hit)
                return generation
            self._pending = (generation, request, on_result, on_error, on_progress)
            self._ensure_worker()
            self._wakeup.notify()
        return generation

    def supersede(self) -> int:
        """Make every queued or running request stale (e.g. before showing an error)."""
        with self._lock:
            self.generation += 1
            self._pending = None
            return self.generation

    def close(self, join_timeout: float | None = None) -> None:
        """Stop the worker (work in progress stops at its next check); optionally join it."""
        with self._lock:
            self._closed = True
            self._pending = None
            self.generation += 1
            self._wakeup.notify_all()
        thread = self._thread
        if join_timeout is not None and thread is not None and thread is not threading.current_thread():
            thread.join(join_timeout)

    # -- internals -------------------------------------------------------------------
    def _compute(self, request: Request, progress=None, cancelled=None) -> Explanation:
        return compute(self.adapter, self.image, request.method, request.targets,
                       dict(request.params), request.baseline, request.baseline_alpha,
                       self.data, notes=self.notes, progress=progress, cancelled=cancelled)

    def _store(self, request: Request, result) -> None:
        with self._lock:
            self._cache[(self.adapter.version(), request)] = result
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="xai-widgets-engine",
                                            daemon=True)
            self._thread.start()
            _ENGINES.add(self)

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._wakeup.wait()
                if self._closed:
                    return
                generation, request, on_result, on_error, on_progress = self._pending
                self._pending = None
            stale = lambda: self.generation != generation  # noqa: E731
            try:
                result = self._compute(request, progress=self._guard(on_progress, generation),
                                       cancelled=stale)
            except Cancelled:
                result = None
            except Exception as error:  # noqa: BLE001 - every failure is shown in the view
                with self._lock:
                    if not stale():
                        on_error(error_message(error))
                continue
            with self._lock:
                if result is not None:
                    self._store(request, result)
                    if not stale():
                        on_result(result)

    def _guard(self, on_progress, generation):
        if on_progress is None:
            return None

        def report(done: int, total: int) -> None:
            if self.generation == generation:
                on_progress(done, total)

        return report


class CounterfactualEngine(Engine):
    """The same queue, generations and cache for counterfactual searches: a request's
    ``method`` is the search method and its ``params`` hold ``target`` and the search's own
    parameters. It runs beside the explanation engine, so neither supersedes the other."""

    autoencoder = None

    def _compute(self, request: Request, progress=None, cancelled=None):
        from xai_widgets.methods.counterfactuals import search_counterfactual

        params = dict(request.params)
        target = params.pop("target")
        return search_counterfactual(self.adapter, self.image, target, request.method, params,
                                     self.data, autoencoder=self.autoencoder, progress=progress,
                                     cancelled=cancelled)
