"""The predicted probabilities of the shown classes, an "all others" bar, and a legend.

The bars show the image as it is shown (the morph frame, the image with hidden segments,
or the image itself); the caption says which.
"""

from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np

from xai_widgets.widgets.bars_view import OTHERS, bar_rows
from xai_widgets.widgets.controls import FIT
from xai_widgets.widgets.panel import Panel, escape, set_text, text

PREDICTED, TARGET, OTHER, REST = "#4c72b0", "#d62728", "#9aa9bf", "#6b6b6b"
ROLES = ["other", "predicted", "target", "rest"]


def legend() -> widgets.HTML:
    swatches = "".join(f"<span class='xai-swatch' style='background:{colour}'></span>{name} "
                       for name, colour in (("target", TARGET), ("predicted", PREDICTED),
                                            ("other shown classes", OTHER)))
    return text(swatches, "muted")


class BarsPanel(Panel):
    """``state.probabilities`` for ``state.shown_classes()``, the rest summed in one bar."""

    name, title = "bars", "probabilities"
    watch = ("probabilities", "target", "explanation", "top_k", "pinned", "shown")

    def build(self) -> list:
        state = self.state
        # many classes or long names: one row per class, names readable on the left
        self.horizontal = state.n_classes > state.top_k or max(map(len, state.labels)) > 4
        x_scale, y_scale = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0, max=1.0)
        roles = bqplot.OrdinalColorScale(domain=ROLES, colors=[OTHER, PREDICTED, TARGET, REST])
        self.bars = bqplot.Bars(x=["0"], y=[0.0], color=["other"],
                                scales={"x": x_scale, "y": y_scale, "color": roles},
                                orientation="horizontal" if self.horizontal else "vertical",
                                padding=0.15, tooltip=bqplot.Tooltip(fields=["x", "y"],
                                                                     formats=["", ".1%"]))
        if self.horizontal:
            longest = max(len(OTHERS), *(len(label) for label in state.labels))
            axes = [bqplot.Axis(scale=x_scale, orientation="vertical"),
                    bqplot.Axis(scale=y_scale, tick_format=".0%", num_ticks=5)]
            margin = {"top": 40, "bottom": 40, "left": min(200, 12 + 7 * longest), "right": 20}
        else:
            axes = [bqplot.Axis(scale=x_scale, label="class"),
                    bqplot.Axis(scale=y_scale, orientation="vertical", tick_format=".0%")]
            margin = {"top": 40, "bottom": 50, "left": 50, "right": 10}
        self.chart = bqplot.Figure(
            marks=[self.bars], title="predicted probabilities", axes=axes, fig_margin=margin,
            layout=widgets.Layout(width=FIT, height="300px", min_width="200px"))
        self.chart.add_class("xai-bars")
        self.caption = text("")
        self.layout = widgets.Layout(flex="1 1 300px", max_width="460px", min_width="0")
        return [self.chart, legend(), self.caption]

    def render(self) -> None:
        state = self.state
        names, values, roles = bar_rows(state)
        shown = state.shown_classes()
        predicted = int(np.argmax(np.asarray(state.probabilities)))
        if self.horizontal:  # rows are drawn bottom-up: the most probable class on top
            names, values, roles = names[::-1], values[::-1], roles[::-1]
        with self.bars.hold_sync():
            self.bars.x = names
            self.bars.y = values
            self.bars.color = roles
        note = ("" if predicted in shown else
                f" · predicted: {escape(state.label(predicted))} (not shown)")
        set_text(self.caption, f"prediction for {escape(state.shown)}{note}", "muted")
