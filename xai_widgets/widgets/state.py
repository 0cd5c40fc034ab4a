"""ViewState: the one state every panel of a view observes.

Settable traits validate where values enter (``InputError`` with the fix); each change
asks the engine for exactly what is on screen (the shown classes, the open panel), and
results come back as read-only traits, applied in the engine's guarded step. Panels read
the state and write only their own part of it.

>>> from xai_widgets.widgets.state import ViewState
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> state = ViewState(model, images[0], method="saliency").wait(60)
>>> state.explanation.method, state.shown_classes() == list(range(10))
('saliency', True)
>>> state.target = 12  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
xai_widgets.errors.InputError: target 12 is out of range: the model has 10 classes, so the
target must be in 0..9
>>> state.close()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import traitlets

from xai_widgets import methods
from xai_widgets.adapter import ModelAdapter
from xai_widgets.compute import baseline_for
from xai_widgets.engine import Engine
from xai_widgets.errors import InputError
from xai_widgets.explanation import Explanation
from xai_widgets.methods.counterfactuals import METHODS as CF_METHODS
from xai_widgets.robustness import ATTACK_METHODS
from xai_widgets.store import ExplanationStore, ViewKey, mergeable
from xai_widgets.superpixels import SEGMENTATIONS
from xai_widgets.widgets import jobs, requests, trust_requests
from xai_widgets.widgets.tabs import TAB_NAMES
from xai_widgets.widgets.traits import (
    Baseline,
    Choice,
    ClassIndex,
    ClassList,
    Fraction,
    MethodName,
    MethodParams,
)

CHANNELS = ("explain", "segments", "mask", "counterfactual", "strip", "curves", "sanity",
            "influence", "sensitivity", "attack")


class ViewState(traitlets.HasTraits):
    """Model adapter, image and every choice of one view; results as read-only traits.

    Settable: ``method``, ``params``, ``target``, ``baseline`` (a name, ``counterfactual:B``
    or an array), ``baseline_alpha``, ``abs_values``, ``top_k``, ``pinned``,
    ``shared_scale``, ``colour_image``, ``segmentation``, ``hidden_segments``,
    ``counterfactual_target``, ``counterfactual_method``, ``morph``, ``sanity_step``,
    ``tab`` (the open tab), ``attack_method``, ``epsilon`` (the robustness tab's L∞ radius).
    Read-only: ``explanation``, ``probabilities`` (of the image as shown), ``shown`` (what
    that image is), ``segments``, ``masked``, ``counterfactual``, ``sanity``,
    ``faithfulness``, ``counterfactual_strip`` (a one-pass method's x′ toward every class),
    ``influence``, ``sensitivity``, ``attack``, ``error``, ``status``,
    ``progress`` (of the maps), ``tab_progress`` (of the open tab's work).

    ``train=(images, labels)`` (and ``checkpoints=``, state_dicts saved during training) feed
    the influence tab; ``actor=`` (a ``CFRLActor`` from ``train_cfrl``) the ``cfrl`` search
    of the counterfactual tab, for a model other than the demo CNN.
    """

    method = MethodName(methods.DEFAULT_METHOD)
    params = MethodParams()
    target = ClassIndex(0)
    baseline = Baseline("zero")
    baseline_alpha = Fraction(0.0, "baseline_alpha", "0 = the baseline, 1 = the image")
    abs_values = traitlets.Bool(False)
    top_k = traitlets.Int(10)
    pinned = ClassList()
    shared_scale = traitlets.Bool(False)
    colour_image = traitlets.Bool(False)
    segmentation = Choice("slic", SEGMENTATIONS)
    hidden_segments = traitlets.List(traitlets.Int())
    counterfactual_target = ClassIndex(None, allow_none=True)
    counterfactual_method = Choice("wachter", CF_METHODS)
    morph = Fraction(0.0, "morph", "0 = x, 1 = x′")
    sanity_step = traitlets.Int(0)
    tab = Choice("", TAB_NAMES)
    attack_method = Choice("saliency", ATTACK_METHODS)
    epsilon = Fraction(8 / 255, "epsilon", "the L∞ radius, in pixel units of a 0..1 image")

    explanation = traitlets.Instance(Explanation, allow_none=True, read_only=True)
    probabilities = traitlets.Any(None, read_only=True)
    shown = traitlets.Unicode("the image", read_only=True)
    segments = traitlets.Any(None, read_only=True)
    masked = traitlets.Any(None, read_only=True)
    counterfactual = traitlets.Any(None, read_only=True)
    counterfactual_strip = traitlets.Any(None, read_only=True)
    sanity = traitlets.Any(None, read_only=True)
    faithfulness = traitlets.Dict(read_only=True)
    error = traitlets.Unicode("", read_only=True)
    status = traitlets.Unicode("", read_only=True)
    progress = traitlets.Float(-1.0, read_only=True)
    influence = traitlets.Any(None, read_only=True)
    sensitivity = traitlets.Any(None, read_only=True)
    attack = traitlets.Any(None, read_only=True)
    tab_progress = traitlets.Float(-1.0, read_only=True)

    def __init__(self, model, x, *, method: str = methods.DEFAULT_METHOD,
                 target: int | None = None, baseline: Any = "zero", baseline_alpha: float = 0.0,
                 abs_values: bool = False, data: Any = None, classes: Sequence[str] | None = None,
                 preprocess: Callable | None = None, output: str = "auto", top_k: int = 10,
                 weights: Any = None, layout: str = "NCHW", train: Any = None,
                 checkpoints: Sequence | None = None, actor: Any = None, **params):
        super().__init__()
        self.adapter = ModelAdapter(model, preprocess=preprocess, classes=classes, output=output,
                                    weights=weights, layout=layout)
        classes = self.adapter.classes  # given, or the torchvision weights' categories
        self.image, self.notes = self.adapter.image(x)
        self.adapter.cfrl_actor = actor  # the counterfactual tab's cfrl searches use it
        self.data = self.adapter.batch(data, self.image) if data is not None else None
        self.train = trust_requests.training_set(self.adapter, train, self.image)
        self.checkpoints = trust_requests.checked_checkpoints(self.adapter, checkpoints)
        self.influencers: dict = {}
        self.sensitivity_of: tuple = ()  # the last view asked for (its sensitivity)
        self.influence_of: int | None = None  # the last target asked for (its influence)
        self.strip_of: str | None = None  # the method of the strip shown or on its way
        self.base_probabilities = self.adapter.probabilities(self.image)[0].float().cpu().numpy()
        self.n_classes = len(self.base_probabilities)
        self.image_shape = tuple(self.image.shape[1:])
        self.labels = (list(classes) if classes is not None
                       else [str(i) for i in range(self.n_classes)])
        if len(self.labels) != self.n_classes:
            raise InputError(f"{len(self.labels)} class names for a model with {self.n_classes} "
                             "outputs: pass one name per class")
        self.prediction = int(np.argmax(self.base_probabilities))
        self.store = ExplanationStore()
        self.engine = Engine(self.adapter, CHANNELS)
        self.apply_lock = self.engine.apply_lock
        self._inflight = None
        self.sanity_cache: dict = {}
        self.method = method
        self.params = dict(params)
        self.baseline, self.baseline_alpha, self.abs_values = baseline, baseline_alpha, abs_values
        self.top_k = top_k
        self.target = self.prediction if target is None else target
        if data is not None:
            self.counterfactual_method = "prototype"
        self.set_trait("probabilities", self.base_probabilities)
        self._wire()
        self._request_maps()

    # -- public ------------------------------------------------------------------------
    def wait(self, timeout: float = 60.0) -> ViewState:
        """Block until every requested computation is shown; TimeoutError otherwise."""
        if not self.engine.wait(timeout):
            raise TimeoutError(f"the view did not settle within {timeout} s "
                               f"(status: {self.status})")
        return self

    def close(self) -> None:
        self.engine.close()

    def label(self, index: int) -> str:
        return self.labels[index]

    def shown_classes(self) -> list[int]:
        """The classes on screen: all of them for up to ``top_k`` classes, else the top k by
        probability; then the target and pinned classes."""
        if self.n_classes <= self.top_k:
            base = list(range(self.n_classes))
        else:
            order = np.argsort(-self.base_probabilities, kind="stable")
            base = [int(i) for i in order[:self.top_k]]
        return base + [c for c in dict.fromkeys([self.target, *self.pinned]) if c not in base]

    def key(self) -> ViewKey:
        return ViewKey.of(self.method, self.params, self.baseline, self.baseline_alpha)

    def baseline_image(self):
        """The view's baseline (1,C,H,W), blended: what explanations, masks and curves use."""
        return baseline_for(self.adapter, self.image, self.baseline, self.baseline_alpha, self.data)

    def fail(self, message: str) -> None:
        """Show ``message`` in the status line; the last good view stays."""
        with self.apply_lock:
            self.set_trait("error", message)
            self.set_trait("status", f"error: {message}")
            self.set_trait("progress", -1.0)

    def set(self, name: str, value) -> None:
        """Set a trait from a control; a bad value shows in the status line, not raised."""
        try:
            setattr(self, name, value)
        except (InputError, traitlets.TraitError) as error:
            self.fail(str(error))

    # -- wiring ------------------------------------------------------------------------
    def _wire(self) -> None:
        self.observe(self._on_method, "method")
        self.observe(lambda _: self._request_maps(),
                     ["params", "target", "top_k", "pinned", "baseline", "baseline_alpha"])
        self.observe(lambda _: requests.request_mask(self),
                     ["hidden_segments", "baseline", "baseline_alpha"])
        self.observe(lambda _: requests.request_segments(self), ["segmentation", "tab"])
        self.observe(lambda _: requests.request_counterfactual(self),
                     ["counterfactual_target", "counterfactual_method"])
        self.observe(lambda _: requests.request_strip(self), ["counterfactual_method", "tab"])
        self.observe(lambda _: requests.update_probabilities(self),
                     ["morph", "masked", "counterfactual"])
        self.observe(lambda _: requests.request_diagnostics(self), "tab")
        self.observe(lambda _: trust_requests.follow_method(self), ["method", "params"])
        self.observe(lambda _: trust_requests.on_change(self),
                     ["tab", "target", "method", "params", "epsilon"])
        trust_requests.follow_method(self)

    @traitlets.validate("top_k")
    def _check_top_k(self, proposal):
        value = proposal["value"]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError("top_k must be a positive int (the number of classes shown), "
                             f"got {value!r}")
        return int(value)

    @traitlets.validate("hidden_segments")
    def _check_hidden(self, proposal):
        hidden = sorted(set(proposal["value"]))
        if self.segments is not None:
            jobs.masked_ids_valid(self.segments, hidden)
        return hidden

    def _on_method(self, change) -> None:
        self.params = {}
        self._request_maps()

    def submit(self, channel: str, work, apply, label: str = "", supersedes=(),
               progress=None) -> None:
        """Ask the engine for ``work(state, job=...)`` on ``channel``; ``apply(result)`` runs
        in the guarded step if it is still the newest request; failures reach the status.
        ``progress(label, fraction)``: the map's progress goes to the status line."""
        if channel == "explain":
            progress = self._on_progress
        self.engine.submit(channel, lambda job: work(self, job=job), apply, self._failed(channel),
                           on_progress=progress, supersedes=supersedes, label=label)

    def _failed(self, channel: str):
        def fail(message: str) -> None:
            if channel == "explain":
                self._inflight = None
            if channel == "counterfactual":
                self.set_trait("counterfactual", None)
            if channel == "strip":
                self.strip_of = None
                self.set_trait("counterfactual_strip", {})  # none: the panel stops waiting
            if channel in ("influence", "sensitivity", "attack"):
                self.set_trait("tab_progress", -1.0)
            self.fail(message)
        return fail

    def _on_progress(self, label: str, fraction: float) -> None:
        with self.apply_lock:
            self.set_trait("progress", fraction)
            refining = self.explanation.refining if self.explanation is not None else ""
            self.set_trait("status", f"computing {label}… {fraction:.0%}"
                           + (f" · showing {refining}" if refining else ""))

    def _busy(self, what: str) -> None:
        with self.apply_lock:
            self.set_trait("status", f"computing {what}…")

    # -- the maps ----------------------------------------------------------------------
    def _request_maps(self) -> None:
        try:
            key = self.key()
            spec = methods.spec(key.method)
            spec.resolve(dict(key.params))
        except InputError as error:
            self.fail(str(error))
            return
        needed = self.shown_classes()
        version = self.adapter.version()
        missing = self.store.missing(version, key, needed)
        if not missing:
            self._inflight = None
            stored = self.store.get(version, key)
            self.engine.apply_now("explain", lambda: self._show(stored), self._failed("explain"))
            return
        if self.store.get(version, key) is None or not mergeable(key.method, dict(key.params)):
            missing = needed
        if self._inflight == (version, key, tuple(missing)):
            return  # already being computed
        self._inflight = (version, key, tuple(missing))
        self._busy(spec.label)
        self.submit("explain", partial(jobs.explanation, key=key, baseline=self.baseline,
                                        targets=tuple(missing)),
                     self._show, spec.label, supersedes=("curves", "sanity"))

    def show_round(self, e: Explanation) -> None:
        """Show an interim round of a slow method while it refines (the bars, segments and
        diagnostics wait for the final maps)."""
        if set(self.shown_classes()) <= set(e.targets):
            self.set_trait("error", "")
            self.set_trait("status", f"computing {methods.spec(e.method).label}… "
                           f"showing {e.refining}")
            self.set_trait("explanation", e)

    def _show(self, e: Explanation) -> None:
        self._inflight = None
        if not set(self.shown_classes()) <= set(e.targets):
            self._request_maps()  # the shown classes changed meanwhile
            return
        self.set_trait("explanation", e)
        self.set_trait("error", "")
        self.set_trait("progress", -1.0)
        spec = methods.spec(e.method)
        self.set_trait("status",
                       f"{spec.label} · {len(e.targets)} classes · {1000 * e.seconds:.0f} ms")
        if spec.superpixels and e.params["segmentation"] != self.segmentation:
            self.segmentation = e.params["segmentation"]
        else:
            requests.request_segments(self)
        requests.update_probabilities(self)
        requests.request_diagnostics(self)
