"""The status line as a small anywidget view (``js/status_line.js``): ✓ and the last
update, the running computation with its progress, or the error; the notes below.

>>> from xai_widgets.widgets.status_view import status_line
>>> status_line("", "Saliency (gradient) · 10 classes · 12 ms")
('ok', 'Saliency (gradient) · 10 classes · 12 ms')
>>> status_line("", "computing Occlusion… 40%")
('busy', 'computing Occlusion… 40%')
>>> status_line("target 12 is out of range", "error: target 12 is out of range")
('error', 'target 12 is out of range')
"""

from __future__ import annotations

import traitlets

from xai_widgets.widgets.panel import Panel
from xai_widgets.widgets.views import STATIC, _Styled


class StatusView(_Styled):
    """``kind`` (``ok``, ``busy``, ``error`` or empty), ``text``, ``progress`` (0..1, or -1
    when idle) and the explanation's ``notes``."""

    _esm = STATIC / "status_line.js"
    kind = traitlets.Unicode("").tag(sync=True)
    text = traitlets.Unicode("").tag(sync=True)
    progress = traitlets.Float(-1.0).tag(sync=True)
    notes = traitlets.List(traitlets.Unicode()).tag(sync=True)


def status_line(error: str, status: str) -> tuple[str, str]:
    """The kind and text of the status line for the state's ``error`` and ``status``."""
    if error:
        return "error", error
    if status.startswith("computing"):
        return "busy", status
    return ("ok", status) if status else ("", "")


class StatusViewPanel(Panel):
    """The state's status in a ``StatusView`` (``.view``); writes nothing to the state."""

    name, title = "status", "status"
    watch = ("status", "error", "progress", "explanation")

    def build(self) -> list:
        self.view = StatusView()
        return [self.view]

    def render(self) -> None:
        state, e = self.state, self.state.explanation
        kind, line = status_line(state.error, state.status)
        with self.view.hold_sync():
            self.view.kind, self.view.text = kind, line
            self.view.progress = state.progress
            self.view.notes = list(e.notes) if e is not None else []
