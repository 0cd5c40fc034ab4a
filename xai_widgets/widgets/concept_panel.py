"""Make a concept of clusters and test it with TCAV (a panel of the ``DatasetWidget``).

The chosen clusters' images are the positives (SpRAy may split one strategy over several
clusters: pick them all), the other clusters' images the negatives (at most ``CAP`` a side);
the concept is learned at the model's last convolutional block, then TCAV asks whether the
shortcut's class (the widget's ``target``, else the class most of the clusters' images are
predicted as) rises along it, on that class's images, against random directions. Writes
``chosen``, ``concept``, ``tcav_result`` and ``target`` of the ``ShortcutState``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from xai_widgets.concepts import Concept
from xai_widgets.tcav import tcav
from xai_widgets.widgets.controls import FIT
from xai_widgets.widgets.panel import Panel, escape, set_text, text

CAP = 100  # images a side for the concept, and of the class for TCAV
RED = "#d62728"


class ConceptPanel(Panel):
    """``picker`` (the clusters: one or several), ``make`` (the button), ``note`` (progress
    or the error), ``result`` (the concept and its TCAV verdict); ``tcav_runs`` (30) concept
    and random experiments; ``wait(timeout)``."""

    name, title = "concept", "concept"
    watch = ("concept", "tcav_result")
    tcav_runs = 30

    def build(self) -> list:
        state = self.state
        self.picker = widgets.SelectMultiple(
            options=[(f"cluster {c}: {len(state.members(c))} images ({state.most(c)})", c)
                     for c in range(state.n_clusters())],
            rows=min(state.n_clusters(), 6), description="clusters",
            style={"description_width": "60px"}, layout={"width": "360px", "max_width": FIT})
        self.picker.add_class("xai-concept-cluster")
        self.bind(self.picker, "chosen")
        self.make = widgets.Button(description="make concept", button_style="primary",
                                   tooltip="learn the cluster's concept and test it with TCAV")
        self.make.add_class("xai-make-concept")
        self.make.on_click(lambda _button: self.request())
        self.note = text("", "muted")
        self._counts = (0, 0)
        self.result = text("")
        self.result.add_class("xai-concept-result")
        return [text("<b>concept</b>: the chosen clusters' images against the others' "
                     "(ctrl-click to choose several); does the model's class rise along it "
                     "(TCAV)?"),
                widgets.Box([self.picker, self.make],
                            layout={"flex_flow": "row wrap", "gap": "8px"}),
                self.note, self.result]

    def wait(self, timeout: float = 180.0) -> ConceptPanel:
        self.state.wait(timeout)
        return self

    # -- the job -----------------------------------------------------------------------------
    def request(self) -> None:
        state, chosen = self.state, tuple(int(c) for c in self.picker.value)
        if not chosen:
            self._failed("choose one or more clusters first")
            return
        name = f"cluster{'s' if len(chosen) > 1 else ''} {', '.join(map(str, chosen))}"
        self.make.disabled = True
        set_text(self.note, f"learning the concept of {name}…", "muted")
        state.submit("concept", lambda job: self._work(job, chosen, name), self._apply,
                     self._failed, supersedes=("fix",))

    def _work(self, job, chosen: tuple, name: str):
        state = self.state
        rng = np.random.default_rng(0)
        inside = state.members(chosen)
        outside = np.flatnonzero(~np.isin(state.clusters, chosen))
        positives, negatives = _sample(inside, rng), _sample(outside, rng)
        concept = Concept.from_images(state.model, state.images[positives],
                                      state.images[negatives],
                                      preprocess=state.preprocess, name=name)
        job.check()
        target = state.shortcut_class(chosen)
        of_class = np.flatnonzero(state.predictions == target)
        set_text(self.note, f"testing the concept with TCAV on {min(len(of_class), CAP)} "
                            f"images of class {escape(state.label(target))} "
                            f"({self.tcav_runs} runs)…", "muted")
        result = tcav(state.model, state.images[_sample(of_class, rng)], concept, target,
                      runs=self.tcav_runs)
        return concept, result, target, positives, len(negatives)

    def _apply(self, result) -> None:
        concept, tcav_result, target, positives, n_negatives = result
        state, self._counts = self.state, (len(positives), n_negatives)
        state.set_trait("tcav_result", None)  # never the old result beside the new concept
        state.set_trait("target", target)
        state.set_trait("positives", positives)
        state.set_trait("concept", concept)
        state.set_trait("tcav_result", tcav_result)
        self.make.disabled = False
        set_text(self.note, "", "muted")

    def _failed(self, message: str) -> None:
        self.make.disabled = False
        set_text(self.note, f"<span class='xai-error'>⚠ {escape(message)}</span>")

    # -- drawing -----------------------------------------------------------------------------
    def render(self) -> None:
        concept, result = self.state.concept, self.state.tcav_result
        if concept is None or result is None:
            set_text(self.result, "")
            return
        label = escape(self.state.label(result.target))
        mean, spread = result.random_spread
        verdict = (f"<span class='xai-ok'>the model uses this concept for class {label}</span>"
                   if result.significant else
                   "not significant: the model does not rely on it more than on a random "
                   "direction")
        set_text(self.result,
                 f"<b>{escape(concept.name)}</b>: {self._counts[0]} images against "
                 f"{self._counts[1]} of the other clusters, at layer "
                 f"<code>{escape(concept.layer)}</code>; "
                 f"held-out CAV accuracy {concept.accuracy:.0%}<br>"
                 f"<span class='xai-tcav'>TCAV score {result.score:.2f} for class {label}, "
                 f"random directions {mean:.2f} ± {spread:.2f}, p = {result.p_value:.0e}: "
                 f"{verdict}</span><br>{spread_picture(result)}")


def _sample(indices: np.ndarray, rng) -> np.ndarray:
    """At most ``CAP`` of ``indices``, in their order (a random choice among more)."""
    if len(indices) <= CAP:
        return indices
    return np.sort(rng.choice(indices, CAP, replace=False))


def spread_picture(result, width: int = 260) -> str:
    """A 0..1 axis with the random directions' scores (grey dots, their mean ± sd as a band)
    and the concept's runs (red ticks) and mean score (a red bar), as inline SVG."""
    left, span = 12, width - 24
    x = lambda v: left + span * float(np.clip(v, 0, 1))  # noqa: E731
    mean, spread = result.random_spread
    band = (f"<rect x='{x(mean - spread):.1f}' y='8' height='16' fill='currentColor' "
            f"opacity='0.15' width='{x(mean + spread) - x(mean - spread):.1f}'/>")
    dots = "".join(f"<circle cx='{x(v):.1f}' cy='16' r='2.5' fill='currentColor' "
                   "opacity='0.45'/>" for v in result.random_scores)
    ticks = "".join(f"<line x1='{x(v):.1f}' x2='{x(v):.1f}' y1='9' y2='23' stroke='{RED}' "
                    "stroke-opacity='0.35'/>" for v in result.scores)
    score = (f"<rect x='{x(result.score) - 2:.1f}' y='4' width='4' height='24' "
             f"fill='{RED}'/>")
    axis = (f"<line x1='{left}' x2='{left + span}' y1='30' y2='30' stroke='currentColor' "
            "stroke-opacity='0.6'/>" + "".join(
                f"<text x='{x(v):.1f}' y='44' font-size='11' text-anchor='middle' "
                f"fill='currentColor'>{v:g}</text>" for v in (0, 0.5, 1)))
    title = (f"<title>random directions {mean:.2f} ± {spread:.2f} (grey), the concept "
             f"{result.score:.2f} (red)</title>")
    return (f"<svg class='xai-tcav-spread' width='{width}' height='48' role='img' "
            f"viewBox='0 0 {width} 48'>{title}{band}{dots}{ticks}{score}{axis}</svg>"
            "<span class='xai-muted'> grey: random directions, red: the concept</span>")
