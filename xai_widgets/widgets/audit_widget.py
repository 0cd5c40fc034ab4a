"""The dataset view of a stored audit: pages over the store, never the whole dataset.

``DatasetWidget(a)`` for an ``Audit`` (``xai_widgets.audit``) shows one page of thumbnails
at a time: the stored maps over the images, read from the store and the dataset only for
the rows on the page. Filters by label, by prediction and by SpRAy cluster (``a.spray()``,
or the *cluster* button, which runs it in the background) narrow the rows; clicking a
thumbnail opens that image in an ``ExplainWidget`` below (needs the model and the dataset:
an audit made in this session has them, a reopened one takes ``model=`` and ``dataset=``).

>>> import tempfile
>>> from xai_widgets import DatasetWidget, audit
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> a = audit(model, images[:60], store=tempfile.mkdtemp() + "/a.zarr", method="saliency",
...           labels=labels[:60], map_size=14, chunk_size=32)
>>> view = DatasetWidget(a, page_size=12)
>>> view.matching.size, len(view.page_rows)
(60, 12)
>>> view.prediction_filter.value = 7
>>> bool((a.predictions[view.page_rows] == 7).all())
True
>>> view.close()
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import torch

from xai_widgets.audit.sources import open_source
from xai_widgets.encoding import encode
from xai_widgets.engine import run_in_background
from xai_widgets.errors import InputError
from xai_widgets.widgets.controls import STYLE
from xai_widgets.widgets.panel import escape, set_text, text
from xai_widgets.widgets.views import TilesView

ALL = -2  # the filters' "every value"


class AuditWidget(widgets.VBox):
    """Pages of an audit's stored maps. ``matching``: the rows that pass the filters;
    ``page_rows``: those on the page shown; ``label_filter``, ``prediction_filter``,
    ``cluster_filter`` (dropdowns, ``ALL`` = no filter), ``page`` (0-based); ``selected``
    (the row opened, -1: none); ``explainer`` (its ExplainWidget)."""

    def __init__(self, audit, model=None, dataset=None, classes=None, page_size: int = 24,
                 preprocess=None):
        super().__init__()
        if int(page_size) < 1:
            raise InputError(f"page_size must be a positive int, got {page_size}")
        self.audit, self.page_size, self.classes = audit, int(page_size), classes
        self.model = model if model is not None else getattr(audit, "model", None)
        self.preprocess = preprocess if preprocess is not None else getattr(audit, "preprocess",
                                                                             None)
        self.source = (open_source(dataset) if dataset is not None
                       else getattr(audit, "source", None))
        if self.source is not None and len(self.source) != len(audit):
            raise InputError(f"the dataset has {len(self.source)} images, the audit "
                             f"{len(audit)} rows: pass the dataset the audit was made of")
        self.predictions, self.labels = audit.predictions, audit.labels
        self.failed = audit.failed  # {row: reason}, read from the store once
        self.usable = audit.rows_done.copy()
        self.usable[list(self.failed)] = False
        n_classes = int(max(self.predictions.max(initial=0), self.labels.max(initial=0))) + 1
        self.names = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
        self.page, self.selected, self.explainer = 0, -1, None
        self.matching = np.flatnonzero(self.usable)
        self.page_rows = self.matching[:0]
        self.label_filter = self._dropdown("label", sorted(set(self.labels[self.usable]) - {-1}))
        self.prediction_filter = self._dropdown("predicted",
                                                sorted(set(self.predictions[self.usable])))
        self.cluster_filter = self._dropdown("cluster", [])
        self.cluster_filter.tooltip = "SpRAy cluster · its number of images"
        self.previous = widgets.Button(description="◀ previous", layout={"width": "110px"})
        self.next = widgets.Button(description="next ▶", layout={"width": "110px"})
        self.previous.on_click(lambda _: self.show_page(self.page - 1))
        self.next.on_click(lambda _: self.show_page(self.page + 1))
        self.cluster_button = widgets.Button(description="cluster (SpRAy)",
                                             layout={"width": "140px"})
        self.cluster_button.add_class("xai-audit-spray")
        self.cluster_button.on_click(lambda _: self.cluster())
        self.summary, self.note = text("", "body"), text("", "muted")
        self.note.add_class("xai-audit-note")
        self.tiles = TilesView(size=64)
        self.tiles.add_class("xai-audit-tiles")
        self.tiles.observe(self._clicked, "selected")
        self.detail = widgets.VBox(layout={"width": "100%"})
        self.children = [
            self.summary,
            widgets.Box([self.label_filter, self.prediction_filter, self.cluster_filter,
                         self.cluster_button], layout={"flex_flow": "row wrap", "gap": "8px"}),
            widgets.Box([self.previous, self.next, self.note],
                        layout={"flex_flow": "row wrap", "gap": "8px", "align_items": "center"}),
            self.tiles, self.detail]
        self.add_class("xai-audit-widget")
        self._show_clusters()
        self._summarise()
        self.refilter()

    def _dropdown(self, name: str, values) -> widgets.Dropdown:
        box = widgets.Dropdown(description=name, style=STYLE, layout={"width": "220px"})
        self._options(box, values)
        box.add_class(f"xai-audit-{name}")
        box.observe(lambda _: self.refilter(), "value")
        return box

    def _options(self, box: widgets.Dropdown, values, label=None) -> None:
        label = label or (lambda v: self.names[v] if 0 <= v < len(self.names) else str(v))
        box.options = [("all", ALL)] + [(label(int(v)), int(v)) for v in values]
        box.value = ALL

    # -- filtering and paging ------------------------------------------------------------
    def refilter(self) -> None:
        """The rows passing every filter, then the first page."""
        keep = self.usable.copy()
        if self.label_filter.value != ALL:
            keep &= self.labels == self.label_filter.value
        if self.prediction_filter.value != ALL:
            keep &= self.predictions == self.prediction_filter.value
        clusters = self.audit_clusters()
        if self.cluster_filter.value != ALL and clusters is not None:
            keep &= clusters == self.cluster_filter.value
        self.matching = np.flatnonzero(keep)
        self.show_page(0)

    def pages(self) -> int:
        return max(1, -(-len(self.matching) // self.page_size))

    def show_page(self, page: int) -> None:
        """Page ``page`` of the matching rows: only its maps and images are read."""
        self.page = int(np.clip(page, 0, self.pages() - 1))
        rows = self.matching[self.page * self.page_size:(self.page + 1) * self.page_size]
        self.page_rows = rows
        self.previous.disabled, self.next.disabled = self.page == 0, self.page >= self.pages() - 1
        first = self.page * self.page_size
        set_text(self.note, f"rows {first + 1 if len(rows) else 0}–{first + len(rows)} of "
                            f"{len(self.matching):,} matching · page {self.page + 1} of "
                            f"{self.pages()}", "muted")
        if not len(rows):
            self.tiles.groups = []
            return
        maps = np.asarray(self.audit.maps.get_orthogonal_selection((rows,)), np.float32)
        images = self._images(rows, maps.shape[-2:])
        captions = [f"#{r} · {self._name(self.predictions[r])}"
                    + ("" if self.labels[r] in (-1, self.predictions[r])
                       else f" ({self._name(self.labels[r])})") for r in rows]
        with self.tiles.hold_sync():
            self.tiles.images = encode(images)
            self.tiles.maps = encode(maps)
            self.tiles.vmax = [float(v) or 1.0 for v in np.abs(maps).reshape(len(rows), -1).max(1)]
            self.tiles.captions = captions
            self.tiles.groups = [{"title": "#row · predicted (label where it differs)",
                                  "indices": list(range(len(rows)))}]
            self.tiles.selected = -1

    def _name(self, index) -> str:
        index = int(index)
        return self.names[index] if 0 <= index < len(self.names) else str(index)

    def _images(self, rows, size) -> np.ndarray:
        """The page's images at the maps' size (grey when the dataset is not at hand)."""
        if self.source is None:
            return np.full((len(rows), 1, *size), 0.5, np.float32)
        shown = [self.read_image(r) for r in rows]
        batch = torch.stack(shown).float()
        batch = torch.nn.functional.interpolate(batch, size=tuple(size), mode="area")
        return batch.clamp(0, 1).numpy() if batch.max() <= 1 else (batch / 255).numpy()

    def read_image(self, row: int) -> torch.Tensor:
        """Image ``row`` of the dataset, read alone."""
        return next(iter(self.source.read([(int(row), int(row) + 1)]))).images[0]

    # -- clusters ------------------------------------------------------------------------
    def audit_clusters(self):
        return getattr(self.audit, "clusters", None)

    def cluster(self) -> None:
        """SpRAy over the stored maps in the background; the cluster filter follows."""
        if not hasattr(self.audit, "spray"):
            set_text(self.summary, "<span class='xai-error'>⚠ this audit cannot cluster its "
                                   "maps</span>")
            return
        self.cluster_button.disabled = True
        set_text(self.summary, f"clustering {int(self.usable.sum()):,} maps (SpRAy)…", "muted")

        def done(_result) -> None:
            self.cluster_button.disabled = False
            self._show_clusters()
            self._summarise()

        def failed(message: str) -> None:
            self.cluster_button.disabled = False
            set_text(self.summary, f"<span class='xai-error'>⚠ {escape(message)}</span>")

        run_in_background(lambda: self.audit.spray(), done, failed)

    def _show_clusters(self) -> None:
        clusters = self.audit_clusters()
        self.cluster_filter.layout.display = None if clusters is not None else "none"
        if clusters is not None:
            ids = sorted(set(clusters[clusters >= 0].tolist()))
            sizes = {c: int((clusters == c).sum()) for c in ids}
            self._options(self.cluster_filter, ids, lambda c: f"{c} · {sizes[c]:,}")

    def _summarise(self) -> None:
        a, usable = self.audit, self.usable
        known = usable & (self.labels >= 0)
        accuracy = (f" · accuracy {np.mean(self.predictions[known] == self.labels[known]):.1%}"
                    if known.any() else "")
        failed = len(self.failed)
        method = a.metadata["identity"]["method"]
        clusters = self.audit_clusters()
        clustered = (f" · {len(set(clusters[clusters >= 0].tolist()))} SpRAy clusters"
                     if clusters is not None else "")
        set_text(self.summary, f"<b>audit</b> {escape(str(a.path.name))}: "
                               f"{a.progress.done:,} of {len(a):,} rows explained ({method})"
                               f"{accuracy}{clustered}"
                               + (f" · {failed} failed rows (<code>a.failed</code>)"
                                  if failed else ""))

    # -- opening one image ---------------------------------------------------------------
    def _clicked(self, change) -> None:
        position = change["new"]
        if 0 <= position < len(self.page_rows):
            self.explain_row(int(self.page_rows[position]))

    def explain_row(self, row: int) -> None:
        """Row ``row`` in an ExplainWidget below the thumbnails."""
        from xai_widgets.widgets.explain_widget import ExplainWidget

        self.selected = row
        for child in self.detail.children:
            child.close()
        if self.model is None or self.source is None:
            self.explainer = None
            self.detail.children = [text("to explain one image, pass the model and the "
                                         "dataset: <code>DatasetWidget(a, model=model, "
                                         "dataset=dataset)</code>", "muted")]
            return
        method = self.audit.metadata["identity"]["method"]
        self.explainer = ExplainWidget(self.model, self.read_image(row), method=method,
                                       target=int(self.predictions[row]), classes=self.classes,
                                       preprocess=self.preprocess)
        self.detail.children = [text(f"<b>row #{row}</b>: predicted "
                                     f"{escape(self._name(self.predictions[row]))}"),
                                self.explainer]

    def close(self) -> None:
        if getattr(self, "explainer", None) is not None:
            self.explainer.close()
        super().close()
