"""Sanity and faithfulness of the map shown.

- a slider over the model's layers shows the target's map after cascading randomisation
  (top layer first) of a copy of the model, with its rank correlation and SSIM to the
  original map: a map that does not change explains nothing;
- deletion and insertion curves of the map shown, against a random pixel order.

Both run on the view's engine with the view's adapter (its ``preprocess`` and output), its
baseline and its method's parameters. Writes ``sanity_step``.
"""

from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np

from xai_widgets.encoding import encode
from xai_widgets.sanity import weighted_layers
from xai_widgets.widgets.controls import FIT
from xai_widgets.widgets.map_panel import display_image
from xai_widgets.widgets.panel import Panel, set_text, text
from xai_widgets.widgets.views import HeatmapView

DELETION, INSERTION = "#d62728", "#2a7ab0"


class DiagnosticsPanel(Panel):
    name, title = "diagnostics", "sanity & faithfulness"
    watch = ("sanity", "sanity_step", "faithfulness", "colour_image")

    def build(self) -> list:
        n_layers = len(weighted_layers(self.state.adapter.model))
        self.slider = widgets.IntSlider(min=0, max=n_layers, description="randomised layers",
                                        style={"description_width": "130px"},
                                        layout={"width": "320px", "max_width": FIT})
        self.slider.add_class("xai-sanity")
        self.bind(self.slider, "sanity_step")
        self.view = HeatmapView(size=200)
        x_scale, y_scale = bqplot.LinearScale(min=0, max=1), bqplot.LinearScale(min=0, max=1)
        self.curves = bqplot.Lines(x=np.zeros(2), y=np.zeros((4, 2)),
                                   scales={"x": x_scale, "y": y_scale},
                                   colors=[DELETION, DELETION, INSERTION, INSERTION],
                                   line_style="solid", stroke_width=2)
        self.chart = bqplot.Figure(
            marks=[self.curves], title="most relevant pixels first",
            axes=[bqplot.Axis(scale=x_scale, label="pixels removed / revealed", tick_format=".0%"),
                  bqplot.Axis(scale=y_scale, orientation="vertical", tick_format=".0%",
                              label="p(target)")],
            fig_margin={"top": 40, "bottom": 50, "left": 60, "right": 20},
            layout=widgets.Layout(width=FIT, max_width="420px", min_width="200px",
                                  height="280px"))
        self.chart.add_class("xai-faithfulness")
        swatch = "<span class='xai-swatch' style='background:{}'></span>"
        legend = text(f"{swatch.format(DELETION)}deletion {swatch.format(INSERTION)}insertion · "
                      "solid: the map's order, faint: a random order", "muted")
        self.note = text("", "muted")
        sanity = widgets.VBox([text("<b>sanity check</b>: randomise a copy of the model, top "
                                    "layer first"), self.slider, self.view],
                              layout={"flex": "0 1 340px", "min_width": "0"})
        faithfulness = widgets.VBox([text("<b>faithfulness</b>: delete or reveal pixels"),
                                     self.chart, legend, self.note],
                                    layout={"flex": "1 1 280px", "min_width": "0"})
        return [widgets.Box([sanity, faithfulness],
                            layout={"flex_flow": "row wrap", "gap": "12px"})]

    def render(self) -> None:
        state = self.state
        curves = state.faithfulness
        if curves:
            d, i = curves["deletion"], curves["insertion"]
            with self.curves.hold_sync():
                self.curves.x = d.fractions
                self.curves.y = np.stack([d.probabilities, d.random_probabilities,
                                          i.probabilities, i.random_probabilities])
                self.curves.opacities = [1.0, 0.35, 1.0, 0.35]
            set_text(self.note, f"deletion AUC {d.auc:.3f} (random order {d.random_auc:.3f}), "
                                f"insertion AUC {i.auc:.3f} (random {i.random_auc:.3f}); a "
                                "faithful map drops fastest when its pixels are deleted", "muted")
        check = state.sanity
        if check is None:
            self.view.title = "randomising…"
            return
        step = int(np.clip(state.sanity_step, 0, len(check.layers) - 1))
        shown = check.maps[step]
        randomised = ", ".join(check.layers[1:step + 1]) or "none"
        image = state.image[0].cpu().numpy()
        with self.view.hold_sync():
            self.view.image = display_image(image)
            self.view.grey = image.shape[0] == 3 and not state.colour_image
            self.view.attribution = encode(shown)
            self.view.vmax = float(np.abs(shown).max())
            self.view.title = (f"randomised: {randomised} · rank correlation "
                               f"{check.rank_correlation[step]:.2f} · SSIM {check.ssim[step]:.2f}")
            self.view.convention = ("A map that stays the same while the weights are "
                                    "randomised does not explain this model.")
