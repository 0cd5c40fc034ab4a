"""Panel: the base of every part of a view. A panel reads the shared ``ViewState`` and
writes only its own traits of it; ``display(panel)`` shows it alone.

>>> from xai_widgets.widgets.panel import escape
>>> escape("<b>")
'&lt;b&gt;'
"""

from __future__ import annotations

import ipywidgets as widgets

from xai_widgets.engine import error_message


def escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text(html: str, kind: str = "body") -> widgets.HTML:
    """Themed text: ``body``, ``muted`` (secondary), ``heading``."""
    widget = widgets.HTML(f"<div class='xai-text xai-{kind}'>{html}</div>")
    widget.add_class("xai-html")
    return widget


def set_text(widget: widgets.HTML, html: str, kind: str = "body") -> None:
    widget.value = f"<div class='xai-text xai-{kind}'>{html}</div>"


class Panel(widgets.VBox):
    """Subclasses set ``name`` and ``title``, build their children in ``build()`` and draw
    the state in ``render()``; ``watch`` lists the state traits that trigger ``render``."""

    name = ""
    title = ""
    watch: tuple = ()

    def __init__(self, state, **kwargs):
        super().__init__(**kwargs)
        self.state = state
        self._observers: list = []
        self.add_class("xai-panel")
        self.add_class(f"xai-panel-{self.name}")
        self.children = self.build()
        if self.watch:
            self.on(self.watch, self.render)
        self.guarded(self.render)

    def build(self) -> list:
        return []

    def render(self) -> None:
        """Draw the state (called under the state's apply lock)."""

    def guarded(self, function, *args) -> None:
        """Run a drawing step under the apply lock; a failure goes to the status line."""
        with self.state.apply_lock:
            try:
                function(*args)
            except Exception as error:  # noqa: BLE001 - shown in the view
                self.state.fail(error_message(error))

    def on(self, names, function) -> None:
        """Call ``function()`` whenever one of the state's ``names`` changes."""
        handler = lambda _change: self.guarded(function)  # noqa: E731
        self.state.observe(handler, list(names))
        self._observers.append((handler, list(names)))

    def bind(self, control: widgets.Widget, name: str, to_state=None, from_state=None) -> None:
        """Two-way link of a control's value and a state trait, through optional maps
        (a map may return ``SKIP``: nothing to set)."""
        to_state = to_state or (lambda value: value)
        from_state = from_state or (lambda value: value)

        def push(change):
            value = to_state(change["new"])
            if value is not SKIP and differs(value, getattr(self.state, name)):
                self.state.set(name, value)

        def pull():
            value = from_state(getattr(self.state, name))
            if value is not SKIP and differs(control.value, value):
                try:
                    control.value = value
                except Exception:  # noqa: BLE001 - a value the control cannot show
                    pass

        control.observe(push, "value")
        self.on([name], pull)
        pull()

    def close(self) -> None:
        for handler, names in self._observers:
            self.state.unobserve(handler, names)
        self._observers = []
        super().close()


SKIP = object()


def differs(a, b) -> bool:
    try:
        return bool(a != b)
    except (TypeError, ValueError):  # arrays
        return True


def delegate_traits(cls, settable, read_only) -> None:
    """Give ``cls`` a property per name that reads (and, for ``settable``, writes) the trait
    of the same name on ``self.state``: the widget's public face over its one state."""
    def delegate(name: str, is_read_only: bool) -> property:
        def get(self):
            return getattr(self.state, name)

        def set_(self, value):
            setattr(self.state, name, value)

        note = " (read-only)" if is_read_only else ""
        return property(get, set_, doc=f"``state.{name}``{note}")

    for name in (*settable, *read_only):
        setattr(cls, name, delegate(name, name in read_only))
