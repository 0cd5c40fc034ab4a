"""The superpixel panel of ExplainWidget: hide segments and watch the prediction move.

Traits (on the widget): ``segmentation`` (str), ``segments`` (read-only (H, W) int labels),
``hidden_segments`` (list of segment ids, settable). Hiding or showing a segment costs one
forward pass of one masked image; hidden segments take the current baseline.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import torch
import traitlets

from xai_widgets import methods
from xai_widgets.encoding import encode
from xai_widgets.engine import error_message
from xai_widgets.superpixels import SEGMENTATIONS
from xai_widgets.widgets.controls import STYLE
from xai_widgets.widgets.views import SuperpixelView


class SuperpixelPanel(traitlets.HasTraits):
    """Mixin for ExplainWidget; expects ``_engine``, ``explanation``, ``target``, ``_fail``."""

    segmentation = traitlets.Unicode("slic")
    segments = traitlets.Any(None, read_only=True)
    hidden_segments = traitlets.List(traitlets.Int())

    def _build_superpixel_panel(self) -> widgets.Widget:
        self._superpixels = SuperpixelView()
        self._segmentation_picker = widgets.Dropdown(
            options=list(SEGMENTATIONS), description="segments", style=STYLE,
            layout={"width": "280px"})
        self._segmentation_picker.add_class("xai-segmentation")
        self._top_k = widgets.BoundedIntText(value=5, min=1, max=400, description="k",
                                             style={"description_width": "20px"},
                                             layout={"width": "90px"})
        buttons = []
        for label, action in (("keep top k", "keep"), ("remove top k", "remove"),
                              ("reset", "reset")):
            button = widgets.Button(description=label, layout={"width": "auto"})
            button.add_class(f"xai-sp-{action}")
            button.on_click(lambda _, action=action: self._on_top_k_button(action))
            buttons.append(button)
        return widgets.VBox([
            widgets.HTML("<b>superpixels</b> (click a segment to hide it: it takes the "
                         "baseline; the bars show the new prediction)"),
            self._superpixels, self._segmentation_picker,
            widgets.HBox([self._top_k, *buttons])])

    def _wire_superpixel_panel(self) -> None:
        self.observe(lambda _: self._on_segmentation(), "segmentation")
        self.observe(lambda _: self._on_hidden(), "hidden_segments")
        self._superpixels.observe(
            lambda change: setattr(self, "hidden_segments", list(change["new"])), "hidden")
        self._segmentation_picker.observe(
            lambda change: setattr(self, "segmentation", change["new"]), "value")
        self._on_segmentation()

    # -- reacting -----------------------------------------------------------------------
    def _segment_params(self) -> dict:
        """The current superpixel method's own segmentation parameters, if it uses these."""
        e = self.explanation
        if e is not None and methods.spec(e.method).superpixels and \
                e.params.get("segmentation") == self.segmentation:
            return e.params
        return {}

    def _on_segmentation(self) -> None:
        if self.segmentation not in SEGMENTATIONS:
            self._fail(f"unknown segmentation {self.segmentation!r}: choose one of "
                       f"{', '.join(SEGMENTATIONS)}")
            return
        self._segmentation_picker.value = self.segmentation
        self._show_segments()

    def _sync_segments(self) -> None:
        """After a new explanation: follow a superpixel method's own segmentation."""
        e = self.explanation
        if methods.spec(e.method).superpixels and e.params["segmentation"] != self.segmentation:
            self.segmentation = e.params["segmentation"]  # the observer shows its segments
            return
        labels = self._engine.segments(self.segmentation, self._segment_params()).cpu().numpy()
        if self.segments is None or not np.array_equal(labels, self.segments):
            self._show_segments()
        else:
            self._on_hidden()

    def _show_segments(self) -> None:
        labels = self._engine.segments(self.segmentation, self._segment_params())
        self.set_trait("segments", labels.cpu().numpy())
        self._superpixels.segments = encode(labels.cpu().numpy(), "float32")
        self._top_k.max = int(labels.max()) + 1
        if self.hidden_segments:
            self.hidden_segments = []
        else:
            self._on_hidden()

    def _on_hidden(self) -> None:
        """One forward pass of the masked image; the bars and the caption follow."""
        n_segments = int(self.segments.max()) + 1
        bad = [s for s in self.hidden_segments if not 0 <= s < n_segments]
        if bad:
            self._fail(f"segments {bad} do not exist: this segmentation has segment ids "
                       f"0..{n_segments - 1}")
            return
        try:
            self._refresh_superpixels()
        except Exception as error:  # noqa: BLE001 - shown in the widget
            self._fail(error_message(error))

    def _refresh_superpixels(self) -> None:
        e = self.explanation
        if e is None or self.segments is None:
            return
        labels = torch.from_numpy(self.segments)
        baseline = self._engine.baseline_image(self.baseline, self.baseline_alpha)
        hidden = sorted(set(self.hidden_segments))
        if hidden:
            masked, probabilities = self._engine.mask(labels, hidden, baseline)
            masked, probabilities = masked[0].cpu().numpy(), probabilities.cpu().numpy()
        else:
            probabilities, masked = e.probabilities, e.image
        self.set_trait("probabilities", np.asarray(probabilities))
        self._show_probabilities(probabilities)
        weights = self._segment_weights(e, labels.numpy())
        label = self._labels[self.target]
        before, after = e.probabilities[self.target], probabilities[self.target]
        caption = (f"{len(hidden)} segment(s) hidden ({self.baseline} baseline): p({label}) "
                   f"{before:.1%} → {after:.1%} ({100 * (after - before):+.1f} points)"
                   if hidden else f"{len(weights)} segments, coloured by their weight for "
                                  f"class {label}; click one to hide it")
        with self._superpixels.hold_sync():
            self._superpixels.image = encode(e.image)
            self._superpixels.masked_image = encode(masked)
            self._superpixels.weights = weights.tolist()
            self._superpixels.hidden = hidden
            self._superpixels.caption = caption

    def _segment_weights(self, e, labels: np.ndarray) -> np.ndarray:
        """Mean attribution of the target inside each segment."""
        target_map = e.map(self.target) if self.target in e.targets else np.zeros(labels.shape)
        sums = np.bincount(labels.ravel(), weights=target_map.ravel())
        return sums / np.maximum(np.bincount(labels.ravel()), 1)

    def top_segments(self, k: int) -> list[int]:
        """The ``k`` segments with the highest mean attribution for the target."""
        weights = self._segment_weights(self.explanation, self.segments)
        return sorted(int(i) for i in np.argsort(-weights)[:k])

    def hide_top_segments(self, k: int) -> None:
        """Hide the ``k`` segments that speak most for the target ("remove top k")."""
        self.hidden_segments = self.top_segments(k)

    def keep_top_segments(self, k: int) -> None:
        """Hide every segment but the top ``k`` ("keep top k")."""
        top = set(self.top_segments(k))
        self.hidden_segments = [s for s in range(int(self.segments.max()) + 1) if s not in top]

    def _on_top_k_button(self, action: str) -> None:
        if action == "reset" or self.explanation is None:
            self.hidden_segments = []
        elif action == "remove":
            self.hide_top_segments(self._top_k.value)
        else:
            self.keep_top_segments(self._top_k.value)
