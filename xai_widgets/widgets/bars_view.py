"""The probabilities as a small anywidget view of our own (``js/bars.js``): plain DOM bars,
so they render wherever anywidget does, marimo included, where bqplot does not.

``bar_rows(state)`` is what the bars show; ``BarsViewPanel(state).view`` draws it.

>>> from xai_widgets.widgets.bars_view import BarsView, bar_rows
>>> from xai_widgets.widgets.state import ViewState
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> state = ViewState(model, images[0], method="saliency", classes=classes)
>>> names, values, roles = bar_rows(state)
>>> names == classes, round(sum(values), 3), roles.count("target")
(True, 1.0, 1)
>>> BarsView(names=names).names[:3]
['0', '1', '2']
>>> state.close()
"""

from __future__ import annotations

import numpy as np
import traitlets

from xai_widgets.widgets.panel import Panel
from xai_widgets.widgets.views import STATIC, _Styled

OTHERS = "all others"


class BarsView(_Styled):
    """Horizontal bars: ``names``, ``values`` (0..1) and ``roles`` (``target``,
    ``predicted``, ``other`` or ``rest``) in the same order, a ``title`` and a ``caption``."""

    _esm = STATIC / "bars.js"
    names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    values = traitlets.List(traitlets.Float()).tag(sync=True)
    roles = traitlets.List(traitlets.Unicode()).tag(sync=True)
    title = traitlets.Unicode("predicted probabilities").tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)


def bar_rows(state) -> tuple[list[str], list[float], list[str]]:
    """Names, probabilities and roles of ``state.shown_classes()``, most probable first when
    not every class is shown, then one row for the rest summed."""
    p = np.asarray(state.probabilities)
    shown = state.shown_classes()
    predicted = int(np.argmax(p))
    names = [state.label(c) for c in shown]
    values = [float(p[c]) for c in shown]
    roles = ["target" if c == state.target else "predicted" if c == predicted else "other"
             for c in shown]
    if len(shown) < state.n_classes:
        names.append(OTHERS)
        values.append(max(0.0, 1.0 - sum(values)))
        roles.append("rest")
    return names, values, roles


class BarsViewPanel(Panel):
    """``state.probabilities`` in a ``BarsView`` (``.view``); writes nothing to the state."""

    name, title = "bars", "probabilities"
    watch = ("probabilities", "target", "explanation", "top_k", "pinned", "shown")

    def build(self) -> list:
        self.view = BarsView()
        return [self.view]

    def render(self) -> None:
        state = self.state
        names, values, roles = bar_rows(state)
        predicted = int(np.argmax(np.asarray(state.probabilities)))
        note = ("" if predicted in state.shown_classes()
                else f" · predicted: {state.label(predicted)} (not shown)")
        with self.view.hold_sync():
            self.view.names, self.view.values, self.view.roles = names, values, roles
            self.view.caption = f"prediction for {state.shown}{note}"
