"""CompareWidget: one target explained by several methods side by side.

>>> from xai_widgets import CompareWidget
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> cw = CompareWidget(model, images[0], methods=["saliency", "grad_cam"]).wait(60)
>>> sorted(cw.explanations)
['grad_cam', 'saliency']
>>> cw.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from xai_widgets import methods
from xai_widgets.adapter import ModelAdapter
from xai_widgets.encoding import encode
from xai_widgets.engine import run_in_background
from xai_widgets.errors import InputError
from xai_widgets.explain import explain
from xai_widgets.metrics import deletion_curve
from xai_widgets.sanity import sanity_check
from xai_widgets.widgets.panel import escape, set_text, text
from xai_widgets.widgets.snapshot import StaticFallback, draw_tiles, overlay
from xai_widgets.widgets.views import TilesView

DEFAULT_METHODS = ("integrated_gradients", "saliency", "guided_backprop", "grad_cam",
                   "occlusion", "lrp")


class CompareWidget(StaticFallback, widgets.VBox):
    """Maps of several methods for one target, each with its time; on request each map's
    sanity-check similarity (SSIM to the map of a fully randomised model copy: low = the map
    depends on the weights, as it should) and its deletion AUC (lower than a random order's =
    faithful).

    ``weights`` (torchvision weights, a timm data config, a Hugging Face image processor) and
    ``layout`` as in ``ExplainWidget``: every method explains the image as shown (resized and
    cropped). Read-only: ``explanations`` ({method: Explanation}), ``sanity`` ({method: SSIM}),
    ``deletion_auc`` ({method: (auc, random auc)}), ``status`` (naming any method that cannot
    explain this model, e.g. LRP on a model with an edited layer: the others are shown),
    ``error``; ``wait()``;
    ``snapshot()`` (the view as a PNG, kept in the notebook for viewers without a kernel).
    """

    explanations = traitlets.Dict(read_only=True)
    sanity = traitlets.Dict(read_only=True)
    deletion_auc = traitlets.Dict(read_only=True)
    status = traitlets.Unicode("", read_only=True)
    error = traitlets.Unicode("", read_only=True)

    def __init__(self, model, x, methods: Sequence[str] = DEFAULT_METHODS,
                 target: int | None = None, shared_scale: bool = False, with_sanity: bool = False,
                 with_faithfulness: bool = False, data: Any = None, classes=None,
                 preprocess: Callable | None = None, output: str = "auto", weights: Any = None,
                 layout: str = "NCHW"):
        adapter = ModelAdapter(model, preprocess=preprocess, classes=classes, output=output,
                               weights=weights, layout=layout)
        self._adapter = adapter
        image, _ = adapter.image(x)
        self._image = image[0].cpu().numpy()
        self._target = int(adapter.probabilities(image)[0].argmax()) if target is None else target
        # the image as shown (resized and cropped by weights=) and adapter.preprocess (their
        # normalisation, the channels-last permute) are what every method is given
        shown = image[0].cpu()
        data = adapter.batch(data, image).cpu() if data is not None else None
        classes = adapter.classes
        self._args = (model, shown, list(methods), data, with_sanity, with_faithfulness)
        self._shared = shared_scale
        self._done = threading.Event()
        self._tiles = TilesView(size=150)
        self._status_line = text("computing…", "muted")
        label = classes[self._target] if classes else str(self._target)
        self._title = f"class {label}, explained by each method (red = for, blue = against)"
        self._captions: list[str] = []
        super().__init__([text(f"<b>class {escape(label)}</b>, explained by each method "
                               "(red = for, blue = against)"),
                          self._tiles, self._status_line])
        self.add_class("xai-compare-widget")
        run_in_background(self._work, self._on_result, self._on_error, model=model)

    def wait(self, timeout: float = 120.0) -> CompareWidget:
        if not self._done.wait(timeout):
            raise TimeoutError(f"the comparison did not finish within {timeout} s")
        self.refresh_snapshot()
        return self

    def _settled(self) -> bool:
        return self._done.is_set()

    def _snapshot(self):
        results, image = self.explanations, self._image
        if not results:
            return draw_tiles(self._title, [("", [(overlay(image), "the image")])],
                              self.status, self.error, size=140)
        maps = [results[name].map(self._target) for name in results]
        peak = max(float(np.abs(m).max()) for m in maps)
        tiles = [(overlay(image, m, peak if self._shared else None),
                  caption) for m, caption in zip(maps, self._captions, strict=False)]
        heading = "shared colour scale" if self._shared else "each map on its own colour scale"
        return draw_tiles(self._title, [(heading, tiles)], self.status, self.error, size=140)

    def _snapshot_text(self) -> str:
        return f"CompareWidget: {self._title} · {self.error or self.status or 'computing…'}"

    def _work(self):
        model, x, names, data, with_sanity, with_faithfulness = self._args
        results, sanity, deletion = {}, {}, {}
        self._skipped = {}
        for name in names:
            adapter = self._adapter
            try:
                e = explain(model, x, method=name, targets=self._target, data=data,
                            preprocess=adapter.preprocess, output=adapter.output)
            except InputError as error:  # e.g. LRP on a model with an edited layer: the rest
                self._skipped[name] = str(error)
                continue
            results[name] = e
            if with_sanity:
                sanity[name] = float(sanity_check(model, x, method=name, target=self._target,
                                                  data=data, preprocess=adapter.preprocess,
                                                  output=adapter.output).ssim[-1])
            if with_faithfulness:
                curve = deletion_curve(adapter, x, e.map(self._target), self._target)
                deletion[name] = (curve.auc, curve.random_auc)
            set_text(self._status_line, f"computing… {len(results)}/{len(names)}", "muted")
        if not results:
            raise InputError("; ".join(self._skipped.values()))
        return results, sanity, deletion

    def _on_error(self, message: str) -> None:
        self.set_trait("error", message)
        set_text(self._status_line, f"<span class='xai-error'>⚠ {escape(message)}</span>")
        self._done.set()
        self._snapshot_soon()

    def _on_result(self, result) -> None:
        results, sanity, deletion = result
        self.set_trait("explanations", results)
        self.set_trait("sanity", sanity)
        self.set_trait("deletion_auc", deletion)
        names = list(results)
        maps = np.stack([results[n].map(self._target) for n in names])
        peaks = np.abs(maps).reshape(len(maps), -1).max(1)
        captions = []
        for name in names:
            lines = [methods.spec(name).label, f"{1000 * results[name].seconds:.0f} ms"]
            if name in sanity:
                lines.append(f"randomised SSIM {sanity[name]:.2f}")
            if name in deletion:
                lines.append(f"deletion AUC {deletion[name][0]:.2f} "
                             f"(random {deletion[name][1]:.2f})")
            captions.append("\n".join(lines))
        self._captions = captions
        with self._tiles.hold_sync():
            self._tiles.images = encode(np.repeat(self._image[None], len(names), axis=0))
            self._tiles.maps = encode(maps)
            self._tiles.vmax = [float(peaks.max())] * len(names) if self._shared else peaks.tolist()
            self._tiles.captions = captions
            self._tiles.groups = [{"title": "shared colour scale" if self._shared else
                                   "each map on its own colour scale",
                                   "indices": list(range(len(names)))}]
        skipped = "".join(f"; {name} skipped: {reason}" for name, reason in self._skipped.items())
        self.set_trait("status", f"{len(names)} methods{skipped}")
        set_text(self._status_line, f"<span class='xai-ok'>✓</span> {escape(self.status)}")
        self._done.set()
        self._snapshot_soon()
