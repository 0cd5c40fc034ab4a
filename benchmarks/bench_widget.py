"""ExplainWidget end to end: a trait change until the new buffers are ready for the front end.

    python benchmarks/bench_widget.py

Per method, over 50 recomputations: p50 and p95 of the time from a change to the moment the
views' buffers are set (the path every trait change takes: engine thread hand-off, compute,
encoding, trait updates), against the core's own compute time for the same request (the
widget's overhead is their ratio); the bytes a full update of the views sends (JSON state
plus binary buffers, as ipywidgets would put them on the wire); and the time of a change
answered from the cache (a baseline-slider move back to an earlier position). The browser
test adds the click-to-repaint time (test-artifacts/browser_timings.json).

Then the bytes of one full view update by number of classes: the 10-class MNIST CNN and
torchvision's 1000-class ResNet-18 (random weights) on a 224×224 photo under saliency. The
view computes and sends the shown classes only (top 10 + target + pinned): the bytes follow
the shown tiles and the image size, not the number of classes.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np
import pytest
from ipywidgets import Widget
from ipywidgets.widgets.widget import _remove_buffers

from benchmarks.common import percentile, table
from xai_widgets import ExplainWidget, methods
from xai_widgets.zoo import load_demo

CHANGES = 50
CASES = [("saliency", {}), ("input_x_gradient", {}), ("deeplift", {}), ("guided_backprop", {}),
         ("grad_cam", {}), ("integrated_gradients", {}), ("gradient_shap", {}),
         ("occlusion", {}), ("saliency+smoothgrad", {"smoothing": "smoothgrad"}), ("lime", {}),
         ("kernel_shap", {}), ("deep_shap", {}), ("gradient_explainer", {})]


def wire_bytes(widget: Widget) -> int:
    """What a full send_state of ``widget`` puts on the wire: JSON state plus buffers."""
    state, _, buffers = _remove_buffers(widget.get_state())
    return len(json.dumps(state, default=str)) + sum(len(bytes(b)) for b in buffers)


def views(w: ExplainWidget) -> tuple:
    """The widgets a change of the explanation updates: the map, the tiles, the bars."""
    return w.panels["map"].view, w.panels["classes"].grid, w.panels["bars"].bars


def buffer_bytes(w: ExplainWidget) -> int:
    """The binary buffers of one view update: the synced encoded dicts of the map view and
    the class grid (image, map, tiles) plus the bars' heights."""
    view, grid, bars = views(w)
    encoded = [view.image, view.attribution, grid.image, grid.maps]
    return sum(len(d["buffer"]) for d in encoded) + np.asarray(bars.y).nbytes


def recompute(w: ExplainWidget, flip: list) -> None:
    """Clear the stored maps and make a trait change that asks for them again: ``params``
    alternates between the method's defaults spelled out and left implicit (the same
    computation), so every change is a full recomputation. A method without parameters
    (deeplift) has no such change; it asks the state directly, as a trait change would."""
    w.state.store.clear()
    if flip[0] == flip[1]:
        w.state._request_maps()
    else:
        w.params = flip[len(w.params) == len(flip[0])]


def bytes_row(name: str, w: ExplainWidget) -> dict:
    sent = sum(wire_bytes(v) for v in views(w))
    return {"model": name, "classes": w.state.n_classes,
            "shown tiles": w.panels["classes"].grid.maps["shape"][0],
            "map size": "×".join(map(str, w.state.image_shape[1:])),
            "binary buffers": f"{buffer_bytes(w) / 1024:.1f} KiB",
            "bytes / update": f"{sent / 1024:.1f} KiB"}


def timings(model, images, classes) -> None:
    rows = []
    for name, params in CASES:
        method = name.split("+")[0]
        w = ExplainWidget(model, images[0], classes=classes, method=method, data=images[:100],
                          **params).wait(120)
        flip = [dict(params), {**methods.spec(method).defaults(), **params}]
        end_to_end, compute = [], []
        for _ in range(CHANGES):
            start = time.perf_counter()
            recompute(w, flip)
            w.wait(120)
            end_to_end.append(time.perf_counter() - start)
            compute.append(w.explanation.seconds)
        sent = sum(wire_bytes(v) for v in views(w))
        w.method = "integrated_gradients"
        w.baseline_alpha = 0.0
        w.wait(120)
        w.baseline_alpha = 0.5
        w.wait(120)
        hits = []
        for i in range(CHANGES):
            start = time.perf_counter()
            w.baseline_alpha = 0.5 * (i % 2)  # both positions are cached now
            w.wait(10)
            hits.append(time.perf_counter() - start)
        w.close()
        p50, p95 = percentile(end_to_end, 50), percentile(end_to_end, 95)
        core = statistics.median(compute)
        rows.append({"method": name, "p50 (ms)": f"{p50 * 1e3:.1f}", "p95 (ms)": f"{p95 * 1e3:.1f}",
                     "compute (ms)": f"{core * 1e3:.1f}", "p50 / compute": f"{p50 / core:.2f}×",
                     "bytes / update": f"{sent / 1024:.1f} KiB",
                     "cache hit p50 (ms)": f"{percentile(hits, 50) * 1e3:.2f}"})
        print(rows[-1], flush=True)
    print()
    print(f"{CHANGES} changes per method, seed CNN, one 28×28 digit, 10 classes")
    print(table(rows, list(rows[0])))


def bytes_by_classes(model, images, classes) -> None:
    rows = []
    w = ExplainWidget(model, images[0], classes=classes, method="saliency").wait(120)
    rows.append(bytes_row("MNIST CNN (demo)", w))
    w.close()
    try:
        from tests.real_models import resnet18_1000, rgb_image

        resnet, photo = resnet18_1000(), rgb_image(224)
    except (ImportError, pytest.skip.Exception) as error:
        print(f"\n(no ResNet-18 row: {error})")
    else:
        w = ExplainWidget(resnet, photo, method="saliency").wait(300)
        rows.append(bytes_row("ResNet-18 (torchvision)", w))
        outside = next(c for c in range(999, -1, -1) if c not in w.state.shown_classes())
        w.target = outside  # a class outside the top 10 adds one tile
        w.wait(300)
        rows.append(bytes_row("ResNet-18, target outside top 10", w))
        w.close()
    print()
    print("bytes of one full view update (saliency): map view + class grid + bars, "
          "JSON state plus binary buffers")
    print(table(rows, list(rows[0])))


def main() -> None:
    model, images, _, classes = load_demo("mnist")
    timings(model, images, classes)
    bytes_by_classes(model, images, classes)


if __name__ == "__main__":
    main()
