"""GlobalWidget: what a classifier looks for over many images, not one.

Three panels over one ``GlobalState``: the class visualisation (a class picker and the
regularisers; the image and p(class) update as the optimisation runs, with a stop button),
the surrogate tree (a depth slider, its fidelity, each node drawn as the region it tests)
and the representative picks (a budget slider; clicking a thumbnail opens it in an
``ExplainWidget`` below). Every job runs on the state's engine: a newer change supersedes
the older job of its panel, and the user's model is never changed.

>>> from xai_widgets.widgets.global_widget import GlobalWidget
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> gw = GlobalWidget(model, images[:60], classes=classes, target=3, steps=16).wait(120)
>>> gw.visualization.target, gw.frame.step, gw.tree is not None, len(gw.picks.indices)
(3, 16, True, 8)
>>> gw.close()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np

from xai_widgets.errors import InputError
from xai_widgets.widgets.global_state import GlobalState
from xai_widgets.widgets.panel import delegate_traits
from xai_widgets.widgets.picks_panel import PicksPanel
from xai_widgets.widgets.snapshot import (
    GREY,
    INK,
    MUTED,
    RED,
    Sheet,
    StaticFallback,
    overlay,
    status_line,
    tile,
)
from xai_widgets.widgets.tree_panel import TreePanel
from xai_widgets.widgets.visualize_panel import VisualizePanel

SETTABLE = ("target", "parameterization", "steps", "regularisers", "depth", "budget",
            "selected")
READ_ONLY = ("frame", "visualization", "running", "tree", "picks", "errors", "error")


class GlobalWidget(StaticFallback, widgets.VBox):
    """The class visualisation, the surrogate tree and the picks of ``model`` over
    ``images`` ((N, C, H, W), or as ``ExplainWidget`` takes one image, with ``weights=`` and
    ``layout=``).

    Settable (from Python as from the controls; a bad value raises ``InputError``):
    ``target`` (default: the class the model predicts most often among the images),
    ``parameterization`` (``"fourier"``, the default, or ``"pixel"``), ``steps``, ``regularisers``
    (name → weight: ``l2``, ``tv``, ``jitter``, ``blur_every``, ``blur_sigma``, ``lr``; also
    taken as keywords, ``GlobalWidget(model, images, tv=0.3)``), ``depth`` (of the tree,
    1..8), ``budget`` (the number of picks, default 8), ``selected`` (the image opened, -1
    for none).
    ``method``: the attribution method of the picks and the opened image; ``seed``;
    ``generator``: a decoder (or autoencoder) to optimise the latent of instead of pixels;
    ``tree_options`` and ``pick_options``: more keywords of ``surrogate_trees`` (e.g.
    ``features``, ``augment``) and ``pick`` (e.g. ``grid``, ``top``).
    Read-only: ``frame`` (the visualisation as last shown: ``target``, ``step``, ``steps``,
    ``image``, ``points``, ``score``), ``visualization`` (the finished run), ``running``,
    ``tree``, ``picks``, ``errors`` (panel → message), ``error``. ``stop()``, ``rerun()``,
    ``wait(timeout)``, ``panel(name)`` (``"visualize"``, ``"tree"``, ``"picks"``),
    ``snapshot()`` (a PNG, kept in the notebook for viewers without a kernel), ``close()``
    (stops every job).
    """

    def __init__(self, model, images, *, classes: Sequence[str] | None = None,
                 target: int | None = None, steps: int = 128,
                 parameterization: str | None = None, depth: int = 4,
                 budget: int | None = None,
                 method: str = "integrated_gradients", seed: int = 0, generator: Any = None,
                 tree_options: dict | None = None, pick_options: dict | None = None,
                 preprocess: Callable | None = None,
                 output: str = "auto", weights: Any = None, layout: str = "NCHW",
                 **regularisers: float):
        self.state = GlobalState(model, images, classes=classes, target=target, steps=steps,
                                 parameterization=parameterization, regularisers=regularisers,
                                 depth=depth, budget=budget, method=method, seed=seed,
                                 generator=generator, tree_options=tree_options,
                                 pick_options=pick_options, preprocess=preprocess,
                                 output=output, weights=weights, layout=layout)
        self.panels = {p.name: p for p in (VisualizePanel(self.state), TreePanel(self.state),
                                           PicksPanel(self.state))}
        super().__init__(list(self.panels.values()),
                         layout={"width": "100%", "max_width": "1100px"})
        self.add_class("xai-global-widget")
        self.state.observe(self._snapshot_soon, ["visualization", "running", "tree", "picks",
                                                 "errors"])
        for panel in self.panels.values():  # the first jobs: the visualisation first
            panel.guarded(panel.request)

    # -- public ----------------------------------------------------------------------------
    def wait(self, timeout: float = 120.0) -> GlobalWidget:
        """Block until every panel shows its latest request; raise TimeoutError otherwise."""
        self.state.wait(timeout)
        self.refresh_snapshot()
        return self

    def panel(self, name: str):
        if name not in self.panels:
            raise InputError(f"no panel {name!r}: the panels are {', '.join(self.panels)}")
        return self.panels[name]

    def stop(self) -> None:
        """Stop the running visualisation (the stop button); the image shown stays."""
        panel = self.panels["visualize"]
        panel.guarded(panel.cancel)

    def rerun(self) -> None:
        """Run the visualisation again with the current settings (the *run again* button)."""
        panel = self.panels["visualize"]
        panel.guarded(panel.request)

    def close(self) -> None:
        self._stop_snapshots()
        if hasattr(self, "state"):
            self.state.close()  # running work stops at its next check
        for panel in getattr(self, "panels", {}).values():
            for child in getattr(panel, "detail", widgets.Box()).children:
                child.close()
            panel.close()
        super().close()

    # -- the static picture ----------------------------------------------------------------
    def _settled(self) -> bool:
        return not self.state.running and self.state.engine.wait(0)

    def _snapshot_text(self) -> str:
        state = self.state
        return f"GlobalWidget: {summary(state) or state.error or 'computing…'}"

    def _snapshot(self):
        return draw_global(self.state)


def draw_global(state):
    """The widget's picture: the visualisation and its p(class) curve, the tree's fidelity,
    the picks with their maps, and the errors (drawn as ``snapshot`` draws the others)."""
    sheet, frame = Sheet(), state.frame
    y = sheet.text(8, 8, f"class {state.label(state.target)}: what the model looks for", 15,
                   bold=True) + 4
    if frame is not None:
        sheet.paste(tile(overlay(frame.image), 160), 8, y)
        sheet.text(180, y, f"step {frame.step} of {frame.steps}", 12, MUTED)
        points = frame.points
        if points:
            sheet.text(180, y + 18, f"p(class) = {frame.score:.1%}", 12, INK)
            box = (180, y + 44, 180 + 240, y + 124)
            sheet.draw.rectangle(box, outline=GREY)
            xy = [(box[0] + (box[2] - box[0]) * (s - 1) / max(frame.steps - 1, 1),
                   box[3] - (box[3] - box[1]) * float(np.clip(p, 0, 1))) for s, p in points]
            if len(xy) > 1:
                sheet.draw.line(xy, fill=tuple(int(v) for v in RED), width=2)
            sheet.text(180, box[3] + 4, "p(class) at each step", 10, MUTED)
        y += 168
    if state.tree is not None:
        y = sheet.text(8, y, f"surrogate tree of depth {state.depth}: fidelity "
                             f"{state.tree.fidelity:.1%} on {state.tree.n_test} held-out images",
                       12, INK)
    picks = state.picks
    if picks is not None and len(picks.indices):
        y = sheet.text(8, y + 6, f"{len(picks.indices)} representative picks, covering "
                                 f"{picks.share:.0%}", 12, MUTED)
        maps = np.asarray(picks.maps, dtype=np.float32)
        indices = [int(i) for i in picks.indices]
        if len(maps) != len(indices):
            maps = maps[indices]
        per_row = (600 - 8) // 72
        for k, (index, heat) in enumerate(zip(indices, maps, strict=True)):
            x, row = 8 + (k % per_row) * 72, k // per_row
            below = sheet.paste(tile(overlay(state.images[index].numpy(), heat), 64), x,
                                y + row * 82)
            sheet.text(x, below + 1, f"#{index}", 10, MUTED, width=64)
        y += 82 * ((len(indices) - 1) // per_row + 1)
    error = "; ".join(f"{part}: {message}" for part, message in state.errors.items())
    status = "computing…" if state.running else summary(state) or "computing…"
    status_line(sheet, y + 6, status, error)
    return sheet.picture()


def summary(state) -> str:
    """One line: what each panel shows (empty while none shows anything)."""
    parts = []
    if state.visualization is not None:
        parts.append(f"class {state.label(state.visualization.target)} visualised, "
                     f"p = {state.visualization.score:.1%}")
    if state.tree is not None:
        parts.append(f"tree of depth {state.depth}, fidelity {state.tree.fidelity:.1%}")
    if state.picks is not None:
        parts.append(f"{len(state.picks.indices)} picks")
    return "; ".join(parts)


delegate_traits(GlobalWidget, SETTABLE, READ_ONLY)
