"""The sanity and faithfulness tab of ExplainWidget.

- a slider over the model's layers shows the target's map after cascading randomisation
  (top layer first) of a copy of the model, with its rank correlation and SSIM to the
  original map: a map that does not change explains nothing;
- bqplot deletion and insertion curves of the map shown, against a random pixel order.

Traits (on the widget): ``sanity_step`` (how many layers are randomised), read-only
``sanity`` (the SanityCheck) and ``faithfulness`` ({"deletion": Curve, "insertion": Curve}).
"""

from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np
import traitlets

from xai_widgets.encoding import encode
from xai_widgets.engine import run_in_background
from xai_widgets.metrics import deletion_curve, insertion_curve
from xai_widgets.sanity import sanity_check, weighted_layers
from xai_widgets.widgets.controls import STYLE
from xai_widgets.widgets.views import HeatmapView

TAB = 2  # the panel's position among the widget's tabs


class DiagnosticsPanel(traitlets.HasTraits):
    """Mixin for ExplainWidget; expects ``_engine``, ``explanation``, ``target``, ``_fail``."""

    sanity_step = traitlets.Int(0)
    sanity = traitlets.Any(None, read_only=True)
    faithfulness = traitlets.Dict(read_only=True)

    def _build_diagnostics_panel(self) -> widgets.Widget:
        n_layers = len(weighted_layers(self._engine.adapter.model))
        self._sanity_slider = widgets.IntSlider(min=0, max=n_layers, description="randomised layers",
                                                style=STYLE, layout={"width": "340px"})
        self._sanity_slider.add_class("xai-sanity")
        self._sanity_view = HeatmapView(size=224)
        x_scale, y_scale = bqplot.LinearScale(min=0, max=1), bqplot.LinearScale(min=0, max=1)
        self._curves = bqplot.Lines(x=np.zeros(2), y=np.zeros((4, 2)),
                                    scales={"x": x_scale, "y": y_scale},
                                    colors=["#d62728", "#d62728", "#2ca02c", "#2ca02c"],
                                    line_style="solid", labels=["deletion", "deletion (random)",
                                                                "insertion", "insertion (random)"],
                                    display_legend=True, stroke_width=2)
        self._curve_chart = bqplot.Figure(
            marks=[self._curves], title="faithfulness: most relevant pixels first",
            axes=[bqplot.Axis(scale=x_scale, label="fraction of pixels removed / revealed",
                              tick_format=".0%"),
                  bqplot.Axis(scale=y_scale, orientation="vertical", tick_format=".0%",
                              label="p(target)")],
            legend_location="top-right", layout=widgets.Layout(width="440px", height="320px"))
        self._curve_chart.add_class("xai-faithfulness")
        self._curve_note = widgets.HTML()
        sanity_box = widgets.VBox([
            widgets.HTML("<b>sanity check</b>: randomise a copy of the model, top layer first"),
            self._sanity_slider, self._sanity_view])
        return widgets.HBox([sanity_box, widgets.VBox([self._curve_chart, self._curve_note])])

    def _wire_diagnostics_panel(self) -> None:
        self._sanity_slider.observe(self._from_control("sanity_step"), "value")
        self.observe(lambda _: self._show_sanity(), "sanity_step")
        self._tabs.observe(lambda _: self._refresh_diagnostics(), "selected_index")

    def _diagnostics_visible(self) -> bool:
        return self._tabs.selected_index == TAB

    def _refresh_diagnostics(self) -> None:
        """After a new map or target: new curves; the sanity check is recomputed lazily."""
        if not self._diagnostics_visible() or self.explanation is None:
            return
        e, target = self.explanation, self.target
        image = self._engine.image
        curves = {name: function(self._engine.adapter.model, image, e.map(target), target)
                  for name, function in (("deletion", deletion_curve),
                                         ("insertion", insertion_curve))}
        self.set_trait("faithfulness", curves)
        d, i = curves["deletion"], curves["insertion"]
        with self._curves.hold_sync():
            self._curves.x = d.fractions
            self._curves.y = np.stack([d.probabilities, d.random_probabilities,
                                       i.probabilities, i.random_probabilities])
            self._curves.line_style = "solid"
        self._curve_note.value = (f"deletion AUC {d.auc:.3f} (random order {d.random_auc:.3f}), "
                                  f"insertion AUC {i.auc:.3f} (random {i.random_auc:.3f}); a "
                                  "faithful map drops fastest when its pixels are deleted")
        self._start_sanity_check()

    def _start_sanity_check(self) -> None:
        e, target = self.explanation, self.target
        key = (e.method, tuple(sorted(e.params.items())), target, e.baseline, e.baseline_alpha)
        if getattr(self, "_sanity_key", None) == key:
            return
        self._sanity_key = key
        self._sanity_view.title = "randomising…"

        def work():
            return key, sanity_check(self._engine.adapter.model, self._engine.image, e.method,
                                     target, data=self._engine.data, **e.params)

        def done(result):
            finished_key, check = result
            if finished_key == self._sanity_key:
                self.set_trait("sanity", check)
                self._show_sanity()

        run_in_background(work, done, self._fail)

    def _show_sanity(self) -> None:
        self._to_control(self._sanity_slider, self.sanity_step)
        check = self.sanity
        if check is None:
            return
        step = int(np.clip(self.sanity_step, 0, len(check.layers) - 1))
        shown = check.maps[step]
        randomised = ", ".join(check.layers[1:step + 1]) or "none"
        with self._sanity_view.hold_sync():
            self._sanity_view.image = encode(self.explanation.image)
            self._sanity_view.attribution = encode(shown)
            self._sanity_view.vmax = float(np.abs(shown).max())
            self._sanity_view.title = (f"randomised: {randomised} · rank correlation "
                                       f"{check.rank_correlation[step]:.2f} · SSIM "
                                       f"{check.ssim[step]:.2f}")
            self._sanity_view.convention = ("A map that stays the same while the weights are "
                                            "randomised does not explain this model.")
