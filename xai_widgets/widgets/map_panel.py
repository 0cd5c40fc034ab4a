"""The target's map over the image, the input beside it, a colour bar and the convention.

>>> from xai_widgets.widgets.map_panel import convention
>>> convention("7", False).startswith("Red = evidence for class 7")
True
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from xai_widgets import methods
from xai_widgets.encoding import encode
from xai_widgets.widgets.panel import Panel
from xai_widgets.widgets.views import HeatmapView


def display_image(image: np.ndarray) -> dict:
    """The image as uint8 for the front end (a quarter of float32's bytes), scaled from
    its value range (at least 0..1) to 0..255."""
    low, high = min(0.0, float(image.min())), max(1.0, float(image.max()))
    return encode(np.round(255 * (image - low) / (high - low or 1.0)), "uint8")


def convention(label: str, abs_values: bool) -> str:
    if abs_values:
        return (f"Absolute values: the stronger the red, the more a pixel changes the score of "
                f"class {label}, in either direction. Colour marks a pixel's effect, not its ink.")
    return (f"Red = evidence for class {label}, blue = evidence against it, transparent ≈ 0; "
            "the colour bar gives the range. Colour marks a pixel's effect, not its ink.")


class MapPanel(Panel):
    """The large map of ``state.target``."""

    name, title = "map", "map"
    watch = ("explanation", "target", "abs_values", "colour_image")

    def build(self) -> list:
        self.view = HeatmapView(size=300)
        self.layout = widgets.Layout(flex="1 1 420px", max_width="560px", min_width="0")
        return [self.view]

    def render(self) -> None:
        state, e = self.state, self.state.explanation
        if e is None or state.target not in e.targets:
            return
        target_map = e.map(state.target)
        target_map = np.abs(target_map) if state.abs_values else target_map
        label = state.label(state.target)
        with self.view.hold_sync():
            self.view.image = display_image(e.image)
            self.view.grey = e.image.shape[0] == 3 and not state.colour_image
            self.view.attribution = encode(target_map)
            self.view.vmax = float(np.abs(target_map).max())
            self.view.abs_values = state.abs_values
            self.view.title = (f"class {label} · {methods.spec(e.method).label} · "
                               f"p = {e.probabilities[state.target]:.1%}")
            self.view.convention = convention(label, state.abs_values)
