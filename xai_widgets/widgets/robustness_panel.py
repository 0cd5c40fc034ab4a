"""Robustness: would the map survive a change of the image nobody can see?

- max-sensitivity of the map shown (the view's method, parameters and target): the largest
  relative change of the map over random perturbations within the L∞ ball ``epsilon``;
- the interpretation attack (Ghorbani et al. 2019): a perturbation within the same ball that
  keeps the predicted class while moving the map's top-k pixels away, run on request with a
  progress bar and a stop; the original map beside the attacked image and its map, and the
  share of the top-k pixels that survived.

Writes ``epsilon`` and ``attack_method``. See ``xai_widgets.robustness``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from xai_widgets import methods
from xai_widgets.encoding import encode
from xai_widgets.robustness import ATTACK_METHODS
from xai_widgets.widgets import trust_requests
from xai_widgets.widgets.controls import FIT, STYLE
from xai_widgets.widgets.influence_panel import progress_bar, show_progress
from xai_widgets.widgets.map_panel import display_image
from xai_widgets.widgets.panel import Panel, escape, set_text, text
from xai_widgets.widgets.views import HeatmapView

LABELS = {"saliency": "saliency", "integrated_gradients": "integrated gradients",
          "smoothgrad": "SmoothGrad"}


class RobustnessPanel(Panel):
    """``epsilon`` and ``method`` (bound to the state), ``top_k`` and ``steps`` (of the next
    attack), ``run``/``stop``, ``sensitivity_note``, ``note`` (the attack's outcome), and the
    maps ``before`` (the image) and ``after`` (the attacked image)."""

    name, title = "robustness", "robustness"
    watch = ("sensitivity", "attack", "tab_progress", "error", "colour_image")

    def build(self) -> list:
        state = self.state
        pixels = state.image_shape[-1] * state.image_shape[-2]
        self.epsilon = widgets.FloatSlider(min=0.002, max=0.1, step=0.002, readout_format=".3f",
                                           description="ε (L∞)", continuous_update=False,
                                           style=STYLE, layout={"width": "320px",
                                                                "max_width": FIT})
        self.epsilon.add_class("xai-epsilon")
        self.bind(self.epsilon, "epsilon")
        self.sensitivity_note = text("", "body")
        self.sensitivity_note.add_class("xai-sensitivity")
        self.method = widgets.Dropdown(options=[(LABELS[m], m) for m in ATTACK_METHODS],
                                       description="attack map", style=STYLE,
                                       layout={"width": "320px", "max_width": FIT})
        self.method.add_class("xai-attack-method")
        self.bind(self.method, "attack_method")
        self.top_k = widgets.BoundedIntText(value=trust_requests.default_top_k(state), min=1,
                                            max=pixels, description="top-k pixels", style=STYLE,
                                            layout={"width": "220px", "max_width": FIT})
        self.steps = widgets.BoundedIntText(value=100, min=1, max=1000, description="steps",
                                            style=STYLE, layout={"width": "220px",
                                                                 "max_width": FIT})
        self.run = widgets.Button(description="run attack", button_style="primary",
                                  layout={"width": "120px"})
        self.run.add_class("xai-attack-run")
        self.run.on_click(lambda _: trust_requests.request_attack(
            state, self.top_k.value, self.steps.value))
        self.stop = widgets.Button(description="stop", layout={"width": "80px"})
        self.stop.add_class("xai-attack-stop")
        self.stop.on_click(lambda _: trust_requests.stop_attack(state))
        self.bar = progress_bar("attack")
        self.note = text("", "muted")
        self.note.add_class("xai-attack-note")
        self.before, self.after = HeatmapView(size=180), HeatmapView(size=180)
        self.before.add_class("xai-attack-before")
        self.after.add_class("xai-attack-after")
        controls = widgets.VBox(
            [self.epsilon, self.sensitivity_note, self.method, self.top_k, self.steps,
             widgets.HBox([self.run, self.stop], layout={"gap": "8px"}), self.bar, self.note],
            layout={"flex": "0 1 340px", "min_width": "0"})
        maps = widgets.Box([self.before, self.after],
                           layout={"flex": "1 1 300px", "min_width": "0",
                                   "flex_flow": "row wrap", "gap": "8px"})
        return [text("<b>robustness</b>: does the map survive a change of the image you "
                     "cannot see? A map that moves while the prediction stays should not be "
                     "trusted"),
                widgets.Box([controls, maps], layout={"flex_flow": "row wrap", "gap": "12px"})]

    def render(self) -> None:
        state = self.state
        show_progress(self.bar, state.tab_progress if state.tab == self.name else -1.0)
        s = state.sensitivity
        if s is not None:
            label = methods.spec(s.method).label
            set_text(self.sensitivity_note,
                     f"max-sensitivity of {escape(label)} (class {escape(state.label(s.target))})"
                     f": <b>{s.value:.3f}</b> — the map changes by up to {s.value:.0%} of its "
                     f"norm under {s.n} random perturbations within ε = {s.epsilon:.3f}")
        elif state.error and state.tab_progress < 0:
            set_text(self.sensitivity_note, f"<span class='xai-error'>⚠ "
                                            f"{escape(state.error)}</span>")
        else:
            set_text(self.sensitivity_note, "measuring max-sensitivity…", "muted")
        a = state.attack
        for view in (self.before, self.after):
            view.layout.display = "none" if a is None else None
        if a is None:
            running = state.tab_progress >= 0
            set_text(self.note, "attacking…" if running else
                     "run the attack to search a perturbation within ε that moves the map",
                     "muted")
            return
        self._show(a)

    def _show(self, a) -> None:
        state = self.state
        kept = "kept" if a.kept_class else "<span class='xai-error'>lost</span>"
        cls = escape(state.label(a.target))
        set_text(self.note,
                 f"top-{a.top_k} pixels still in the top {a.top_k}: <b>{a.topk_intersection:.0%}"
                 f"</b> · class {cls} {kept}, p {a.probability_change:+.3f} · L∞ {a.linf:.3f} "
                 f"after {a.steps_run} steps", "body")
        vmax = float(max(np.abs(a.map_before).max(), np.abs(a.map_after).max())) or 1.0
        grey = a.image.shape[0] == 3 and not state.colour_image
        label = LABELS[a.method]
        for view, image, m, title in (
                (self.before, state.image[0].cpu().numpy(), a.map_before, f"{label}: the image"),
                (self.after, a.image, a.map_after,
                 f"{label}: attacked (top-{a.top_k} ∩ {a.topk_intersection:.0%})")):
            with view.hold_sync():
                view.image = display_image(image)
                view.grey = grey
                view.attribution = encode(m)
                view.vmax = vmax
                view.title = title
                view.convention = "same colour scale for both maps"
