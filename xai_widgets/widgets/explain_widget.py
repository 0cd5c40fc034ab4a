"""ExplainWidget: live, linked explanation views of one image in JupyterLab.

A list of panels over one ``ViewState``: the map, the probabilities, the controls, the
class tiles, tabs for superpixels, counterfactuals, diagnostics, influence (with
``train=(images, labels)``) and robustness, and the status line.
Adding a panel is one file and one entry in ``widgets.tabs.TABS`` (or ``layout``). Notebooks
and tests drive it through the same traits the front end sets; ``w.state`` is the shared state and
any panel can be displayed alone: ``display(MapPanel(w.state))``. Displayed, it also leaves
a picture of its settled view for viewers without a kernel (see ``snapshot``).

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

import ipywidgets as widgets

from xai_widgets.widgets import trust_requests
from xai_widgets.widgets.bars_panel import BarsPanel
from xai_widgets.widgets.classes_panel import ClassesPanel
from xai_widgets.widgets.controls_panel import ControlsPanel
from xai_widgets.widgets.map_panel import MapPanel
from xai_widgets.widgets.panel import delegate_traits
from xai_widgets.widgets.snapshot import StaticFallback, draw_explain
from xai_widgets.widgets.state import ViewState
from xai_widgets.widgets.status_panel import StatusPanel
from xai_widgets.widgets.superpixel_panel import keep_top, top_segments
from xai_widgets.widgets.tabs import TABS

SETTABLE = ("method", "params", "target", "baseline", "baseline_alpha", "abs_values", "top_k",
            "pinned", "shared_scale", "colour_image", "segmentation", "hidden_segments",
            "counterfactual_target", "counterfactual_method", "morph", "sanity_step", "tab",
            "attack_method", "epsilon")
READ_ONLY = ("explanation", "probabilities", "shown", "segments", "masked", "counterfactual",
             "counterfactual_strip",
             "sanity", "faithfulness", "influence", "sensitivity", "attack", "error", "status",
             "tab_progress")


def _row(*children, gap: str = "16px") -> widgets.Box:
    return widgets.Box(list(children), layout={"flex_flow": "row wrap", "gap": gap,
                                               "align_items": "flex-start", "width": "100%"})


class ExplainWidget(StaticFallback, widgets.VBox):
    """The image, the target's map, the probabilities, the class tiles, the controls.

    Takes the ``ViewState`` arguments: ``model, x, method, target, baseline`` (a name,
    ``"counterfactual:B"`` or an array), ``baseline_alpha, abs_values, data, classes,
    preprocess, output, top_k, weights`` (torchvision weights: class names, resize/crop of
    the shown image, normalisation in the differentiated path), ``layout``, ``train=(images,
    labels)`` and ``checkpoints`` (the influence tab), ``actor`` (a trained CFRL actor for
    the counterfactual tab) and the method's parameters. Every
    state trait (see ``ViewState``) reads and writes through the widget:
    ``w.method = "saliency"``; a bad value raises ``InputError`` at once. ``wait(timeout)``
    returns once the view shows the latest state. ``snapshot()`` is the view as a PNG:
    displayed, the widget keeps a copy of it in the notebook, redrawn when the view settles
    (see ``snapshot``).
    """

    def __init__(self, model, x, **kwargs):
        self.state = ViewState(model, x, **kwargs)
        self.panels = {p.name: p for p in (MapPanel(self.state), BarsPanel(self.state),
                                           ControlsPanel(self.state), ClassesPanel(self.state),
                                           StatusPanel(self.state))}
        self.tabs = widgets.Tab(children=[widgets.HTML("") for _ in TABS],
                                layout={"margin": "10px 0 0 0", "width": "100%"})
        self.tabs.titles = tuple(tab.title for tab in TABS)
        self.tabs.selected_index = None
        self.tabs.add_class("xai-panels")
        self.tabs.add_class("xai-no-tab")  # no empty bordered box under the closed tabs
        self.tabs.observe(self._on_tab, "selected_index")
        self.state.observe(lambda _: self._show_tab(), "tab")
        p = self.panels
        super().__init__([_row(p["map"], p["bars"]), _row(p["controls"], p["classes"]),
                          self.tabs, p["status"]], layout={"width": "100%", "max_width": "1100px"})
        self.add_class("xai-explain-widget")
        self.state.observe(self._snapshot_soon, ["explanation", "status", "error", "target",
                                                 "abs_values", "colour_image", "probabilities"])

    # -- public ------------------------------------------------------------------------
    def wait(self, timeout: float = 60.0) -> ExplainWidget:
        """Block until the view shows the latest state; raise TimeoutError otherwise."""
        self.state.wait(timeout)
        self.refresh_snapshot()  # here too, so the picture reaches the cell that waits
        return self

    def panel(self, name: str):
        """The panel called ``name`` (a tab's panel is built when first asked for)."""
        if name not in self.panels:
            names = [tab.name for tab in TABS]
            if name not in names:
                raise KeyError(f"no panel {name!r}; panels: {sorted([*self.panels, *names])}")
            index = names.index(name)
            self.panels[name] = TABS[index](self.state)
            children = list(self.tabs.children)
            children[index] = self.panels[name]
            self.tabs.children = children
        return self.panels[name]

    def top_segments(self, k: int) -> list[int]:
        """The ``k`` segments with the highest mean attribution for the target."""
        return top_segments(self.state, k)

    def hide_top_segments(self, k: int) -> None:
        """Hide the ``k`` segments that speak most for the target ("remove top k")."""
        self.state.hidden_segments = top_segments(self.state, k)

    def keep_top_segments(self, k: int) -> None:
        """Hide every segment but the top ``k`` ("keep top k")."""
        self.state.hidden_segments = keep_top(self.state, k)

    def run_attack(self, top_k: int | None = None, steps: int = 100) -> None:
        """Start the robustness tab's interpretation attack (``attack_method``, ``epsilon``);
        ``w.attack`` holds the result once ``wait()`` returns."""
        trust_requests.request_attack(self.state, top_k, steps)

    def close(self) -> None:
        self._stop_snapshots()
        if hasattr(self, "state"):
            self.state.close()
        for panel in getattr(self, "panels", {}).values():
            panel.close()
        super().close()

    # -- the static picture --------------------------------------------------------------
    def _snapshot(self):
        return draw_explain(self.state, self.state.explanation)

    def _snapshot_text(self) -> str:
        state, e = self.state, self.state.explanation
        what = f"class {state.label(state.target)}"
        if e is not None and state.target in e.targets:
            what += f", p = {e.probabilities[state.target]:.1%}"
        return f"ExplainWidget: {what} · {state.error or state.status or 'computing…'}"

    def _settled(self) -> bool:
        e, state = self.state.explanation, self.state
        return bool(state.error) or (e is not None and not e.refining
                                     and not state.status.startswith("computing"))

    # -- tabs --------------------------------------------------------------------------
    def _on_tab(self, change) -> None:
        index = change["new"]
        name = "" if index is None else TABS[index].name
        if name:
            self.panel(name)
            self.tabs.remove_class("xai-no-tab")
        else:
            self.tabs.add_class("xai-no-tab")
        self.state.set("tab", name)

    def _show_tab(self) -> None:
        name = self.state.tab
        index = None if not name else [tab.name for tab in TABS].index(name)
        if name:
            self.panel(name)
        if self.tabs.selected_index != index:
            self.tabs.selected_index = index


delegate_traits(ExplainWidget, SETTABLE, READ_ONLY)
