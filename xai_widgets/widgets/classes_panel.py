"""One tile per shown class; click a tile to explain that class, pick any other class by
name or index, and choose between each tile's own colour scale and one shared scale."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from xai_widgets.encoding import encode
from xai_widgets.widgets.class_picker import class_picker, parse_class
from xai_widgets.widgets.map_panel import display_image
from xai_widgets.widgets.panel import SKIP, Panel, set_text, text
from xai_widgets.widgets.views import ClassGrid

SCALES = ("own scale", "shared scale")
TILE = 64  # tiles are drawn 72 px wide: larger maps are averaged down before they travel


def tile_size(arrays: np.ndarray) -> np.ndarray:
    """(N, H, W) maps averaged down to at most TILE pixels a side (a 224 px map: 56 px)."""
    factor = int(np.ceil(max(arrays.shape[-2:]) / TILE))
    if factor <= 1:
        return arrays
    h, w = (arrays.shape[-2] // factor) * factor, (arrays.shape[-1] // factor) * factor
    cut = arrays[..., :h, :w]
    return cut.reshape(*cut.shape[:-2], h // factor, factor, w // factor,
                       factor).mean(axis=(-3, -1))


class ClassesPanel(Panel):
    """Tiles of ``state.shown_classes()``; writes ``target``, ``pinned``, ``top_k`` and
    ``shared_scale``."""

    name, title = "classes", "classes"
    watch = ("explanation", "target", "abs_values", "shared_scale", "colour_image", "top_k",
             "pinned")

    def build(self) -> list:
        state = self.state
        self.grid = ClassGrid()
        self.grid.observe(lambda change: state.set("target", change["new"]), "target")
        self.header = text("")
        self.scale = widgets.ToggleButtons(
            options=SCALES, style={"button_width": "110px"},
            tooltips=["each tile scaled to its own largest value",
                      "every tile on the scale of the largest value"])
        self.scale.add_class("xai-scale")
        self.bind(self.scale, "shared_scale", lambda v: v == SCALES[1],
                  lambda shared: SCALES[int(shared)])
        self.picker = class_picker(state.labels, "show class")
        self.picker.observe(lambda change: self._pick(change["new"]), "value")
        rows = [self.header, widgets.HBox([self.scale], layout={"flex_flow": "row wrap"}),
                self.grid]
        if state.n_classes > 10:
            self.top_k = widgets.BoundedIntText(min=1, max=state.n_classes, description="top k",
                                                style={"description_width": "50px"},
                                                layout={"width": "140px"})
            self.top_k.add_class("xai-top-k")
            self.bind(self.top_k, "top_k")
            rows.insert(2, widgets.HBox([self.picker, self.top_k],
                                        layout={"flex_flow": "row wrap", "gap": "6px"}))
        else:
            self.bind(widgets.IntText(), "top_k", from_state=lambda _: SKIP)
        self.layout = widgets.Layout(flex="1 1 320px", min_width="0")
        return rows

    def _pick(self, value: str) -> None:
        index = parse_class(value, self.state.labels)
        if index is None:
            if value:
                self.state.fail(f"no class {value!r}: type a class name or an index in "
                                f"0..{self.state.n_classes - 1}")
            return
        state = self.state
        if index not in state.shown_classes():
            state.pinned = [*state.pinned, index]
        state.target = index

    def render(self) -> None:
        state, e = self.state, self.state.explanation
        shown = state.shown_classes()
        if e is None or not set(shown) <= set(e.targets):
            return
        maps = tile_size(np.stack([e.map(c) for c in shown]))
        maps = np.abs(maps) if state.abs_values else maps
        peaks = np.abs(maps).reshape(len(shown), -1).max(1)
        scale = ("one shared colour scale" if state.shared_scale
                 else "each tile on its own colour scale")
        top = "every class" if len(shown) >= state.n_classes else f"the top {state.top_k} classes"
        set_text(self.header, f"<b>{top}</b>, {scale} · click a tile to explain it · ★ = predicted")
        with self.grid.hold_sync():
            self.grid.image = display_image(tile_size(e.image))
            self.grid.grey = e.image.shape[0] == 3 and not state.colour_image
            self.grid.maps = encode(maps)
            self.grid.classes = shown
            self.grid.labels = [state.label(c) for c in shown]
            self.grid.probabilities = [float(e.probabilities[c]) for c in shown]
            self.grid.vmaxes = ([float(peaks.max())] * len(shown) if state.shared_scale
                                else peaks.tolist())
            self.grid.abs_values = state.abs_values
            self.grid.predicted = e.prediction
            self.grid.target = state.target
