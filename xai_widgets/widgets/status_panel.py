"""The status line (time of the last update, or the error), a progress bar, the notes."""

from __future__ import annotations

import ipywidgets as widgets

from xai_widgets.widgets.panel import Panel, escape, set_text, text


class StatusPanel(Panel):
    name, title = "status", "status"
    watch = ("status", "error", "progress", "explanation")

    def build(self) -> list:
        self.line = text("")
        self.line.add_class("xai-status")
        self.progress = widgets.FloatProgress(min=0.0, max=1.0, layout={"width": "200px",
                                                                        "visibility": "hidden"})
        self.progress.add_class("xai-progress")
        self.notes = text("")
        return [widgets.HBox([self.line, self.progress],
                             layout={"align_items": "center", "flex_flow": "row wrap"}),
                self.notes]

    def render(self) -> None:
        state = self.state
        if state.error:
            set_text(self.line, f"<span class='xai-error'>⚠ {escape(state.error)}</span>")
        elif state.status.startswith("computing"):
            set_text(self.line, escape(state.status), "muted")
        elif state.status:
            set_text(self.line, f"<span class='xai-ok'>✓</span> {escape(state.status)}")
        busy = state.progress >= 0
        self.progress.layout.visibility = "visible" if busy else "hidden"
        if busy:
            self.progress.value = state.progress
        e = state.explanation
        notes = "".join(f"<li>{escape(n)}</li>" for n in e.notes) if e is not None else ""
        set_text(self.notes, f"<ul class='xai-notes'>{notes}</ul>" if notes else "", "muted")
