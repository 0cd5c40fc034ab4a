"""Superpixels: hide segments and watch the prediction move.

Hiding or showing a segment costs one forward pass of one masked image (on the view's
engine); hidden segments take the view's baseline. Writes ``segmentation`` and
``hidden_segments``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from xai_widgets.encoding import encode
from xai_widgets.superpixels import SEGMENTATIONS
from xai_widgets.widgets.controls import FIT, STYLE
from xai_widgets.widgets.map_panel import display_image
from xai_widgets.widgets.panel import Panel, text
from xai_widgets.widgets.views import SuperpixelView


def segment_weights(state) -> np.ndarray:
    """Mean attribution of the target inside each segment."""
    e, labels = state.explanation, state.segments
    target_map = (e.map(state.target) if e is not None and state.target in e.targets
                  else np.zeros(labels.shape))
    sums = np.bincount(labels.ravel(), weights=target_map.ravel())
    return sums / np.maximum(np.bincount(labels.ravel()), 1)


def top_segments(state, k: int) -> list[int]:
    """The ``k`` segments with the highest mean attribution for the target."""
    if state.segments is None:
        raise RuntimeError("the segments are not computed yet: call wait() first")
    return sorted(int(i) for i in np.argsort(-segment_weights(state))[:k])


def keep_top(state, k: int) -> list[int]:
    """Every segment but the top ``k``: what "keep top k" hides."""
    top = set(top_segments(state, k))
    return [s for s in range(int(state.segments.max()) + 1) if s not in top]


class SuperpixelPanel(Panel):
    name, title = "superpixels", "superpixels"
    watch = ("segments", "masked", "explanation", "target", "hidden_segments", "colour_image")

    def build(self) -> list:
        self.view = SuperpixelView(size=260)
        self.view.observe(lambda change: self.state.set("hidden_segments", list(change["new"])),
                          "hidden")
        self.segmentation = widgets.Dropdown(options=list(SEGMENTATIONS), description="segments",
                                             style=STYLE,
                                             layout={"width": "260px", "max_width": FIT})
        self.segmentation.add_class("xai-segmentation")
        self.bind(self.segmentation, "segmentation")
        self.k = widgets.BoundedIntText(value=5, min=1, max=400, description="k",
                                        style={"description_width": "20px"},
                                        layout={"width": "90px"})
        buttons = []
        for label, action in (("keep top k", "keep"), ("remove top k", "remove"),
                              ("reset", "reset")):
            button = widgets.Button(description=label, layout={"width": "auto"})
            button.add_class(f"xai-sp-{action}")
            button.on_click(lambda _, action=action: self.guarded(self.press, action))
            buttons.append(button)
        return [text("<b>superpixels</b>: click a segment to hide it (it takes the baseline); "
                     "the bars show the new prediction"),
                self.view, self.segmentation,
                widgets.HBox([self.k, *buttons], layout={"flex_flow": "row wrap", "gap": "4px"})]

    def press(self, action: str) -> None:
        """What the buttons do: "keep" / "remove" the top k segments, or "reset"."""
        state = self.state
        if action == "reset" or state.segments is None:
            state.hidden_segments = []
        elif action == "remove":
            state.hidden_segments = top_segments(state, self.k.value)
        else:
            state.hidden_segments = keep_top(state, self.k.value)

    def render(self) -> None:
        state, e = self.state, self.state.explanation
        if e is None or state.segments is None:
            return
        labels = state.segments
        self.k.max = int(labels.max()) + 1
        masked, hidden = state.masked, list(state.hidden_segments)
        ready = masked is not None and list(masked.hidden) == hidden
        weights = segment_weights(state)
        label = state.label(state.target)
        if hidden and not ready:
            caption = f"{len(hidden)} segment(s) hidden: computing the prediction…"
        elif hidden:
            before, after = e.probabilities[state.target], masked.probabilities[state.target]
            caption = (f"{len(hidden)} segment(s) hidden ({masked.baseline} baseline): p({label}) "
                       f"{before:.1%} → {after:.1%} ({100 * (after - before):+.1f} points)")
        else:
            caption = (f"{len(weights)} segments, coloured by their weight for class {label}; "
                       "click one to hide it")
        with self.view.hold_sync():
            self.view.image = display_image(e.image)
            self.view.grey = e.image.shape[0] == 3 and not state.colour_image
            self.view.segments = encode(labels, "float32")
            self.view.masked_image = display_image(masked.image) if ready else encode(np.zeros(0))
            self.view.weights = weights.tolist()
            self.view.hidden = hidden
            self.view.caption = caption
