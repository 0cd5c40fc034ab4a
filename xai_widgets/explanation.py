"""Explanation: the immutable result of one ``explain()`` call.

>>> from xai_widgets import explain
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> e = explain(model, images[0], method="saliency", targets=[3, 5])
>>> e.attributions.shape, e.targets
((2, 28, 28), [3, 5])
>>> e.map(5).shape
(28, 28)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from xai_widgets.errors import InputError


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class Explanation:
    """Attribution maps for one image and a list of target classes.

    ``attributions`` (n_targets, H, W) float32 is the map per target (channels summed; for
    spatial methods such as Grad-CAM and occlusion, the single spatial map); ``raw``
    (n_targets, C, H, W) float32 is the backend's own output. ``image`` (C, H, W) is the input
    as explained and ``baseline_image`` (C, H, W) the baseline after blending, when the
    method uses one. For complete methods (integrated gradients, DeepLift)
    ``completeness_error`` is max_t |Σ map_t − (f_t(x) − f_t(b))| / max_t |f_t(x) − f_t(b)|.
    ``refining`` is empty for a final result and says how far an interim round got.
    """

    attributions: np.ndarray
    raw: np.ndarray
    targets: list[int]
    probabilities: np.ndarray
    method: str
    params: dict[str, Any]
    baseline: str
    baseline_alpha: float
    seconds: float
    image: np.ndarray
    baseline_image: np.ndarray | None = None
    classes: list[str] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    completeness_error: float | None = None
    refining: str = ""  # an interim round of a progressive computation ("round 1: 8 of 64 steps")

    def __post_init__(self) -> None:
        for name in ("attributions", "raw", "probabilities", "image", "baseline_image"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _frozen(value))
        object.__setattr__(self, "targets", list(self.targets))
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def prediction(self) -> int:
        """The class the model predicts for the image."""
        return int(np.argmax(self.probabilities))

    def map(self, target: int) -> np.ndarray:
        """The (H, W) attribution map of one target class."""
        if target not in self.targets:
            raise InputError(f"target {target} was not explained; "
                             f"explained targets: {self.targets}")
        return self.attributions[self.targets.index(target)]

    def merged(self, other: Explanation) -> Explanation:
        """This explanation with ``other``'s targets added (same image, method, parameters
        and baseline; computed for more classes later)."""
        new = [i for i, t in enumerate(other.targets) if t not in self.targets]
        if not new:
            return self
        return replace(
            self, attributions=np.concatenate([self.attributions, other.attributions[new]]),
            raw=np.concatenate([self.raw, other.raw[new]]),
            targets=self.targets + [other.targets[i] for i in new],
            seconds=self.seconds + other.seconds,
            notes=tuple(dict.fromkeys(self.notes + other.notes)),
            completeness_error=max((e for e in (self.completeness_error,
                                                other.completeness_error) if e is not None),
                                   default=None))

    def __repr__(self) -> str:
        return (f"Explanation(method={self.method!r}, targets={self.targets}, "
                f"shape={self.attributions.shape[1:]}, prediction={self.prediction}, "
                f"seconds={self.seconds:.3f})")
