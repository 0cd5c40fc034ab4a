"""The surrogate tree (a panel of the ``GlobalWidget``): a decision tree fitted to the
model's predictions on the images, each node drawn as the image region it tests.

A depth slider (1..8) shows the tree of that depth, fitted and drawn in the background
(channel ``tree``: the newest depth wins; the first job fits every depth over one split and
one set of features, so a later depth is only drawn); its held-out fidelity (how often the
tree predicts what the model does) is shown beside it.
Writes ``depth`` of the ``GlobalState``; the result goes to ``tree``.
"""

from __future__ import annotations

import time

import ipywidgets as widgets

from xai_widgets.widgets.controls import LAYOUT, STYLE
from xai_widgets.widgets.global_state import MAX_DEPTH, global_views
from xai_widgets.widgets.panel import Panel, escape, set_text, text


class TreePanel(Panel):
    """``depth`` (the slider), ``fidelity`` (the line), ``note`` (progress or the error),
    ``drawing`` (the tree's HTML)."""

    name, title = "tree", "surrogate tree"
    watch = ("tree", "errors")

    def build(self) -> list:
        self._status, self._drawn = "", ""
        self._trees, self._fitted = None, 0.0  # depth → SurrogateTree, once fitted
        self.depth = widgets.IntSlider(min=1, max=MAX_DEPTH, description="depth",
                                       continuous_update=False, style=STYLE, layout=LAYOUT)
        self.depth.add_class("xai-global-depth")
        self.bind(self.depth, "depth")
        self.fidelity = text("")
        self.fidelity.add_class("xai-global-fidelity")
        self.note = text("", "muted")
        self.note.add_class("xai-global-tree-note")
        self.drawing = widgets.HTML("")
        self.drawing.add_class("xai-html")
        self.drawing.add_class("xai-global-tree")
        self.on(["depth"], self.request)
        return [text("<b>surrogate tree</b>: a decision tree that imitates the model on these "
                     "images; each node tests one region of the image"),
                widgets.Box([self.depth, self.fidelity],
                            layout={"flex_flow": "row wrap", "gap": "8px 16px",
                                    "align_items": "center"}),
                self.note, self.drawing]

    # -- the job -------------------------------------------------------------------------------
    def request(self) -> None:
        state, depth = self.state, self.state.depth
        state.clear(self.name)
        self._status = (f"fitting a tree of depth {depth} to the model's predictions…"
                        if self._trees is None else f"drawing the tree of depth {depth}…")
        self.render()
        state.submit("tree", lambda job: self._work(job, depth), self._done, self._failed)

    def _work(self, job, depth: int):
        """The trees of every depth are fitted once (over one split and one set of features:
        the depth only changes the tree); each depth is drawn when asked for."""
        state, start = self.state, time.perf_counter()
        if self._trees is None:
            self._trees = global_views().surrogate_trees(
                state.model, state.images, range(1, MAX_DEPTH + 1),
                **{"seed": state.seed, "classes": state.labels, **state.tree_options},
                preprocess=state.preprocess, output=state.output)
            self._fitted = time.perf_counter() - start
        job.check()
        tree = self._trees[depth]
        return tree, tree.render()

    def _done(self, result) -> None:
        tree, drawing = result
        self._drawn = drawing
        self._status = (f"the trees of depth 1..{MAX_DEPTH} were fitted on {tree.n_train} images "
                        f"and {tree.n_augmented} perturbed copies (labelled by the model) in "
                        f"{self._fitted:.1f} s")
        self.state.set_trait("tree", tree)

    def _failed(self, message: str) -> None:
        self._status = ""
        self.state.fail(self.name, message)

    # -- drawing -------------------------------------------------------------------------------
    def render(self) -> None:
        state, tree = self.state, self.state.tree
        error = state.errors.get(self.name, "")
        if tree is not None:
            set_text(self.fidelity, f"fidelity <b>{tree.fidelity:.1%}</b>: the tree predicts what "
                                    f"the model predicts on that share of {tree.n_test} "
                                    "held-out images")
            if self.drawing.value != self._drawn:
                self.drawing.value = self._drawn
        if error:
            set_text(self.note, f"<span class='xai-error'>⚠ {escape(error)}</span>")
        else:
            set_text(self.note, self._status, "muted")
