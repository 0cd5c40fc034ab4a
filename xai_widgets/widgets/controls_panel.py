"""Method, its parameters (built from the registry's specs), baseline and display toggles.

The baseline picker offers the named baselines, "counterfactual" (then a class picker asks
"why not which class?") and, when one was passed from Python, the array.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from xai_widgets import methods
from xai_widgets.baselines import BASELINES, DESCRIPTIONS
from xai_widgets.errors import InputError
from xai_widgets.widgets.class_picker import class_picker, option, parse_class
from xai_widgets.widgets.controls import LAYOUT, STYLE, control_for
from xai_widgets.widgets.panel import SKIP, Panel, escape, set_text, text

COUNTERFACTUAL, ARRAY = "counterfactual", "array"


def baseline_choice(baseline) -> str:
    """The picker's entry for a state baseline."""
    if not isinstance(baseline, str):
        return ARRAY
    return COUNTERFACTUAL if baseline.startswith("counterfactual:") else baseline


class ControlsPanel(Panel):
    """Writes ``method``, ``params``, ``baseline``, ``baseline_alpha``, ``abs_values`` and
    ``colour_image``."""

    name, title = "controls", "controls"
    watch = ("method", "params", "baseline")

    def build(self) -> list:
        state = self.state
        self._array = None if isinstance(state.baseline, str) else state.baseline
        self.method = widgets.Dropdown(
            options=[(methods.spec(n).label, n) for n in methods.names()],
            description="method", style=STYLE, layout=LAYOUT)
        self.method.add_class("xai-method")
        self.bind(self.method, "method")
        self.help = text("", "muted")
        self.params = widgets.VBox()
        self.baseline = widgets.Dropdown(options=self._baseline_options(), description="baseline",
                                         style=STYLE, layout=LAYOUT)
        self.baseline.add_class("xai-baseline")
        self.bind(self.baseline, "baseline", self._baseline_from_choice, baseline_choice)
        self.why_not = class_picker(state.labels, "why not class", LAYOUT["width"])
        self.why_not.add_class("xai-why-not")
        self.why_not.observe(lambda change: self._why_not(change["new"]), "value")
        self.alpha = widgets.FloatSlider(min=0.0, max=1.0, step=0.05, description="baseline α",
                                         readout_format=".2f", style=STYLE, layout=LAYOUT,
                                         tooltip="blend the baseline toward the image: "
                                                 "0 = baseline, 1 = the image itself")
        self.alpha.add_class("xai-alpha")
        self.bind(self.alpha, "baseline_alpha")
        self.baseline_box = widgets.VBox([self.baseline, self.why_not, self.alpha])
        self.abs_values = widgets.Checkbox(description="absolute values", indent=False,
                                           layout={"width": "auto"})
        self.abs_values.add_class("xai-abs")
        self.bind(self.abs_values, "abs_values")
        toggles = [self.abs_values]
        if state.image_shape[0] == 3:
            self.colour = widgets.Checkbox(description="colour image under the map", indent=False,
                                           layout={"width": "auto"})
            self.colour.add_class("xai-colour")
            self.bind(self.colour, "colour_image")
            toggles.append(self.colour)
        self.layout = widgets.Layout(flex="0 1 360px", min_width="0", max_width="100%")
        return [self.method, self.help, self.params, self.baseline_box,
                widgets.HBox(toggles, layout={"flex_flow": "row wrap", "gap": "12px"})]

    def _baseline_options(self) -> list:
        options = [(f"{b} — {DESCRIPTIONS[b]}", b) for b in BASELINES]
        options.append(("counterfactual — why this class and not another?", COUNTERFACTUAL))
        if self._array is not None:
            options.append(("the array passed from Python", ARRAY))
        return options

    def _second_class(self) -> int:
        return int(np.argsort(-self.state.base_probabilities)[1 if self.state.n_classes > 1 else 0])

    def _baseline_from_choice(self, choice: str):
        if choice == ARRAY:
            return self._array if self._array is not None else SKIP
        if choice == COUNTERFACTUAL:
            if baseline_choice(self.state.baseline) == COUNTERFACTUAL:
                return SKIP
            picked = parse_class(self.why_not.value, self.state.labels)
            return f"counterfactual:{self._second_class() if picked is None else picked}"
        return choice

    def _why_not(self, value: str) -> None:
        index = parse_class(value, self.state.labels)
        if index is None:
            if value:
                self.state.fail(f"no class {value!r}: type a class name or an index")
            return
        if self.state.baseline != f"counterfactual:{index}":
            self.state.set("baseline", f"counterfactual:{index}")

    def render(self) -> None:
        state = self.state
        baseline = state.baseline
        if not isinstance(baseline, str) and baseline is not self._array:
            had_array, self._array = self._array is not None, baseline  # the latest array set
            if not had_array:
                self.baseline.options = self._baseline_options()
            self.baseline.value = ARRAY
        if isinstance(baseline, str) and baseline.startswith("counterfactual:"):
            wanted = option(state.labels, int(baseline.split(":")[1]))
            if self.why_not.value != wanted:
                self.why_not.value = wanted
        self.why_not.layout.display = (None if baseline_choice(baseline) == COUNTERFACTUAL
                                       else "none")
        try:
            spec = methods.spec(state.method)
        except InputError:
            return
        set_text(self.help, escape(spec.description), "muted")
        self.baseline_box.layout.display = None if spec.needs_baseline else "none"
        self._show_params(spec)

    def _show_params(self, spec) -> None:
        values = {**spec.defaults(self.state.image_shape[-2:]), **self.state.params}
        existing = {c._param: c for c in self.params.children
                    if getattr(c, "_method", None) == spec.name}
        children = []
        for param in spec.params:
            control = existing.get(param.name)
            if control is None:
                control = control_for(param, values.get(param.name))
                control._method, control._param = spec.name, param.name
                control.observe(self._param_changed(param.name), "value")
            elif control.value != values.get(param.name):
                control.value = values.get(param.name)
            control.layout.display = "none" if param.hidden(values) else None
            children.append(control)
        if [id(c) for c in children] != [id(c) for c in self.params.children]:
            self.params.children = children

    def _param_changed(self, name: str):
        def update(change):
            state = self.state
            default = methods.spec(state.method).defaults(state.image_shape[-2:]).get(name)
            if state.params.get(name, default) != change["new"]:
                state.set("params", {**state.params, name: change["new"]})
        return update
