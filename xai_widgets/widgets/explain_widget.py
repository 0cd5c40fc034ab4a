"""ExplainWidget: live, linked explanation views of one image in JupyterLab.

The widget holds traits and wiring only: it turns every change into a request for the
engine (``xai_widgets.engine``), which computes off the comm thread, and shows the newest
result. Notebooks and tests drive it through the same traits the front end sets.

>>> from xai_widgets import ExplainWidget
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> w = ExplainWidget(model, images[0], classes=classes).wait(timeout=60)
>>> w.explanation.method, w.target == w.explanation.prediction
('integrated_gradients', True)
>>> w.method = "occlusion"
>>> w.params = {"window": 7}
>>> w.wait(timeout=60).explanation.params["window"]
7
>>> w.close()
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

import bqplot
import ipywidgets as widgets
import numpy as np
import traitlets

from xai_widgets import methods
from xai_widgets.adapter import ModelAdapter
from xai_widgets.baselines import BASELINES, DESCRIPTIONS
from xai_widgets.encoding import encode
from xai_widgets.engine import Engine, Request, error_message
from xai_widgets.errors import InputError
from xai_widgets.explanation import Explanation
from xai_widgets.widgets.controls import LAYOUT, STYLE, control_for
from xai_widgets.widgets.counterfactual_panel import CounterfactualPanel
from xai_widgets.widgets.diagnostics_panel import DiagnosticsPanel
from xai_widgets.widgets.superpixel_panel import SuperpixelPanel
from xai_widgets.widgets.views import ClassGrid, HeatmapView

PREDICTED, TARGET, OTHER = "#4c72b0", "#d62728", "#b8c4d6"
ROLES = ["other", "predicted", "target"]  # bar colours: the target wins over the prediction


class ExplainWidget(SuperpixelPanel, CounterfactualPanel, DiagnosticsPanel, widgets.VBox):
    """The image, one map per class, the target's large map, the probabilities, controls.

    Scriptable state: ``method``, ``target``, ``params`` (the method's parameters you set;
    defaults fill the rest), ``baseline``, ``baseline_alpha``, ``abs_values``,
    ``segmentation``, ``hidden_segments``, ``counterfactual_target``,
    ``counterfactual_method``, ``morph``; read-only ``explanation``, ``probabilities`` (of the
    image as shown: with its hidden segments, or the morph frame), ``segments``,
    ``counterfactual``, ``error``, ``status``; ``wait(timeout)``.
    """

    method = traitlets.Unicode(methods.DEFAULT_METHOD)
    target = traitlets.Int(-1)
    params = traitlets.Dict()
    baseline = traitlets.Unicode("zero")
    baseline_alpha = traitlets.Float(0.0)
    abs_values = traitlets.Bool(False)
    explanation = traitlets.Instance(Explanation, allow_none=True, read_only=True)
    probabilities = traitlets.Any(None, read_only=True)
    error = traitlets.Unicode("", read_only=True)
    status = traitlets.Unicode("", read_only=True)

    def __init__(self, model, x, *, method: str = methods.DEFAULT_METHOD, target: int | None = None,
                 baseline: str = "zero", baseline_alpha: float = 0.0, abs_values: bool = False,
                 data: Any = None, classes: Sequence[str] | None = None,
                 preprocess: Callable | None = None, output: str = "auto", **params):
        adapter = ModelAdapter(model, preprocess=preprocess, classes=classes, output=output)
        image, notes = adapter.image(x)
        data_batch = adapter.batch(data, image) if data is not None else None
        self._engine = Engine(adapter, image, data_batch, notes=notes)
        self._probabilities = adapter.probabilities(image)[0].cpu().numpy()
        n_classes = len(self._probabilities)
        self._labels = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
        if len(self._labels) != n_classes:
            raise InputError(f"{len(self._labels)} class names for a model with {n_classes} "
                             "outputs: pass one name per class")
        self._settled = threading.Event()
        self._syncing = False
        self._build_views()
        super().__init__(children=self._layout())
        self.add_class("xai-explain-widget")
        with self.hold_trait_notifications():
            self.method = method
            self.params = dict(params)
            self.baseline = baseline if isinstance(baseline, str) else "zero"
            self.baseline_alpha = baseline_alpha
            self.abs_values = abs_values
            self.target = int(np.argmax(self._probabilities)) if target is None else target
        self._wire()
        self._show_method_controls()
        self._recompute()
        self._wire_superpixel_panel()
        self._wire_counterfactual_panel()
        self._wire_diagnostics_panel()

    # -- public ----------------------------------------------------------------------
    def wait(self, timeout: float = 30.0) -> "ExplainWidget":
        """Block until the view shows the latest state; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        for event in (self._settled, self._cf_settled):
            if not event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"the view did not update within {timeout} s "
                                   f"(status: {self.status})")
        return self

    def close(self) -> None:
        if hasattr(self, "_engine"):  # absent when the constructor rejected its input
            self._engine.close()
        super().close()  # the panels close their own engines

    # -- building --------------------------------------------------------------------
    def _build_views(self) -> None:
        self._heatmap = HeatmapView()
        self._grid = ClassGrid(labels=self._labels)
        x_scale, y_scale = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0, max=1.0)
        roles = bqplot.OrdinalColorScale(domain=ROLES, colors=[OTHER, PREDICTED, TARGET])
        self._bars = bqplot.Bars(x=self._labels, y=self._probabilities.tolist(),
                                 color=[ROLES[0]] * len(self._labels),
                                 scales={"x": x_scale, "y": y_scale, "color": roles},
                                 padding=0.15, tooltip=bqplot.Tooltip(fields=["x", "y"],
                                                                      formats=["", ".1%"]))
        self._bar_chart = bqplot.Figure(
            marks=[self._bars], title="predicted probabilities",
            axes=[bqplot.Axis(scale=x_scale, label="class"),
                  bqplot.Axis(scale=y_scale, orientation="vertical", tick_format=".0%")],
            fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 10},
            layout=widgets.Layout(width="400px", height="300px"))
        names = methods.names()
        self._method_picker = widgets.Dropdown(
            options=[(methods.spec(n).label, n) for n in names], description="method",
            style=STYLE, layout=LAYOUT)
        self._method_picker.add_class("xai-method")
        self._method_help = widgets.HTML(layout={"width": "340px"})
        self._param_box = widgets.VBox()
        self._baseline_picker = widgets.Dropdown(
            options=[(f"{b} — {DESCRIPTIONS[b]}", b) for b in BASELINES] + [
                (f"counterfactual for class {label} (why not {label}?)", f"counterfactual:{i}")
                for i, label in enumerate(self._labels)],
            description="baseline", style=STYLE, layout=LAYOUT)
        self._baseline_picker.add_class("xai-baseline")
        self._alpha_slider = widgets.FloatSlider(
            min=0.0, max=1.0, step=0.05, description="baseline α", readout_format=".2f",
            continuous_update=True, style=STYLE, layout=LAYOUT,
            tooltip="blend the baseline toward the image: 0 = baseline, 1 = the image itself")
        self._alpha_slider.add_class("xai-alpha")
        self._abs_toggle = widgets.Checkbox(description="absolute values", indent=False,
                                            layout=LAYOUT)
        self._abs_toggle.add_class("xai-abs")
        self._status_line = widgets.HTML()
        self._status_line.add_class("xai-status")
        self._progress = widgets.FloatProgress(min=0.0, max=1.0, layout={"width": "200px",
                                                                         "visibility": "hidden"})
        self._progress.add_class("xai-progress")
        self._notes = widgets.HTML()

    def _layout(self) -> list:
        baseline_box = widgets.VBox([self._baseline_picker, self._alpha_slider])
        self._baseline_box = baseline_box
        controls = widgets.VBox([self._method_picker, self._method_help, self._param_box,
                                 baseline_box, self._abs_toggle],
                                layout={"width": "360px"})
        grid_box = widgets.VBox([widgets.HTML("<b>every class</b> (click a tile to explain it)"),
                                 self._grid])
        return [widgets.HBox([self._heatmap, self._bar_chart], layout={"align_items": "flex-end"}),
                widgets.HBox([controls, grid_box], layout={"margin": "10px 0 0 0"}),
                self._panels(),
                widgets.HBox([self._status_line, self._progress],
                             layout={"align_items": "center"}),
                self._notes]

    def _panels(self) -> widgets.Tab:
        """The superpixel and counterfactual panels, one tab each, to keep the view compact."""
        tabs = widgets.Tab(children=[self._build_superpixel_panel(),
                                     self._build_counterfactual_panel(),
                                     self._build_diagnostics_panel()],
                           layout={"margin": "10px 0 0 0"})
        tabs.titles = ("superpixels", "counterfactual", "sanity & faithfulness")
        tabs.add_class("xai-panels")
        self._tabs = tabs
        return tabs

    def _wire(self) -> None:
        self.observe(self._on_method, "method")
        self.observe(lambda _: self._on_params(), "params")
        self.observe(lambda _: self._recompute(), ["baseline", "baseline_alpha"])
        self.observe(self._on_target, "target")
        self.observe(lambda _: self._render(), "abs_values")
        self._grid.observe(lambda change: setattr(self, "target", change["new"]), "target")
        for control, name in ((self._method_picker, "method"), (self._baseline_picker, "baseline"),
                              (self._alpha_slider, "baseline_alpha"), (self._abs_toggle, "abs_values")):
            control.observe(self._from_control(name), "value")
            self._to_control(control, getattr(self, name))

    def _from_control(self, name: str):
        def update(change):
            if not self._syncing:
                setattr(self, name, change["new"])
        return update

    def _to_control(self, control, value) -> None:
        """Show a trait's value in its control without echoing it back (an invalid value
        leaves the control as it was; the error line says what is wrong)."""
        self._syncing = True
        try:
            control.value = value
        except (traitlets.TraitError, TypeError, ValueError):
            pass
        finally:
            self._syncing = False

    # -- reacting to changes ---------------------------------------------------------
    def _on_method(self, change) -> None:
        self._to_control(self._method_picker, change["new"])
        with self.hold_trait_notifications():
            self.params = {}
        self._show_method_controls()
        self._recompute()

    def _on_params(self) -> None:
        self._show_method_controls()
        self._recompute()

    def _show_method_controls(self) -> None:
        try:
            spec = methods.spec(self.method)
        except InputError:
            return
        self._method_help.value = (f"<div style='font-size:12px;line-height:1.3;color:#555;"
                                   f"margin:0 0 6px 118px'>{spec.description}</div>")
        self._baseline_box.layout.display = None if spec.needs_baseline else "none"
        values = {**spec.defaults(), **self.params}
        existing = {c._param: c for c in self._param_box.children
                    if getattr(c, "_method", None) == spec.name}
        children = []
        for param in spec.params:
            control = existing.get(param.name)
            if control is None:
                control = control_for(param, values.get(param.name))
                control._method, control._param = spec.name, param.name
                control.observe(self._param_changed(param.name), "value")
            else:
                self._to_control(control, values.get(param.name))
            control.layout.display = "none" if param.hidden(values) else None
            children.append(control)
        if [id(c) for c in children] != [id(c) for c in self._param_box.children]:
            self._param_box.children = children

    def _param_changed(self, name: str):
        def update(change):
            if not self._syncing:
                self.params = {**self.params, name: change["new"]}
        return update

    def _on_target(self, change) -> None:
        target = change["new"]
        if not 0 <= target < len(self._labels):
            self._fail(f"target {target} is out of range: the model has {len(self._labels)} "
                       f"classes, so the target must be in 0..{len(self._labels) - 1}")
            return
        self._grid.target = target
        if self.error.startswith("target "):
            self.set_trait("error", "")
            self._show_status()
        self._render()
        if self.segments is not None:
            self._on_hidden()
        self._refresh_diagnostics()

    def _recompute(self) -> None:
        request = Request.of(self.method, self.params, self.baseline, self.baseline_alpha)
        self._settled.clear()
        self.set_trait("status", "computing…")
        self._status_line.value = "<span style='color:#666'>computing…</span>"
        self._engine.submit(request, self._on_result, self._fail, self._on_progress)

    def _on_progress(self, done: int, total: int) -> None:
        self._progress.layout.visibility = "visible"
        self._progress.value = done / max(total, 1)

    def _on_result(self, explanation: Explanation) -> None:
        self.set_trait("explanation", explanation)
        self.set_trait("probabilities", explanation.probabilities)
        self.set_trait("error", "")
        self._render()
        if self.segments is not None:
            self._sync_segments()
        self._refresh_diagnostics()
        self._show_status()
        self._settled.set()

    def _fail(self, message: str) -> None:
        message = error_message(message) if isinstance(message, BaseException) else message
        self.set_trait("error", message)
        self.set_trait("status", f"error: {message}")
        self._status_line.value = (f"<span class='xai-error' style='color:#b00020'>⚠ "
                                   f"{_escape(message)}</span>")
        self._progress.layout.visibility = "hidden"
        self._settled.set()

    def _show_status(self) -> None:
        e = self.explanation
        if e is None:
            return
        text = f"{methods.spec(e.method).label} · {len(e.targets)} classes · {1000 * e.seconds:.0f} ms"
        self.set_trait("status", text)
        self._status_line.value = f"<span style='color:#2a6e2a'>✓ {_escape(text)}</span>"
        self._progress.layout.visibility = "hidden"
        notes = "".join(f"<li>{_escape(n)}</li>" for n in e.notes)
        self._notes.value = f"<ul style='color:#666;font-size:12px;margin:2px 0'>{notes}</ul>" if notes else ""

    # -- drawing ---------------------------------------------------------------------
    def _render(self) -> None:
        e = self.explanation
        if e is None or not 0 <= self.target < len(self._labels):
            return
        maps = np.abs(e.attributions) if self.abs_values else e.attributions
        target_map = maps[e.targets.index(self.target)]
        image = encode(e.image)
        label = self._labels[self.target]
        with self._heatmap.hold_sync():
            self._heatmap.image = image
            self._heatmap.attribution = encode(target_map)
            self._heatmap.vmax = float(np.abs(target_map).max())
            self._heatmap.abs_values = self.abs_values
            self._heatmap.title = (f"class {label} · {methods.spec(e.method).label} · "
                                   f"p = {e.probabilities[self.target]:.1%}")
            self._heatmap.convention = convention(label, self.abs_values)
        with self._grid.hold_sync():
            self._grid.image = image
            self._grid.maps = encode(maps)
            self._grid.vmax = float(np.abs(maps).max())
            self._grid.abs_values = self.abs_values
            self._grid.probabilities = e.probabilities.tolist()
            self._grid.predicted = e.prediction
            self._grid.target = self.target
        self._show_probabilities(self.probabilities)

    def _show_probabilities(self, probabilities) -> None:
        """The bars: the shown probabilities, the target in red, the prediction in blue."""
        predicted = int(np.argmax(probabilities))
        with self._bars.hold_sync():
            self._bars.y = np.asarray(probabilities).tolist()
            self._bars.color = [ROLES[2] if i == self.target else ROLES[1] if i == predicted
                                else ROLES[0] for i in range(len(self._labels))]


def convention(label: str, abs_values: bool) -> str:
    if abs_values:
        return (f"Absolute values: the stronger the red, the more a pixel changes the score of "
                f"class {label}, in either direction. Colour marks a pixel's effect, not its ink.")
    return (f"Red = evidence for class {label}, blue = evidence against it, transparent ≈ 0; "
            "the colour bar gives the range. Colour marks a pixel's effect, not its ink: on "
            "white-on-black digits a red pixel can be black.")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
