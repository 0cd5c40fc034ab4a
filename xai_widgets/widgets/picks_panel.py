"""The picks (a panel of the ``GlobalWidget``): a few images whose explanations together
cover what the model attends to over all of them (submodular pick), as clickable
thumbnails with their maps; clicking one opens it in an ``ExplainWidget`` below.

A budget slider re-picks in the background (channel ``picks``: the newest budget wins).
Writes ``budget`` and ``selected`` of the ``GlobalState``; the result goes to ``picks``.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
import numpy as np

from xai_widgets import methods
from xai_widgets.encoding import encode
from xai_widgets.widgets.controls import LAYOUT, STYLE
from xai_widgets.widgets.global_state import MAX_BUDGET, global_views
from xai_widgets.widgets.panel import Panel, escape, set_text, text
from xai_widgets.widgets.views import TilesView


class PicksPanel(Panel):
    """``budget`` (the slider), ``note`` (progress, the coverage or the error), ``tiles``
    (the picked images with their maps), ``detail`` (below them: the image clicked, a heading
    and ``explainer``, its ``ExplainWidget``)."""

    name, title = "picks", "representative picks"
    watch = ("picks", "errors", "selected")

    def build(self) -> list:
        state = self.state
        self._status, self._shown, self.explainer = "", None, None
        self._order: list[int] = []  # the images the tiles show, by dataset index
        self._tiled = self._maps = None  # the picks shown; the maps of every image
        self.budget = widgets.IntSlider(min=1, max=min(MAX_BUDGET, len(state.images)),
                                        description="budget", continuous_update=False,
                                        style=STYLE, layout=LAYOUT)
        self.budget.add_class("xai-global-budget")
        self.bind(self.budget, "budget")
        self.note = text("", "muted")
        self.note.add_class("xai-global-picks-note")
        self.tiles = TilesView(size=72)
        self.tiles.add_class("xai-global-picks")
        self.tiles.observe(self._clicked, "selected")
        self.detail = widgets.VBox(layout={"width": "100%"})
        self.on(["budget"], self.request)
        self.on(["selected"], self._open)
        label = methods.spec(state.method).label.lower()
        return [text(f"<b>representative picks</b>: the images whose maps ({escape(label)}) "
                     "together cover what the model looks at over all of them; click one to "
                     "explain it"),
                self.budget, self.note, self.tiles, self.detail]

    # -- the job -------------------------------------------------------------------------------
    def request(self) -> None:
        state, budget = self.state, self.state.budget
        state.clear(self.name)
        self._status = f"picking {budget} of {len(state.images)} images…"
        self.render()
        state.submit("picks", lambda job: self._work(job, budget), self._done, self._failed)

    def _work(self, job, budget: int):
        """The maps are computed once; a new budget picks again from them."""
        state, start = self.state, time.perf_counter()
        maps = self._maps
        picks = global_views().pick(state.model, state.images, budget=budget,
                                    method=state.method, maps=maps,
                                    preprocess=state.preprocess, output=state.output,
                                    **state.pick_options)
        self._maps = picks.maps
        job.check()
        return picks, time.perf_counter() - start

    def _done(self, result) -> None:
        picks, seconds = result
        self._status = f"picked in {seconds:.1f} s"
        self.state.set_trait("picks", picks)

    def _failed(self, message: str) -> None:
        self._status = ""
        self.state.fail(self.name, message)

    # -- clicks --------------------------------------------------------------------------------
    def _clicked(self, change) -> None:
        """A click on a tile (its position among the picks) selects that image."""
        position = change["new"]
        if 0 <= position < len(self._order) and self.state.selected != self._order[position]:
            self.state.set("selected", self._order[position])

    def _open(self) -> None:
        """The image ``selected`` in an ExplainWidget below the thumbnails (-1: none)."""
        from xai_widgets.widgets.explain_widget import ExplainWidget

        state, index = self.state, self.state.selected
        if index == self._shown:
            return
        self._shown = index
        for child in self.detail.children:
            child.close()
        self.explainer = None
        if index < 0:
            self.detail.children = []
            return
        explainer = ExplainWidget(state.model, state.images[index], classes=state.labels,
                                  method=state.method, preprocess=state.preprocess,
                                  output=state.output)
        self.explainer = explainer
        self.detail.children = [text(f"<b>image #{index}</b>: predicted "
                                     f"{escape(state.label(int(state.predictions[index])))}"),
                                explainer]

    # -- drawing -------------------------------------------------------------------------------
    def render(self) -> None:
        state, picks = self.state, self.state.picks
        error = state.errors.get(self.name, "")
        if picks is not None:
            self._show(picks)
        position = (self._order.index(state.selected) if state.selected in self._order
                    else -1)
        if self.tiles.selected != position:
            self.tiles.selected = position
        if error:
            set_text(self.note, f"<span class='xai-error'>⚠ {escape(error)}</span>")
        elif picks is not None and not self._status.startswith("picking"):
            set_text(self.note, f"<span class='xai-ok'>✓</span> {len(picks.indices)} images "
                                f"cover {picks.share:.0%} of the relevance over all "
                                f"{len(state.images)} · {self._status}", "muted")
        else:
            set_text(self.note, self._status, "muted")

    def _show(self, picks) -> None:
        state = self.state
        indices = [int(i) for i in picks.indices]
        maps = np.asarray(picks.maps, dtype=np.float32)
        if len(maps) == len(state.images) and len(maps) != len(indices):
            maps = maps[indices]  # maps of every image: the picked ones'
        if self._tiled is picks:
            return
        peaks = np.abs(maps).reshape(len(indices), -1).max(1) if len(indices) else []
        self._tiled, self._order = picks, indices
        with self.tiles.hold_sync():
            self.tiles.images = encode(state.images[indices].numpy())
            self.tiles.maps = encode(maps)
            self.tiles.vmax = [float(v) for v in peaks]
            self.tiles.captions = [
                f"#{i} · {state.label(int(state.predictions[i]))}" for i in indices]
            self.tiles.groups = [{"title": f"{len(indices)} picks in the order chosen "
                                           "(#image · predicted class)",
                                  "indices": list(range(len(indices)))}]
