"""Counterfactual: pick a desired class, morph x into x′.

Writes ``counterfactual_target``, ``counterfactual_method`` and ``morph``. The search runs
on the view's engine (progress; a newer request stops it); the morph path is precomputed,
so dragging the slider makes no model call: the bars and the chart's marker follow at once.
With a one-pass method (``cfrl``) a strip shows x′ toward every other class, found in one
batched pass; clicking one picks that class, with no further model call.
"""

from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np

from xai_widgets.encoding import EMPTY, encode
from xai_widgets.methods.counterfactuals import METHODS, ONE_PASS
from xai_widgets.widgets.class_picker import class_picker, option, parse_class
from xai_widgets.widgets.controls import FIT, STYLE
from xai_widgets.widgets.map_panel import display_image
from xai_widgets.widgets.panel import SKIP, Panel, escape, set_text, text
from xai_widgets.widgets.views import CounterfactualView, TilesView

FROM, TO, OTHERS = "#4c72b0", "#d62728", "#9aa9bf"  # the original class, the target, the rest
PATH_STEPS = 21


class CounterfactualPanel(Panel):
    name, title = "counterfactual", "counterfactual"
    watch = ("counterfactual", "morph", "counterfactual_target", "error",
             "counterfactual_strip", "counterfactual_method")

    def build(self) -> list:
        state = self.state
        self.view = CounterfactualView(size=76)
        self.target = class_picker(state.labels, "desired class", "300px")
        self.target.add_class("xai-cf-target")
        self.bind(self.target, "counterfactual_target", self._to_class,
                  lambda t: "" if t is None else option(state.labels, t))
        self.method = widgets.Dropdown(options=list(METHODS), description="search", style=STYLE,
                                       layout={"width": "300px", "max_width": FIT})
        self.method.add_class("xai-cf-method")
        self.bind(self.method, "counterfactual_method")
        self.morph = widgets.FloatSlider(min=0.0, max=1.0, step=0.05, description="morph x → x′",
                                         style=STYLE, readout_format=".2f",
                                         layout={"width": "340px", "max_width": FIT})
        self.morph.add_class("xai-morph")
        self.bind(self.morph, "morph")
        x_scale = bqplot.LinearScale(min=0.0, max=1.0)
        y_scale = bqplot.LinearScale(min=0.0, max=1.0)
        self.lines = bqplot.Lines(x=np.linspace(0, 1, PATH_STEPS), y=np.zeros((1, PATH_STEPS)),
                                  scales={"x": x_scale, "y": y_scale}, colors=[OTHERS],
                                  stroke_width=2.5)
        self.marker = bqplot.Lines(x=[0.0, 0.0], y=[0.0, 1.0], colors=["#888888"],
                                   line_style="dashed", scales={"x": x_scale, "y": y_scale})
        self.chart = bqplot.Figure(
            marks=[self.lines, self.marker], title="classes along x → x′",
            axes=[bqplot.Axis(scale=x_scale, label="morph", tick_format=".1f"),
                  bqplot.Axis(scale=y_scale, orientation="vertical", tick_format=".0%")],
            fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 20},
            layout=widgets.Layout(width=FIT, max_width="420px", min_width="200px",
                                  height="260px"))
        self.chart.add_class("xai-cf-chart")
        self.legend = text("", "muted")
        self._strip_order: list[int] = []  # the classes the strip's tiles show
        self._drawn = None
        self.strip = TilesView(size=56)
        self.strip.add_class("xai-cf-strip")
        self.strip.observe(self._picked, "selected")
        self.strip_note = text("", "muted")
        controls = widgets.VBox([self.target, self.method, self.morph, self.view],
                                layout={"flex": "0 1 360px", "min_width": "0"})
        charts = widgets.VBox([self.chart, self.legend], layout={"flex": "1 1 280px",
                                                                 "min_width": "0"})
        return [text("<b>counterfactual</b>: how must the pixels change for another class? "
                     "(in x′ − x: red = added, blue = removed)"),
                widgets.Box([controls, charts], layout={"flex_flow": "row wrap", "gap": "12px"}),
                self.strip_note, self.strip]

    def _to_class(self, value: str):
        index = parse_class(value, self.state.labels)
        if index is None and value:
            self.state.fail(f"no class {value!r}: type a class name or an index")
            return SKIP
        return index

    def _picked(self, change) -> None:
        position = change["new"]
        if 0 <= position < len(self._strip_order):
            self.state.set("counterfactual_target", self._strip_order[position])

    def render_strip(self) -> None:
        state, strip = self.state, self.state.counterfactual_strip
        shown = state.counterfactual_method in ONE_PASS
        self.strip.layout.display = None if shown and strip else "none"
        if not shown:
            set_text(self.strip_note, "")
            return
        if not strip:  # on its way (None), or failed ({}: the error is in the caption above)
            busy = strip is None and state.tab == self.name
            set_text(self.strip_note, "finding x′ toward every class…" if busy else "", "muted")
            return
        order = sorted(strip)
        found = [strip[c] for c in order]
        if strip is not self._drawn:
            self._strip_order, self._drawn = order, strip
            diffs = np.stack([(cf.image - cf.original).sum(0) for cf in found]).astype(np.float32)
            with self.strip.hold_sync():
                self.strip.images = encode(np.stack([cf.image for cf in found]))
                self.strip.maps = encode(diffs)
                self.strip.vmax = [float(np.abs(d).max()) or 1.0 for d in diffs]
                self.strip.captions = [f"{'✓' if cf.success else '✗'} {state.label(c)}"
                                       for c, cf in zip(order, found, strict=True)]
                self.strip.groups = [{"title": "x′ toward every other class (red = added, "
                                               "blue = removed); click one",
                                      "indices": list(range(len(order)))}]
        target = state.counterfactual_target
        position = order.index(target) if target in order else -1
        if self.strip.selected != position:
            self.strip.selected = position
        valid = sum(cf.success for cf in found)
        ms = 1000 * sum(cf.seconds for cf in found)
        set_text(self.strip_note, f"{valid} of {len(found)} classes reached in one batched "
                                  f"pass of the actor ({ms:.0f} ms)", "muted")

    def render(self) -> None:
        self.render_strip()
        state, cf = self.state, self.state.counterfactual
        self.view.layout.display = "none" if state.counterfactual_target is None else None
        if state.counterfactual_target is None:
            self.view.original = EMPTY
            return
        if cf is None or cf.target != state.counterfactual_target:
            self.view.caption = ("searching…" if not state.error else f"✗ {state.error}")
            return
        start = int(cf.path_probabilities[0].argmax())
        shown = [start, cf.target]
        with self.lines.hold_sync():
            self.lines.y = cf.path_probabilities[:, shown].T
            self.lines.colors = [FROM, TO]
        swatch = "<span class='xai-swatch' style='background:{}'></span>"
        set_text(self.legend, f"{swatch.format(FROM)}p({escape(state.label(start))}) "
                              f"{swatch.format(TO)}p({escape(state.label(cf.target))}) · dashed: "
                              "the slider", "muted")
        step = cf.step(state.morph)
        self.marker.x = [step / (len(cf.path) - 1)] * 2
        p = cf.path_probabilities[step]
        status = "✓" if cf.success else "✗"
        with self.view.hold_sync():
            self.view.original = display_image(cf.original)
            self.view.counterfactual = display_image(cf.image)
            self.view.frame = display_image(cf.path[step])
            self.view.caption = (
                f"{status} {cf.message} · L1 {cf.l1:.1f}, {cf.l0} pixels changed · "
                f"{1000 * cf.seconds:.0f} ms · at {state.morph:.0%} of the way: "
                f"p({state.label(cf.target)}) = {p[cf.target]:.1%}")
