"""GlobalState: what the panels of a ``GlobalWidget`` share.

The model (through one adapter), the images as shown and the model's predictions on them,
one engine for every job that runs the model (channels ``visualize``, ``tree``, ``picks``:
the newest request of a channel supersedes the older one), the choices as validated traits
and the results as read-only traits. Panels write only their own part; each shows its own
errors (``errors[panel name]``).

>>> from xai_widgets.widgets.global_state import GlobalState
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> state = GlobalState(model, images[:40], classes=classes)
>>> state.n_classes, state.label(3), len(state.predictions)
(10, '3', 40)
>>> state.target = 12  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
xai_widgets.errors.InputError: target 12 is out of range: the model has 10 classes, so the
target must be in 0..9
>>> state.close()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import traitlets

from xai_widgets.adapter import ModelAdapter
from xai_widgets.batch import BATCHED_METHODS
from xai_widgets.correction_report import predict
from xai_widgets.engine import Engine, model_lock
from xai_widgets.errors import InputError
from xai_widgets.widgets.traits import ClassIndex

CHANNELS = ("visualize", "tree", "picks")
PARTS = {"target": "visualize", "parameterization": "visualize", "steps": "visualize",
         "regularisers": "visualize", "depth": "tree", "budget": "picks",
         "selected": "picks"}
MAX_DEPTH, MAX_BUDGET, MAX_STEPS = 8, 32, 10_000


@dataclass(frozen=True)
class Frame:
    """One step of a running visualisation as shown: the image (C, H, W, 0..1), the score
    of the target so far as ``(step, p)`` pairs (as the optimiser saw it, jittered) and
    ``score``: p(target) of the image shown (the final image's, once finished)."""

    target: int
    step: int
    steps: int
    image: np.ndarray
    points: tuple
    score: float


@dataclass(frozen=True)
class Regulariser:
    """One regulariser keyword of ``visualize_class``: default, range, what it does."""

    default: float
    low: float
    high: float
    help: str


def _whole(value, name: str, low: int, high: int, meaning: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an int in {low}..{high} ({meaning}), got {value!r}")
    if not low <= int(value) <= high:
        raise InputError(f"{name} must be in {low}..{high} ({meaning}), got {int(value)}")
    return int(value)


class GlobalState(traitlets.HasTraits):
    """Settable: ``target`` (the class visualised), ``parameterization``, ``steps``,
    ``regularisers`` (name → weight), ``depth`` (of the surrogate tree), ``budget`` (the
    number of picks), ``selected`` (the image opened, -1: none). Read-only: ``frame`` (the
    visualisation as last shown, a ``Frame``), ``visualization`` (the finished one),
    ``running``, ``tree``, ``picks``, ``errors`` (panel → message), ``error`` (the latest)."""

    target = ClassIndex(0)
    parameterization = traitlets.Unicode("fourier")
    steps = traitlets.Int(128)
    regularisers = traitlets.Dict()
    depth = traitlets.Int(4)
    budget = traitlets.Int(8)
    selected = traitlets.Int(-1)

    frame = traitlets.Any(None, read_only=True)
    visualization = traitlets.Any(None, read_only=True)
    running = traitlets.Bool(False, read_only=True)
    tree = traitlets.Any(None, read_only=True)
    picks = traitlets.Any(None, read_only=True)
    errors = traitlets.Dict(read_only=True)
    error = traitlets.Unicode("", read_only=True)

    def __init__(self, model, images, *, classes: Sequence[str] | None = None,
                 target: int | None = None, steps: int = 128,
                 parameterization: str | None = None, regularisers: dict | None = None,
                 depth: int = 4, budget: int | None = None, method: str = "integrated_gradients",
                 seed: int = 0, generator: Any = None, tree_options: dict | None = None,
                 pick_options: dict | None = None,
                 preprocess: Callable | None = None, output: str = "auto", weights: Any = None,
                 layout: str = "NCHW"):
        super().__init__()
        self.adapter = ModelAdapter(model, preprocess=preprocess, classes=classes, output=output,
                                    weights=weights, layout=layout)
        if images is None or len(images) == 0:
            raise InputError("images: pass a batch of at least one image (N, C, H, W)")
        first, _ = self.adapter.image(images[0])
        self.images = self.adapter.batch(images, first).cpu()
        self.model, self.preprocess, self.output = model, self.adapter.preprocess, output
        if method not in BATCHED_METHODS:
            raise InputError(f"{method!r} is not batched over images; choose one of "
                             f"{', '.join(BATCHED_METHODS)}")
        self.method, self.seed = method, seed
        self.tree_options, self.pick_options = dict(tree_options or {}), dict(pick_options or {})
        with model_lock(model):
            self.predictions = predict(self.adapter, self.images).numpy()
        self.n_classes = self.adapter.n_classes
        labels = self.adapter.classes
        self.labels = (list(labels) if labels is not None
                       else [str(i) for i in range(self.n_classes)])
        if len(self.labels) != self.n_classes:
            raise InputError(f"{len(self.labels)} class names for a model with {self.n_classes} "
                             "outputs: pass one name per class")
        self.engine = Engine(self.adapter, CHANNELS)
        self.apply_lock = self.engine.apply_lock
        views = visualize_module()
        self.regulariser_specs = {name: Regulariser(*spec) for name, spec in
                                  views.REGULARISERS.items()}
        self.parameterizations = tuple(views.PARAMETERIZATIONS)
        self.generator = generator
        if target is None:  # the class the model predicts most often among the images
            values, counts = np.unique(self.predictions, return_counts=True)
            target = int(values[counts.argmax()])
        self.target, self.steps, self.depth = target, steps, depth
        self.budget = min(8, len(self.images)) if budget is None else budget
        # the 1/f spectrum gives cleaner images than pixels in as many steps
        self.parameterization = parameterization or (
            "fourier" if "fourier" in self.parameterizations else self.parameterizations[0])
        self.regularisers = {**{name: spec.default for name, spec in
                                self.regulariser_specs.items()}, **(regularisers or {})}

    # -- validation (where values enter) ---------------------------------------------------
    @traitlets.validate("steps")
    def _check_steps(self, proposal):
        return _whole(proposal["value"], "steps", 1, MAX_STEPS, "optimisation steps")

    @traitlets.validate("depth")
    def _check_depth(self, proposal):
        return _whole(proposal["value"], "depth", 1, MAX_DEPTH, "the surrogate tree's depth")

    @traitlets.validate("budget")
    def _check_budget(self, proposal):
        high = min(MAX_BUDGET, len(self.images))
        return _whole(proposal["value"], "budget", 1, high, "the number of images picked")

    @traitlets.validate("selected")
    def _check_selected(self, proposal):
        return _whole(proposal["value"], "selected", -1, len(self.images) - 1,
                      "an image's index, -1 for none")

    @traitlets.validate("parameterization")
    def _check_parameterization(self, proposal):
        value = proposal["value"]
        if value not in self.parameterizations:
            raise InputError(f"unknown parameterization {value!r}: choose one of "
                             f"{', '.join(self.parameterizations)}")
        return value

    @traitlets.validate("regularisers")
    def _check_regularisers(self, proposal):
        value, specs = proposal["value"], self.regulariser_specs
        if not isinstance(value, dict):
            raise InputError(f"regularisers must be a dict name → weight, got {value!r}")
        unknown = sorted(set(value) - set(specs))
        if unknown:
            raise InputError(f"unknown regulariser {unknown[0]!r}: the regularisers are "
                             f"{', '.join(specs)}")
        checked = {}
        for name, weight in value.items():
            spec = specs[name]
            try:
                number = float(weight)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(weight, bool) or not math.isfinite(number) or not (
                    spec.low <= number <= spec.high):
                raise InputError(f"regulariser {name} must be a number in {spec.low:g}.."
                                 f"{spec.high:g} ({spec.help}), got {weight!r}")
            checked[name] = number
        return checked

    # -- reading -----------------------------------------------------------------------------
    def label(self, index: int) -> str:
        return self.labels[index]

    def settings(self) -> dict:
        """The visualisation's keywords from the traits, as ``visualize_class`` takes them."""
        return {"target": self.target, "steps": self.steps, "seed": self.seed,
                "parameterization": self.parameterization, **self.regularisers}

    # -- writing -----------------------------------------------------------------------------
    def set(self, name: str, value) -> None:
        """Set a trait from a control; a bad value shows in its panel, it is not raised."""
        try:
            setattr(self, name, value)
        except (InputError, traitlets.TraitError) as error:
            self.fail(PARTS.get(name, ""), str(error))

    def fail(self, part: str, message: str) -> None:
        """Show ``message`` in the panel ``part`` (the last good view stays)."""
        with self.apply_lock:
            self.set_trait("errors", {**self.errors, part: message})
            self.set_trait("error", message)

    def clear(self, part: str) -> None:
        with self.apply_lock:
            if part in self.errors:
                errors = {k: v for k, v in self.errors.items() if k != part}
                self.set_trait("errors", errors)
                self.set_trait("error", next(reversed(errors.values()), ""))

    def set_result(self, name: str, value) -> None:
        with self.apply_lock:
            self.set_trait(name, value)

    def submit(self, channel: str, work, apply, on_error, on_progress=None) -> None:
        self.engine.submit(channel, work, apply, on_error, on_progress=on_progress)

    def wait(self, timeout: float = 120.0) -> GlobalState:
        if not self.engine.wait(timeout):
            raise TimeoutError(f"the global views did not settle within {timeout} s")
        return self

    def close(self) -> None:
        self.engine.close()


def visualize_module():
    """``global_views.visualize`` (imported late: ``global_views`` re-exports the widget)."""
    from xai_widgets.global_views import visualize

    return visualize


def global_views():
    """The ``global_views`` package, once it is imported (see ``visualize_module``)."""
    from xai_widgets import global_views as views

    return views


def as_image(tensor) -> np.ndarray:
    """A (C, H, W) or (1, C, H, W) tensor as a float32 numpy array in 0..1."""
    array = tensor.detach().float().cpu() if isinstance(tensor, torch.Tensor) else tensor
    array = np.asarray(array, dtype=np.float32)
    return array[0] if array.ndim == 4 else array
