"""Explanations of one image by view state, merged over the classes computed so far.

A view asks for the classes on screen (the target, the prediction, the top k, pinned
ones). A class added later costs one computation of that class alone when the method's
maps of different classes do not depend on each other (``mergeable``); the store then
keeps one growing ``Explanation`` per state, so going back to an earlier state is free.

>>> import numpy as np
>>> from xai_widgets import explain
>>> from xai_widgets.store import ExplanationStore, ViewKey
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> store, key = ExplanationStore(), ViewKey.of("saliency")
>>> store.missing(0, key, [3, 5])
[3, 5]
>>> _ = store.add(0, key, explain(model, images[0], "saliency", targets=[3, 5]))
>>> _ = store.add(0, key, explain(model, images[0], "saliency", targets=[7]))
>>> store.missing(0, key, [3, 7]), store.get(0, key).targets
([], [3, 5, 7])
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_widgets import methods
from xai_widgets.explanation import Explanation


def baseline_key(baseline: Any) -> str:
    """A hashable name for a baseline: its name, or a digest of an array's bytes."""
    if isinstance(baseline, str):
        return baseline
    array = np.ascontiguousarray(np.asarray(baseline, dtype=np.float32))
    return "array:" + hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()[:16]


def mergeable(method: str, params: dict) -> bool:
    """Whether one class's map is independent of which other classes are computed with it
    (no random draws shared across the batch of classes)."""
    spec = methods.spec(method)
    return not spec.stochastic and params.get("smoothing", "none") == "none"


@dataclass(frozen=True)
class ViewKey:
    """Method, parameters and baseline of a view: everything but the classes."""

    method: str
    params: tuple = ()
    baseline: str = "zero"
    baseline_alpha: float = 0.0

    @classmethod
    def of(cls, method: str, params: dict | None = None, baseline: Any = "zero",
           baseline_alpha: float = 0.0) -> ViewKey:
        """The key of a view state; a baseline the method does not use is left out, so
        moving the baseline slider under saliency is a cache hit, not a recomputation."""
        items = tuple(sorted((params or {}).items()))
        if method in methods.names() and not methods.spec(method).needs_baseline:
            return cls(method, items)
        return cls(method, items, baseline_key(baseline), float(baseline_alpha))


class ExplanationStore:
    """LRU store of merged explanations by (model version, ViewKey)."""

    def __init__(self, size: int = 64):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.RLock()  # the view's worker adds, the notebook's thread reads

    def get(self, version, key: ViewKey) -> Explanation | None:
        with self._lock:
            item = self._items.get((version, key))
            if item is not None:
                self._items.move_to_end((version, key))
            return item

    def missing(self, version, key: ViewKey, targets) -> list[int]:
        """The classes of ``targets`` this state has no map for yet."""
        item = self.get(version, key)
        done = set(item.targets) if item is not None else set()
        return [t for t in targets if t not in done]

    def add(self, version, key: ViewKey, explanation: Explanation) -> Explanation:
        """Merge ``explanation`` into the stored one (when the method allows it)."""
        with self._lock:
            item = self.get(version, key)
            if item is not None and mergeable(key.method, dict(key.params)):
                explanation = item.merged(explanation)
            self._items[(version, key)] = explanation
            self._items.move_to_end((version, key))
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return explanation

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
