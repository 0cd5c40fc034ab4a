"""Influence: which training images pushed the model toward the target class, and which
pushed against it (TracIn, see ``xai_widgets.influence``).

Needs the training set: ``ExplainWidget(model, x, train=(images, labels),
checkpoints=[...])``. The training set is prepared once per model (a progress bar), then
each target is one query. The proponents and opponents are thumbnails with their label and
score; clicking one opens it in its own ``ExplainWidget`` below.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from xai_widgets.encoding import encode
from xai_widgets.widgets.panel import Panel, escape, set_text, text
from xai_widgets.widgets.views import TilesView


def progress_bar(name: str) -> widgets.FloatProgress:
    bar = widgets.FloatProgress(min=0.0, max=1.0, layout={"width": "260px", "max_width": "100%"})
    bar.add_class(f"xai-{name}-progress")
    return bar


def show_progress(bar: widgets.FloatProgress, fraction: float) -> None:
    bar.layout.display = "none" if fraction < 0 else None
    bar.value = max(0.0, fraction)


def describe(influencer, checkpoints) -> str:
    """How the scores were computed, in words."""
    method = getattr(influencer, "method", "tracin")
    if method == "naive":
        return "influence function (exact Hessian of the last layer)"
    if method == "arnoldi":
        return "influence function (Arnoldi approximation of the Hessian)"
    n = len(checkpoints) if checkpoints is not None else 0
    return f"TracIn over {n} checkpoints" if n else "TracIn at the final weights"


class InfluencePanel(Panel):
    """``tiles`` (proponents, then opponents), ``note`` (what is shown, progress or why
    nothing is), ``detail`` (the training image clicked, in an ``ExplainWidget``)."""

    name, title = "influence", "influence"
    watch = ("influence", "tab_progress", "target", "error")

    def build(self) -> list:
        self.explainer, self._opened, self._order = None, -1, []
        self.note = text("", "muted")
        self.note.add_class("xai-influence-note")
        self.bar = progress_bar("influence")
        self.tiles = TilesView(size=64, dim=0.0)  # no maps over them: the images as they are
        self.tiles.add_class("xai-influence-tiles")
        self.tiles.observe(self._clicked, "selected")
        self.detail = widgets.VBox(layout={"width": "100%"})
        self.opened = text("", "muted")
        self.opened.add_class("xai-influence-opened")
        return [text("<b>influence</b>: which training images made the model decide this? "
                     "Proponents pushed the target's score up while the model trained, "
                     "opponents pushed it down (often the same class drawn another way, or a "
                     "look-alike of another class); click one to explain it"),
                self.note, self.bar, self.tiles, self.opened, self.detail]

    def render(self) -> None:
        state, result = self.state, self.state.influence
        show_progress(self.bar, state.tab_progress if state.tab == self.name else -1.0)
        if state.train is None:
            set_text(self.note, "no training set: pass <code>train=(train_images, "
                                "train_labels)</code> (and <code>checkpoints=</code>, state_dicts "
                                "saved during training) to ExplainWidget", "muted")
            self.tiles.layout.display = "none"
            return
        if result is None or result.target != state.target:
            busy = state.tab_progress >= 0
            message = (f"<span class='xai-error'>⚠ {escape(state.error)}</span>"
                       if state.error and not busy else
                       f"preparing {len(state.train[1])} training images…" if busy else "")
            set_text(self.note, message, "muted")
            return
        self.tiles.layout.display = None
        self._show(result)

    def _show(self, result) -> None:
        state = self.state
        images, labels = state.train
        order = [int(i) for i in result.proponents] + [int(i) for i in result.opponents]
        scores = result.scores.numpy()
        peak = float(np.abs(scores).max()) or 1.0
        self._order = order
        with self.tiles.hold_sync():
            self.tiles.images = encode(images[order].numpy())
            self.tiles.maps = encode(np.zeros((len(order), *images.shape[-2:]), np.float32))
            self.tiles.vmax = [1.0] * len(order)
            self.tiles.captions = [f"{state.label(int(labels[i]))} · {scores[i] / peak:+.2f}"
                                   for i in order]
            n = len(result.proponents)
            self.tiles.groups = [
                {"title": "proponents (label · score)", "indices": list(range(n))},
                {"title": "opponents", "indices": list(range(n, len(order)))}]
        how = describe(next(iter(state.influencers.values()), None), state.checkpoints)
        top = [int(labels[i]) for i in result.proponents]
        same = sum(label == result.target for label in top)
        set_text(self.note, f"class {escape(state.label(result.target))}: {same} of the "
                            f"{len(top)} strongest proponents are labelled "
                            f"{escape(state.label(result.target))} · {how}, scores relative "
                            "to the largest", "muted")

    def _clicked(self, change) -> None:
        position = change["new"]
        if 0 <= position < len(self._order) and self._order[position] != self._opened:
            self.explain_image(self._order[position])

    def explain_image(self, index: int) -> None:
        """Training image ``index`` in an ExplainWidget below the thumbnails."""
        from xai_widgets.widgets.explain_widget import ExplainWidget

        state = self.state
        adapter, (images, labels) = state.adapter, state.train
        for child in self.detail.children:
            child.close()
        self._opened = index
        self.explainer = ExplainWidget(adapter.model, images[index], classes=state.labels,
                                       method=state.method, preprocess=adapter.preprocess,
                                       output=adapter.output, train=state.train,
                                       checkpoints=state.checkpoints)
        label = escape(state.label(int(labels[index])))
        set_text(self.opened, f"↓ training image #{index} (labelled {label}) is explained "
                              "below", "muted")
        self.detail.children = [text(f"<b>training image #{index}</b>: labelled {label}"),
                                self.explainer]

    def close(self) -> None:
        if getattr(self, "explainer", None) is not None:
            self.explainer.close()
        super().close()
