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
        self._stopped = ""  # what the last stop left behind
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
        self.run.on_click(lambda _: self.start())
        self.stop = widgets.Button(description="stop", layout={"width": "80px"})
        self.stop.add_class("xai-attack-stop")
        self.stop.on_click(lambda _: self.halt())
        self.bar = progress_bar("attack")
        self.note = text("", "muted")
        self.note.add_class("xai-attack-note")
        self.before, self.after = HeatmapView(size=150), HeatmapView(size=150)
        for view, name in ((self.before, "before"), (self.after, "after")):
            view.add_class(f"xai-attack-{name}")  # two abreast where there is room
            view.layout = widgets.Layout(width="calc(50% - 12px)", min_width="280px")
        row = {"flex_flow": "row wrap", "gap": "4px 16px", "align_items": "center"}
        return [text("<b>robustness</b>: does the map survive a change of the image you "
                     "cannot see? A map that moves while the prediction stays should not be "
                     "trusted"),
                self.epsilon, self.sensitivity_note,
                widgets.Box([self.method, self.top_k, self.steps,
                             widgets.HBox([self.run, self.stop], layout={"gap": "8px"})],
                            layout=row),
                widgets.Box([self.bar, self.note], layout=row),
                widgets.Box([self.before, self.after], layout={"flex_flow": "row wrap",
                                                               "gap": "8px 24px",
                                                               "width": "100%"})]

    def start(self) -> None:
        """*run attack*: the attack with the controls' settings."""
        self._stopped = ""
        trust_requests.request_attack(self.state, self.top_k.value, self.steps.value)

    def halt(self) -> None:
        """*stop*: the running attack ends; the last finished result stays."""
        if self.state.tab_progress >= 0:
            self._stopped = f"stopped at {self.state.tab_progress:.0%}"
        trust_requests.stop_attack(self.state)
        self.guarded(self.render)

    def render(self) -> None:
        state = self.state
        running = state.tab_progress >= 0 and state.tab == self.name
        show_progress(self.bar, state.tab_progress if running else -1.0)
        s = state.sensitivity
        if s is not None:
            label = methods.spec(s.method).label
            set_text(self.sensitivity_note,
                     f"max-sensitivity of {escape(label)} (class {escape(state.label(s.target))})"
                     f": <b>{s.value:.3f}</b>: the map on screen changes by up to {s.value:.0%} "
                     f"of its norm under {s.n} random perturbations of at most ε = "
                     f"{s.epsilon:.3f} per pixel (pixel values 0..1)")
        elif state.error and not running:
            set_text(self.sensitivity_note, f"<span class='xai-error'>⚠ "
                                            f"{escape(state.error)}</span>")
        else:
            set_text(self.sensitivity_note, "measuring max-sensitivity…", "muted")
        a = state.attack
        for view in (self.before, self.after):
            view.layout.display = "none" if a is None else None
        result = self._show(a) if a is not None else ""
        news = "attacking…" if running else self._stopped
        if a is None and not news:
            news = "run the attack to search a perturbation within ε that moves the map"
        elif a is not None and news:
            news += "; the last finished attack is shown"
        muted = f"<span class='xai-muted'>{escape(news)}</span>" if news else ""
        set_text(self.note, " · ".join(part for part in (muted, result) if part), "body")
        covered = state.method in ATTACK_METHODS
        self.method.description = "attack map" if covered else "attack map *"
        self.method.tooltip = ("" if covered else f"the attack covers {', '.join(LABELS.values())}"
                               f"; the map on screen ({methods.spec(state.method).label}) is "
                               "measured by max-sensitivity only")

    def _show(self, a) -> str:
        """Draw attack ``a``; its outcome in words."""
        state = self.state
        vmax = float(max(np.abs(a.map_before).max(), np.abs(a.map_after).max())) or 1.0
        grey = a.image.shape[0] == 3 and not state.colour_image
        label = LABELS[a.method]
        for view, image, m, title, convention in (
                (self.before, state.image[0].cpu().numpy(), a.map_before,
                 f"before: {label} of the image", ""),
                (self.after, a.image, a.map_after, f"after: {label} of the attacked image",
                 "both maps on one colour scale; beside each map, its image")):
            with view.hold_sync():
                view.image = display_image(image)
                view.grey = grey
                view.attribution = encode(m)
                view.vmax = vmax
                view.title = title
                view.convention = convention
        kept = "kept" if a.kept_class else "<span class='xai-error'>lost</span>"
        change = (f"its probability {a.probability_change:+.3f}"
                  if abs(a.probability_change) >= 5e-4 else "its probability unchanged")
        return (f"<b>{a.topk_intersection:.0%}</b> of the map's top-{a.top_k} pixels are still "
                f"in its top {a.top_k} after the attack · class {escape(state.label(a.target))} "
                f"{kept}, {change} · L∞ {a.linf:.3f} after {a.steps_run} steps")
