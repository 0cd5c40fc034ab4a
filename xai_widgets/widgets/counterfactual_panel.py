"""The counterfactual panel of ExplainWidget: pick a class, morph x into x′.

Traits (on the widget): ``counterfactual_target`` (int or None), ``counterfactual_method``
(str), ``morph`` (0..1) and read-only ``counterfactual``. The search runs on its own engine
(progress, superseded searches stop); the morph path is precomputed, so dragging the slider
makes no model call: the bars and the chart's marker follow at once.
"""

from __future__ import annotations

import threading

import bqplot
import ipywidgets as widgets
import numpy as np
import traitlets

from xai_widgets.encoding import EMPTY, encode
from xai_widgets.engine import CounterfactualEngine, Request
from xai_widgets.methods.counterfactuals import METHODS, Counterfactual
from xai_widgets.widgets.controls import STYLE
from xai_widgets.widgets.views import CounterfactualView

FROM, TO, OTHERS = "#4c72b0", "#d62728", "#c8ccd4"  # the original class, the target, the rest


class CounterfactualPanel(traitlets.HasTraits):
    """Mixin for ExplainWidget; expects ``_engine``, ``_labels``, ``_fail``,
    ``_show_probabilities``."""

    counterfactual_target = traitlets.Int(None, allow_none=True)
    counterfactual_method = traitlets.Unicode("wachter")
    morph = traitlets.Float(0.0)
    counterfactual = traitlets.Instance(Counterfactual, allow_none=True, read_only=True)

    def _build_counterfactual_panel(self) -> widgets.Widget:
        engine = self._engine
        self._cf_settled = threading.Event()
        self._cf_settled.set()
        self._cf_engine = CounterfactualEngine(engine.adapter, engine.image, engine.data)
        if engine.data is not None:
            self.counterfactual_method = "prototype"
        self._cf_view = CounterfactualView()
        self._cf_target_picker = widgets.Dropdown(
            options=[("—", None)] + [(label, i) for i, label in enumerate(self._labels)],
            description="desired class", style=STYLE, layout={"width": "230px"})
        self._cf_target_picker.add_class("xai-cf-target")
        self._cf_method_picker = widgets.Dropdown(options=list(METHODS), description="search",
                                                  style=STYLE, layout={"width": "230px"})
        self._cf_method_picker.add_class("xai-cf-method")
        self._morph_slider = widgets.FloatSlider(min=0.0, max=1.0, step=0.05, description="morph x → x′",
                                                 continuous_update=True, style=STYLE,
                                                 layout={"width": "340px"}, readout_format=".2f")
        self._morph_slider.add_class("xai-morph")
        steps = np.linspace(0, 1, 21)
        x_scale, y_scale = bqplot.LinearScale(min=0.0, max=1.0), bqplot.LinearScale(min=0.0, max=1.0)
        self._path_lines = bqplot.Lines(x=steps, y=np.zeros((len(self._labels), 21)),
                                        scales={"x": x_scale, "y": y_scale},
                                        colors=[OTHERS] * len(self._labels), labels=self._labels,
                                        stroke_width=2.5)
        self._morph_marker = bqplot.Lines(x=[0.0, 0.0], y=[0.0, 1.0], colors=["#333"],
                                          line_style="dashed", scales={"x": x_scale, "y": y_scale})
        self._path_chart = bqplot.Figure(
            marks=[self._path_lines, self._morph_marker], title="every class along x → x′",
            axes=[bqplot.Axis(scale=x_scale, label="morph", tick_format=".1f"),
                  bqplot.Axis(scale=y_scale, orientation="vertical", tick_format=".0%")],
            fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 40},
            layout=widgets.Layout(width="420px", height="280px"))
        self._path_chart.add_class("xai-cf-chart")
        controls = widgets.VBox([self._cf_target_picker, self._cf_method_picker, self._morph_slider])
        return widgets.VBox([
            widgets.HTML("<b>counterfactual</b>: how must the pixels change for another class? "
                         "(red = added, blue = removed)"),
            widgets.HBox([widgets.VBox([controls, self._cf_view]), self._path_chart])])

    def _wire_counterfactual_panel(self) -> None:
        self.observe(lambda _: self._search(), ["counterfactual_target", "counterfactual_method"])
        self.observe(lambda _: self._on_morph(), "morph")
        for control, name in ((self._cf_target_picker, "counterfactual_target"),
                              (self._cf_method_picker, "counterfactual_method"),
                              (self._morph_slider, "morph")):
            control.observe(self._from_control(name), "value")
            self._to_control(control, getattr(self, name))

    def close(self) -> None:
        if hasattr(self, "_cf_engine"):
            self._cf_engine.close()
        super().close()

    # -- reacting -----------------------------------------------------------------------
    def _search(self) -> None:
        self._to_control(self._cf_target_picker, self.counterfactual_target)
        self._to_control(self._cf_method_picker, self.counterfactual_method)
        if self.counterfactual_target is None:
            self._cf_engine.supersede()
            self.set_trait("counterfactual", None)
            self._cf_view.original = EMPTY
            return
        request = Request(self.counterfactual_method, (("target", self.counterfactual_target),))
        self._cf_settled.clear()
        self._cf_view.caption = "searching…"
        self._cf_engine.submit(request, self._on_counterfactual, self._cf_failed, self._on_progress)

    def _cf_failed(self, message: str) -> None:
        self._fail(message)
        self._cf_view.caption = f"✗ {message}"
        self._cf_settled.set()

    def _on_counterfactual(self, cf: Counterfactual) -> None:
        self.set_trait("counterfactual", cf)
        start = int(cf.path_probabilities[0].argmax())
        with self._path_lines.hold_sync():
            self._path_lines.y = cf.path_probabilities.T
            self._path_lines.colors = [TO if i == cf.target else FROM if i == start else OTHERS
                                       for i in range(len(self._labels))]
        self._path_chart.title = (f"p({self._labels[start]}) in blue, p({self._labels[cf.target]}) "
                                  "in red, along x → x′")
        with self._cf_view.hold_sync():
            self._cf_view.original = encode(cf.original)
            self._cf_view.counterfactual = encode(cf.image)
        self._on_morph()
        self._progress.layout.visibility = "hidden"
        self._cf_settled.set()

    def _on_morph(self) -> None:
        """A frame of the precomputed path: no model call."""
        self._to_control(self._morph_slider, self.morph)
        cf = self.counterfactual
        if cf is None:
            return
        if not 0.0 <= self.morph <= 1.0:
            self._fail(f"morph must be in 0..1 (0 = x, 1 = x′), got {self.morph}")
            return
        step = cf.step(self.morph)
        probabilities = cf.path_probabilities[step]
        self.set_trait("probabilities", probabilities)
        self._show_probabilities(probabilities)
        self._morph_marker.x = [step / (len(cf.path) - 1)] * 2
        label = self._labels[cf.target]
        status = "✓" if cf.success else "✗"
        with self._cf_view.hold_sync():
            self._cf_view.frame = encode(cf.path[step])
            self._cf_view.caption = (
                f"{status} {cf.message} · L1 {cf.l1:.1f}, {cf.l0} pixels changed · "
                f"{1000 * cf.seconds:.0f} ms · at {self.morph:.0%} of the way: "
                f"p({label}) = {probabilities[cf.target]:.1%}")
