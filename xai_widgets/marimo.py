"""The explanation view in marimo: our anywidget views, marimo's own controls.

marimo (0.25) renders anywidget views (``mo.ui.anywidget``) but not classic ipywidgets
containers or bqplot ("Jupyter widgets are not supported in marimo"); ``ExplainWidget``
shows there only as its static picture, frozen when the cell ran. ``explain_app`` builds
the same view from parts that do render: the map and the
class tiles (``MapPanel`` / ``ClassesPanel`` over one ``ViewState``, their anywidget views
only), the probabilities and the status line as small anywidget views of their own, and
``mo.ui`` controls that set the state. Clicking a tile explains that class. In a marimo cell::

    from xai_widgets.marimo import explain_app
    view = explain_app(model, images[0], classes=classes)
    view  # the last expression of the cell: marimo shows view.layout()

Without marimo it still runs (marimo is needed only for ``layout()``), which is how this
example runs as a doctest:

>>> from xai_widgets.marimo import explain_app
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> view = explain_app(model, images[0], classes=classes, method="saliency").wait(60)
>>> view.views["map"].title.split(" · ")[:2], view.views["status"].kind
(['class 4', 'Saliency (gradient)'], 'ok')
>>> view.state.method = "occlusion"
>>> view.wait(60).views["map"].title.split(" · ")[1], view.views["status"].text[:9]
('Occlusion', 'Occlusion')
>>> view.close()
"""

from __future__ import annotations

from xai_widgets import methods
from xai_widgets.widgets.bars_view import BarsViewPanel
from xai_widgets.widgets.classes_panel import ClassesPanel
from xai_widgets.widgets.map_panel import MapPanel
from xai_widgets.widgets.state import ViewState
from xai_widgets.widgets.status_view import StatusViewPanel

__all__ = ["ExplainApp", "explain_app"]


class ExplainApp:
    """The panels of one view over one ``ViewState`` (``.state``), shown through their
    anywidget views (``.views``: ``map``, ``classes``, ``bars``, ``status``). Takes the
    ``ViewState`` arguments (``model, x, method, target, classes, ...``)."""

    def __init__(self, model, x, **kwargs):
        self.state = ViewState(model, x, **kwargs)
        state = self.state
        self.panels = {p.name: p for p in (MapPanel(state), ClassesPanel(state),
                                           BarsViewPanel(state), StatusViewPanel(state))}
        p = self.panels
        self.views = {"map": p["map"].view, "classes": p["classes"].grid,
                      "bars": p["bars"].view, "status": p["status"].view}
        self._layout = None

    def wait(self, timeout: float = 60.0) -> ExplainApp:
        """Block until the views show the latest state; TimeoutError otherwise."""
        self.state.wait(timeout)
        return self

    def close(self) -> None:
        """Stop the state's engine and close the views."""
        self.state.close()
        for panel in self.panels.values():
            panel.close()

    def controls(self) -> dict:
        """marimo controls that set the state: ``method``, ``target``, ``abs_values``,
        ``shared_scale``. marimo's controls do not follow later changes from Python or a
        tile click (their value is the last one picked in them); the views do."""
        import marimo as mo

        state = self.state
        usable = [n for n, why in methods.available(state.adapter).items() if why is None]
        by_label = {methods.spec(n).label: n for n in usable}
        unique = len(set(state.labels)) == len(state.labels)
        classes = {(label if unique else f"{i} · {label}"): i
                   for i, label in enumerate(state.labels)}
        current = next(k for k, i in classes.items() if i == state.target)
        return {
            "method": mo.ui.dropdown(by_label, value=methods.spec(state.method).label,
                                     label="method", on_change=lambda v: state.set("method", v)),
            "target": mo.ui.dropdown(classes, value=current, label="explain class",
                                     searchable=len(classes) > 20,
                                     on_change=lambda v: v is not None and state.set("target", v)),
            "abs_values": mo.ui.switch(value=state.abs_values, label="|values|",
                                       on_change=lambda v: state.set("abs_values", v)),
            "shared_scale": mo.ui.switch(value=state.shared_scale, label="one scale for all tiles",
                                         on_change=lambda v: state.set("shared_scale", v)),
        }

    def layout(self):
        """The marimo layout (built once): map and bars, the controls, the tiles, the status.

        >>> import pytest
        >>> mo = pytest.importorskip("marimo")
        >>> from xai_widgets.zoo import load_demo
        >>> model, images, labels, classes = load_demo("mnist")
        >>> view = explain_app(model, images[1], method="saliency")
        >>> layout = view.layout()
        >>> isinstance(layout, mo.Html), layout.text.count("marimo-anywidget") >= 4
        (True, True)
        >>> view.close()
        """
        if self._layout is not None:
            return self._layout
        import marimo as mo

        views = {name: mo.ui.anywidget(view) for name, view in self.views.items()}
        self.ui = {**views, **self.controls()}
        c = self.ui
        self._layout = mo.vstack([
            mo.hstack([views["map"], views["bars"]], widths=[3, 2], align="start", gap=2),
            mo.hstack([c["method"], c["target"], c["abs_values"], c["shared_scale"]],
                      justify="start", align="center", wrap=True),
            mo.md("Click a tile to explain its class · ★ = predicted"),
            views["classes"],
            views["status"],
        ], gap=1)
        return self._layout

    def _display_(self):
        return self.layout()


def explain_app(model, x, **kwargs) -> ExplainApp:
    """An ``ExplainApp``: the last expression of a marimo cell shows its layout."""
    return ExplainApp(model, x, **kwargs)
