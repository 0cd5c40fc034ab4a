"""A class picker that scales to 1000 classes: type a name or an index.

>>> from xai_widgets.widgets.class_picker import class_picker, parse_class
>>> picker = class_picker(["cat", "dog"], "show class")
>>> names = ["cat", "dog"]
>>> parse_class("dog (1)", names), parse_class("0", names), parse_class("", ["cat"])
(1, 0, None)
"""

from __future__ import annotations

import ipywidgets as widgets

from xai_widgets.widgets.controls import FIT, STYLE


def option(labels, index: int) -> str:
    return f"{labels[index]} ({index})"


def class_picker(labels, description: str, width: str = "300px") -> widgets.Combobox:
    picker = widgets.Combobox(options=[option(labels, i) for i in range(len(labels))],
                              placeholder="name or index", description=description,
                              ensure_option=False, continuous_update=False, style=STYLE,
                              layout={"width": width, "max_width": FIT})
    picker.add_class("xai-class-picker")
    return picker


def parse_class(text: str, labels) -> int | None:
    """The class a picker's text names: "name (i)", a name, or an index; None if none."""
    text = (text or "").strip()
    if not text:
        return None
    if text.endswith(")") and "(" in text:
        inner = text[text.rindex("(") + 1:-1]
        if inner.isdigit() and int(inner) < len(labels):
            return int(inner)
    if text in labels:
        return list(labels).index(text)
    if text.isdigit() and int(text) < len(labels):
        return int(text)
    return None
