"""DatasetWidget: explain many images, cluster their maps (SpRAy), find the strategies.

>>> from xai_widgets import DatasetWidget
>>> from xai_widgets.zoo import load_clever_hans
>>> demo = load_clever_hans()
>>> sevens = demo.labels == 7
>>> dw = DatasetWidget(demo.model, demo.images[sevens], target=7).wait(timeout=120)
>>> dw.clusters.shape == (int(sevens.sum()),), dw.embedding.shape[1]
(True, 2)
>>> dw.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import bqplot
import ipywidgets as widgets
import numpy as np
import traitlets

from xai_widgets.adapter import ModelAdapter
from xai_widgets.batch import BATCHED_METHODS, explain_many
from xai_widgets.encoding import encode
from xai_widgets.engine import error_message, run_in_background
from xai_widgets.errors import InputError
from xai_widgets.spray import spray
from xai_widgets.widgets.concept_panel import ConceptPanel
from xai_widgets.widgets.controls import FIT
from xai_widgets.widgets.fix_panel import FixPanel
from xai_widgets.widgets.panel import escape, set_text, text
from xai_widgets.widgets.shortcut_state import ShortcutState
from xai_widgets.widgets.snapshot import StaticFallback, draw_tiles, overlay
from xai_widgets.widgets.views import TilesView

CLUSTER_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
PER_CLUSTER = 12


class DatasetWidget(StaticFallback, widgets.VBox):
    """Maps of many images (batched over images; default method input × gradient), clustered
    by spectral clustering (SpRAy):
    a 2-D embedding coloured by cluster and thumbnails per cluster; clicking a thumbnail
    opens that image in an ExplainWidget below. Once clustered, a *concept* panel makes a
    concept of a cluster and tests it with TCAV, and a *fix* panel removes it (projection with
    a live strength slider, or fine-tuning) and shows the maps and a report before → after.

    ``weights`` (torchvision weights, a timm data config, a Hugging Face image processor) and
    ``layout`` as in ``ExplainWidget``: the images are resized and cropped once, as shown.
    Read-only: ``clusters`` (one id per image), ``embedding`` (n×2), ``explanations`` (the
    maps, n×H×W), ``status``, ``error``; ``selected`` (the opened image's index);
    ``wait(timeout)``; ``snapshot()`` (a PNG of a few maps per cluster, kept in the notebook
    for viewers without a kernel).
    ``holdout=(images, labels)``: labelled images of every class (e.g. a validation set) that
    a fix is fine-tuned on (one half) and measured on (the other); default: the dataset's
    images with ``labels`` when those are class ids, else with the model's predictions.
    Read-only, from the panels: ``concept`` (a ``Concept``), ``tcav_result``,
    ``fixed_model`` (the accepted correction, an ``nn.Module``; the model is never changed);
    ``panel("concept")``, ``panel("fix")``.
    """

    clusters = traitlets.Any(None, read_only=True)
    embedding = traitlets.Any(None, read_only=True)
    explanations = traitlets.Any(None, read_only=True)
    status = traitlets.Unicode("", read_only=True)
    error = traitlets.Unicode("", read_only=True)
    selected = traitlets.Int(-1)
    concept = traitlets.Any(None, read_only=True)
    tcav_result = traitlets.Any(None, read_only=True)
    fixed_model = traitlets.Any(None, read_only=True)

    def __new__(cls, *args, **kwargs):
        """``DatasetWidget(a)`` for a stored audit (``xai_widgets.audit``) is its paged view,
        an ``AuditWidget``: ``model=``, ``dataset=``, ``classes=``, ``page_size=``."""
        from xai_widgets.audit import Audit

        if args and isinstance(args[0], Audit):
            from xai_widgets.widgets.audit_widget import AuditWidget

            return AuditWidget(*args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, model, images, labels=None, target: int | None = None,
                 method: str | None = None, n_clusters: int | None = None,
                 classes: Sequence[str] | None = None, batch_size: int = 256,
                 preprocess: Callable | None = None, output: str = "auto", weights: Any = None,
                 layout: str = "NCHW", holdout: tuple | None = None):
        # one backward pass per image: input × gradient separates the Clever-Hans model as
        # well as integrated gradients does (benchmarks/bench_clever_hans.py) at 1/32 the work
        method = method or "input_x_gradient"
        if method not in BATCHED_METHODS:
            raise InputError(f"{method!r} is not batched over images; choose one of "
                             f"{', '.join(BATCHED_METHODS)}")
        adapter = ModelAdapter(model, preprocess=preprocess, classes=classes, output=output,
                               weights=weights, layout=layout)
        # the images as shown (resized and cropped by weights=); adapter.preprocess holds the
        # normalisation and the channels-last permute for every later call
        self._preprocess, self._output = adapter.preprocess, output
        first, _ = adapter.image(images[0])
        self._images = adapter.batch(images, first).cpu()
        self._holdout = _holdout(adapter, holdout, first)
        self._model, self._labels, self._classes = model, labels, adapter.classes
        self._target, self._method, self._n_clusters = target, method, n_clusters
        self._batch_size = batch_size
        self._done = threading.Event()
        self._closed = False
        self._progress = widgets.FloatProgress(min=0, max=1, layout={"width": "300px"})
        self._status_line = text("")
        self._legend = text("", "muted")
        x_scale, y_scale = bqplot.LinearScale(), bqplot.LinearScale()
        self._colour = colour = bqplot.OrdinalColorScale(colors=CLUSTER_COLOURS)
        self._scatter = bqplot.Scatter(x=[], y=[], color=[], default_size=30,
                                       scales={"x": x_scale, "y": y_scale, "color": colour},
                                       interactions={"click": "select"},
                                       selected_style={"stroke": "black", "stroke-width": 2})
        self._scatter.observe(self._on_point, "selected")
        self._scatter_chart = bqplot.Figure(
            marks=[self._scatter], title="maps in 2-D, colour = cluster",
            axes=[bqplot.Axis(scale=x_scale, label="spectral embedding 1", num_ticks=3,
                              tick_format=".2f"),
                  bqplot.Axis(scale=y_scale, orientation="vertical", num_ticks=3,
                              tick_format=".2f", label="spectral embedding 2")],
            layout=widgets.Layout(width="400px", max_width=FIT, height="360px"))
        self._tiles = TilesView()
        self._tiles.observe(lambda change: setattr(self, "selected", change["new"]), "selected")
        self._detail = widgets.VBox()
        self._shortcut, self._panels = widgets.VBox(), {}
        super().__init__([widgets.HBox([self._status_line, self._progress]),
                          widgets.Box([widgets.VBox([self._scatter_chart, self._legend]),
                                       self._tiles],
                                      layout={"flex_flow": "row wrap", "gap": "12px"}),
                          self._shortcut, self._detail])
        self.add_class("xai-dataset-widget")
        self.observe(self._open, "selected")
        self.set_trait("status", f"explaining {len(self._images)} images…")
        set_text(self._status_line, self.status)
        run_in_background(self._work, self._on_result, self._on_error, model=model)

    def wait(self, timeout: float = 120.0) -> DatasetWidget:
        """Block until the maps are clustered and shown (and the panels' work is done);
        raise TimeoutError otherwise."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the dataset view did not finish within {timeout} s")
        if self._panels:
            self._panels["concept"].state.wait(timeout)
        self.refresh_snapshot()
        return self

    def panel(self, name: str):
        """The ``"concept"`` or ``"fix"`` panel (they exist once the maps are clustered)."""
        if name not in self._panels:
            raise InputError(f"no panel {name!r} (yet): the panels are "
                             f"{sorted(self._panels) or 'made once the maps are clustered'}")
        return self._panels[name]

    def _settled(self) -> bool:
        return self._done.is_set()

    def _snapshot(self):
        images, maps, clusters = self._images.numpy(), self.explanations, self.clusters
        title = f"{len(images)} images explained by {self._method}"
        if maps is None or clusters is None:
            return draw_tiles(title, [("", [(overlay(x), f"#{i}") for i, x in
                                            enumerate(images[:6])])], self.status, self.error, 80)
        groups = [(f"cluster {c}: {int((clusters == c).sum())} images",
                   [(overlay(images[i], maps[i]), f"#{i}")
                    for i in np.flatnonzero(clusters == c)[:6]])
                  for c in range(int(clusters.max()) + 1)]
        return draw_tiles(title, groups, self.status, self.error, 80)

    def _snapshot_text(self) -> str:
        found = f"; {self.tcav_result}" if self.tcav_result is not None else ""
        return f"DatasetWidget: {self.error or self.status}{found}"

    def close(self) -> None:
        self._closed = True
        self._stop_snapshots()
        detail, panels = getattr(self, "_detail", None), getattr(self, "_panels", {})
        for child in [*(detail.children if detail is not None else ()), *panels.values()]:
            child.close()  # (neither exists when the constructor raised)
        if panels:
            panels["concept"].state.close()
        super().close()

    # -- the job ------------------------------------------------------------------------
    def _work(self):
        maps = explain_many(self._model, self._images, self._target, self._method,
                            batch_size=self._batch_size, progress=self._on_progress,
                            cancelled=lambda: self._closed, preprocess=self._preprocess,
                            output=self._output)
        return maps, spray(maps, self._n_clusters)

    def _on_progress(self, done: int, total: int) -> None:
        self._progress.value = done / total

    def _on_error(self, message: str) -> None:
        self.set_trait("error", message)
        self.set_trait("status", f"error: {message}")
        set_text(self._status_line, f"<span class='xai-error'>⚠ {escape(message)}</span>")
        self._done.set()
        self._snapshot_soon()

    def _on_result(self, result) -> None:
        maps, clustering = result
        self.set_trait("explanations", maps)
        self.set_trait("clusters", clustering.clusters)
        self.set_trait("embedding", clustering.embedding)
        colours = [str(c) for c in range(clustering.n_clusters)]
        with self._scatter.hold_sync():  # the domain before the points, else one colour for all
            self._colour.domain = colours
            self._scatter.x = clustering.embedding[:, 0]
            self._scatter.y = clustering.embedding[:, 1]
            self._scatter.color = [str(c) for c in clustering.clusters]
        set_text(self._legend, "".join(
            "<span class='xai-swatch' "
            f"style='background:{CLUSTER_COLOURS[c % len(CLUSTER_COLOURS)]}'>"
            f"</span>cluster {c}" for c in range(clustering.n_clusters)), "muted")
        groups = []
        for cluster in range(clustering.n_clusters):
            members = np.flatnonzero(clustering.clusters == cluster)
            title = f"cluster {cluster}: {len(members)} images"
            if self._labels is not None:
                labels = np.asarray(self._labels)[members]
                values, counts = np.unique(labels, return_counts=True)
                title += f" (most: {values[counts.argmax()]}, {counts.max() / len(members):.0%})"
            groups.append({"title": title, "indices": members[:PER_CLUSTER].tolist()})
        with self._tiles.hold_sync():
            self._tiles.images = encode(self._images.numpy())
            self._tiles.maps = encode(maps)
            self._tiles.vmax = [float(v) for v in np.abs(maps).reshape(len(maps), -1).max(1)]
            self._tiles.captions = [f"#{i}" for i in range(len(maps))]
            self._tiles.groups = groups
        self._progress.layout.visibility = "hidden"
        self._add_panels(clustering.clusters)
        self.set_trait("status", f"{len(maps)} maps ({self._method}), "
                                 f"{clustering.n_clusters} clusters")
        set_text(self._status_line, f"<span class='xai-ok'>✓</span> {escape(self.status)}; click "
                                    "a thumbnail or a point to open it")
        self._done.set()
        self._snapshot_soon()

    def _add_panels(self, clusters) -> None:
        """The concept and fix panels over one state; its results mirrored as traits."""
        try:
            state = ShortcutState(self._model, self._images, clusters, labels=self._labels,
                                  target=self._target, method=self._method,
                                  preprocess=self._preprocess, output=self._output,
                                  classes=self._classes, holdout=self._holdout)
        except Exception as error:  # noqa: BLE001 - the clusters stay; the panels say why
            self._shortcut.children = [text(f"<span class='xai-error'>⚠ no concept panel: "
                                            f"{escape(error_message(error))}</span>")]
            return
        state.observe(lambda change: self.set_trait(change["name"], change["new"]),
                      ["concept", "tcav_result", "fixed_model"])
        self._panels = {"concept": ConceptPanel(state), "fix": FixPanel(state)}
        self._shortcut.children = list(self._panels.values())

    # -- opening one image --------------------------------------------------------------
    def _on_point(self, change) -> None:
        if change["new"] is not None and len(change["new"]):
            self.selected = int(change["new"][0])

    def _open(self, change) -> None:
        from xai_widgets.widgets.explain_widget import ExplainWidget

        index = change["new"]
        if not 0 <= index < len(self._images):
            return
        self._tiles.selected = index
        if self._panels:  # the concept panel offers the opened image's cluster
            self._panels["concept"].state.chosen = (int(self.clusters[index]),)
        for child in self._detail.children:
            child.close()
        target = self._target if self._target is not None else None
        explainer = ExplainWidget(self._model, self._images[index], classes=self._classes,
                                  method=self._method, target=target,
                                  preprocess=self._preprocess, output=self._output)
        self._detail.children = [widgets.HTML(f"<b>image #{index}</b>"), explainer]


def _holdout(adapter: ModelAdapter, holdout, like) -> tuple | None:
    """``(images, labels)`` as the model is shown them, one label each, or None."""
    if holdout is None:
        return None
    try:
        images, labels = holdout
    except (TypeError, ValueError) as error:
        raise InputError("holdout must be a pair (images, labels)") from error
    images, labels = adapter.batch(images, like).cpu(), np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"holdout: {len(images)} images need {len(images)} integer class "
                         f"labels; got labels of shape {labels.shape} ({labels.dtype})")
    return images, labels
