"""Fix the shortcut a concept found (a panel of the ``DatasetWidget``, shown once a concept
exists).

- *project out* (P-ClArC): a copy of the model with the concept removed at its layer; the
  strength slider changes that copy's edit in place, and every change updates, on the
  panel's engine (the newest change wins, an older computation is dropped): the maps of a
  few of the cluster's images for the shortcut's class, before and after, with each image's
  predicted class and probability before → after, and a quick report (``correct.report``
  on ``quick_images`` held-out images, ``quick_relevance`` maps, no TCAV);
- *fine-tune* (A-ClArC, or RRR with the concept's region as mask): a copy trained on half
  of the labelled images, with a progress bar and a cancel button; then the same view;
- *accept* sets ``fixed_model`` (a copy of the model shown); *full report* measures it on
  every held-out image, TCAV included.

Writes ``fix_method``, ``strength`` and ``fixed_model`` of the ``ShortcutState``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from xai_widgets import correct
from xai_widgets.adapter import ModelAdapter
from xai_widgets.batch import explain_many
from xai_widgets.correction_report import CorrectionReport, html_table
from xai_widgets.encoding import encode
from xai_widgets.widgets.controls import FIT
from xai_widgets.widgets.panel import Panel, escape, set_text, text
from xai_widgets.widgets.shortcut_state import FIX_METHODS
from xai_widgets.widgets.views import TilesView

SHOWN = 6  # images of the cluster shown before and after


@dataclass
class Shown:
    """One corrected model as shown: what it is, its maps and probabilities on the shown
    images, its quick report, and the seconds the update took."""

    model: object
    strength: float | None
    what: str
    indices: np.ndarray
    before_maps: np.ndarray
    before_probabilities: np.ndarray
    maps: np.ndarray
    probabilities: np.ndarray
    report: object
    seconds: float


class FixPanel(Panel):
    """``method``, ``slider`` (strength), ``tune`` / ``cancel`` / ``progress`` (fine-tuning),
    ``accept``, ``full`` (the full report's button), ``note`` (what is shown, or the error),
    ``tiles`` (before and after), ``table``; ``report``: the ``CorrectionReport`` last shown;
    ``wait(timeout)``."""

    name, title = "fix", "fix"
    watch = ("concept", "fix_method")
    quick_images, quick_relevance = 240, 48

    def build(self) -> list:
        self.report = None  # the CorrectionReport shown
        self._shown: Shown | None = None
        self._before = self._projected = None
        self._tiled: tuple = ()  # the indices of the images the tiles hold
        self.method = widgets.Dropdown(options=[(v, k) for k, v in FIX_METHODS.items()],
                                       description="method", style={"description_width": "60px"},
                                       layout={"width": "380px", "max_width": FIT})
        self.bind(self.method, "fix_method")
        self.slider = widgets.FloatSlider(min=0, max=1, step=0.05, description="strength",
                                          readout_format=".2f", style={"description_width": "60px"},
                                          layout={"width": "340px", "max_width": FIT})
        self.slider.add_class("xai-fix-strength")
        self.bind(self.slider, "strength")
        self.tune = self._button("fine-tune", "xai-fix-tune", self.request_finetune, "primary")
        self.cancel = self._button("cancel", "xai-fix-cancel", self.cancel_finetune)
        self.progress = widgets.FloatProgress(min=0, max=1, layout={"width": "200px",
                                                                    "max_width": FIT})
        self.training = widgets.Box([self.tune, self.cancel, self.progress],
                                    layout={"flex_flow": "row wrap", "gap": "8px",
                                            "align_items": "center"})
        self.accept = self._button("accept", "xai-fix-accept", self.accept_fix, "success",
                                   "set dw.fixed_model to the model shown")
        self.full = self._button("full report (TCAV)", "xai-fix-full", self.request_full,
                                 tooltip="every held-out image, relevance and TCAV included")
        self.note = text("", "muted")
        self.tiles = TilesView(size=72)
        self.table = text("")
        self.table.add_class("xai-fix-report")
        self.full_table = text("")
        self.on(["concept"], self._new_concept)
        self.on(["strength"], self.request_projection)
        self.on(["fix_method"], self._on_method)
        return [text("<b>fix</b>: remove the concept and compare, before → after"),
                widgets.Box([self.method, self.slider], layout={"flex_flow": "row wrap",
                                                                 "gap": "8px"}),
                self.training, self.note, self.tiles, self.table,
                widgets.Box([self.accept, self.full], layout={"flex_flow": "row wrap",
                                                               "gap": "8px"}),
                self.full_table]

    def _button(self, label, css, action, style="", tooltip="") -> widgets.Button:
        button = widgets.Button(description=label, button_style=style, tooltip=tooltip)
        button.add_class(css)
        button.on_click(lambda _button: action())
        return button

    def wait(self, timeout: float = 180.0) -> FixPanel:
        self.state.wait(timeout)
        return self

    def render(self) -> None:
        projecting = self.state.fix_method == "project"
        self.layout.display = "none" if self.state.concept is None else ""
        self.slider.layout.display = "" if projecting else "none"
        self.training.layout.display = "none" if projecting else ""
        self.tune.description = f"fine-tune ({_label(self.state.fix_method)})"
        if not self.tune.disabled:
            self.progress.layout.visibility = "hidden"
        self.cancel.disabled = not self.tune.disabled

    # -- requests ----------------------------------------------------------------------------
    def _new_concept(self) -> None:
        self._before = self._projected = None
        self._on_method()

    def _on_method(self) -> None:
        """A new method (or concept): what was shown goes; projection shows at once."""
        if self.tune.disabled:  # fine-tuning for the method or concept before
            self.state.engine.supersede("finetune")
            self._idle()
        self._shown = self.report = None
        with self.tiles.hold_sync():
            self.tiles.groups, self.tiles.captions = [], []
        set_text(self.table, "")
        set_text(self.full_table, "")
        if self.state.fix_method == "project":
            self.request_projection()
        elif self.state.concept is not None:
            set_text(self.note, f"fine-tune a copy on {len(self.state.train_images)} labelled "
                                f"images ({escape(self.state.holdout_note)})", "muted")

    def request_projection(self) -> None:
        state = self.state
        if state.concept is None or state.fix_method != "project":
            return
        concept, strength = state.concept, float(state.strength)
        state.submit("fix", lambda job: self._project(job, concept, strength), self._show,
                     self._failed, supersedes=("finetune",))

    def request_finetune(self) -> None:
        state, method = self.state, self.state.fix_method
        if state.concept is None or method == "project":
            return
        self.tune.disabled, self.cancel.disabled = True, False
        self.progress.value, self.progress.layout.visibility = 0.0, "visible"
        label = _label(method)
        set_text(self.note, f"fine-tuning a copy ({label}) on {len(state.train_images)} "
                            "images…", "muted")
        concept = state.concept
        state.submit("finetune", lambda job: self._finetune(job, concept, method, label),
                     self._finetuned, self._failed, on_progress=self._on_progress,
                     supersedes=("fix",))

    def cancel_finetune(self) -> None:
        self.state.engine.supersede("finetune")
        self._idle()
        set_text(self.note, "fine-tuning cancelled; nothing changed", "muted")

    def accept_fix(self) -> None:
        frozen = self._frozen()
        if frozen is None:
            return
        self.state.set_result("fixed_model", frozen)
        set_text(self.note, f"<span class='xai-ok'>✓</span> accepted: <code>dw.fixed_model"
                            f"</code> is a copy of the model {escape(self._shown.what)}; your "
                            "model is unchanged")

    def request_full(self) -> None:
        frozen, state = self._frozen(), self.state
        if frozen is None:
            return
        what, concept = self._shown.what, state.concept
        set_text(self.full_table, f"computing the full report of the model {escape(what)} "
                                  "(TCAV: 30 runs per model)…", "muted")

        def work(job):
            return correct.report(state.model, frozen, state.test_images, state.test_labels,
                                  artifact=concept, target=state.target, method=state.method)

        def show(table) -> None:
            self.report = table
            set_text(self.full_table, f"<b>full report</b>, the model {escape(what)}:"
                                      f"{html_table(table)}")

        state.submit("report", work, show,
                     lambda message: set_text(self.full_table, _error(message)))

    def _frozen(self):
        """A copy of the model shown (its edit fixed at the strength shown), or None."""
        shown = self._shown
        if shown is None:
            set_text(self.note, _error("nothing to accept yet: wait for the view, or "
                                       "fine-tune first"))
            return None
        frozen = copy.deepcopy(shown.model)
        edit = correct.edit_of(frozen)
        if edit is not None and shown.strength is not None:
            edit.strength = shown.strength
        return frozen

    # -- work (on the engine) ----------------------------------------------------------------
    def _project(self, job, concept, strength: float) -> Shown:
        start = time.perf_counter()
        if self._projected is None or self._projected[0] is not concept:
            self._projected = (concept, correct.project_out(self.state.model, concept))
        correct.edit_of(self._projected[1]).strength = strength
        return self._evaluate(job, concept, self._projected[1], start, strength,
                              f"with the concept projected out at strength {strength:.2f}")

    def _finetune(self, job, concept, method: str, label: str) -> Shown:
        start, state = time.perf_counter(), self.state
        tuned = correct.finetune(state.model, state.train_images, state.train_labels,
                                 concept=concept, method=method, progress=job.report,
                                 cancelled=job.cancelled)
        return self._evaluate(job, concept, tuned, start, None, f"fine-tuned ({label})")

    def _evaluate(self, job, concept, model, start: float, strength, what: str) -> Shown:
        state = self.state
        indices, before_maps, before_probabilities, before_table = self._baseline(concept)
        images = state.images[indices]
        maps = explain_many(model, images, state.target, state.method,
                            preprocess=state.preprocess, output=state.output)
        probabilities = _probabilities(model, images, state)
        job.check()
        table = self._quick_report(concept, {"after": model}, before_table)
        return Shown(model, strength, what, indices, before_maps, before_probabilities, maps,
                     probabilities, table, time.perf_counter() - start)

    def _quick_report(self, concept, fixed, before=None) -> CorrectionReport:
        """The report on ``quick_images`` held-out images, without TCAV."""
        state, n = self.state, self.quick_images
        return correct.report(state.model, fixed, state.test_images[:n], state.test_labels[:n],
                              artifact=concept, target=state.target, method=state.method,
                              n_relevance=self.quick_relevance, tcav_runs=0, before=before)

    def _baseline(self, concept):
        """The shown images, their maps and probabilities under the user's model, and its
        quick report: once per concept, so a change of strength measures one model only."""
        if self._before is None or self._before[0] is not concept:
            state = self.state
            indices = np.asarray(state.positives)[:SHOWN]
            images = state.images[indices]
            maps = explain_many(state.model, images, state.target, state.method,
                                preprocess=state.preprocess, output=state.output)
            self._before = (concept, indices, maps, _probabilities(state.model, images, state),
                            self._quick_report(concept, {}))
        return self._before[1:]

    # -- results (in the engine's guarded step) ----------------------------------------------
    def _on_progress(self, _label: str, fraction: float) -> None:
        self.progress.value = fraction
        set_text(self.note, f"fine-tuning… {fraction:.0%}", "muted")

    def _finetuned(self, shown: Shown) -> None:
        self._idle()
        self._show(shown)

    def _show(self, shown: Shown) -> None:
        self._shown, self.report = shown, shown.report
        indices, before, p_before = shown.indices, shown.before_maps, shown.before_probabilities
        state, n, label = self.state, len(indices), self.state.label
        captions = [f"#{i}\n{label(int(p.argmax()))} · {p.max():.0%}"
                    for i, p in zip(indices, p_before, strict=True)]
        captions += [f"#{i}\n→ {label(int(p.argmax()))} · {p.max():.0%}"
                     for i, p in zip(indices, shown.probabilities, strict=True)]
        peaks = np.maximum(np.abs(before).reshape(n, -1).max(1),
                           np.abs(shown.maps).reshape(n, -1).max(1))
        with self.tiles.hold_sync():
            if self._tiled != tuple(indices):  # the images travel once per concept
                images = state.images[indices].numpy()
                self.tiles.images = encode(np.concatenate([images, images]))
                self._tiled = tuple(indices)
            self.tiles.maps = encode(np.concatenate([before, shown.maps]))
            self.tiles.vmax = [float(v) for v in np.concatenate([peaks, peaks])]
            self.tiles.captions = captions
            self.tiles.groups = [
                {"title": f"before: your model, maps of class {label(state.target)}",
                 "indices": list(range(n))},
                {"title": f"after: the model {shown.what}", "indices": list(range(n, 2 * n))}]
        counts = shown.report.counts
        set_text(self.table, f"{html_table(shown.report)}<div class='xai-muted'>live: "
                             f"{counts['clean']} held-out images, relevance over "
                             f"{counts['relevance']}, no TCAV; <i>full report</i> measures all "
                             f"{len(state.test_images)}, TCAV included</div>")
        set_text(self.note, f"<span class='xai-ok'>✓</span> the model {escape(shown.what)} · "
                            f"updated in {1000 * shown.seconds:.0f} ms", "muted")

    def _failed(self, message: str) -> None:
        self._idle()
        set_text(self.note, _error(message))

    def _idle(self) -> None:
        self.tune.disabled, self.cancel.disabled = False, True
        self.progress.layout.visibility = "hidden"


def _probabilities(model, images, state) -> np.ndarray:
    adapter = ModelAdapter(model, preprocess=state.preprocess, output=state.output)
    return adapter.probabilities(images.to(adapter.device)).float().cpu().numpy()


def _label(method: str) -> str:
    return "A-ClArC" if method == "a_clarc" else "RRR"


def _error(message: str) -> str:
    return f"<span class='xai-error'>⚠ {escape(message)}</span>"
