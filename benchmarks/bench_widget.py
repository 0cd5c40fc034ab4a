"""ExplainWidget end to end: a trait change until the new buffers are ready for the front end.

    python benchmarks/bench_widget.py

Per method, over 50 recomputations: p50 and p95 of the time from a change to the moment the
views' buffers are set (the path every trait change takes: engine thread hand-off, compute,
encoding, trait updates), against the core's own compute time for the same request (the
widget's overhead is their ratio); the bytes a full update of the views sends (JSON state
plus binary buffers, as ipywidgets would put them on the wire); and the time of a change
answered from the cache (a baseline-slider move back to an earlier position). The browser
test adds the click-to-repaint time (test-artifacts/browser_timings.json).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import percentile, table  # noqa: E402
from ipywidgets import Widget  # noqa: E402
from ipywidgets.widgets.widget import _remove_buffers  # noqa: E402

from xai_widgets import ExplainWidget  # noqa: E402
from xai_widgets.zoo import load_demo  # noqa: E402

CHANGES = 50
CASES = [("saliency", {}), ("input_x_gradient", {}), ("deeplift", {}), ("guided_backprop", {}),
         ("grad_cam", {}), ("integrated_gradients", {}), ("gradient_shap", {}),
         ("occlusion", {}), ("saliency+smoothgrad", {"smoothing": "smoothgrad"}), ("lime", {}),
         ("kernel_shap", {}), ("deep_shap", {}), ("gradient_explainer", {})]


def wire_bytes(widget: Widget) -> int:
    """What a full send_state of ``widget`` puts on the wire: JSON state plus buffers."""
    state, _, buffers = _remove_buffers(widget.get_state())
    return len(json.dumps(state, default=str)) + sum(len(bytes(b)) for b in buffers)


def main() -> None:
    model, images, _, classes = load_demo("mnist")
    rows = []
    for name, params in CASES:
        method = name.split("+")[0]
        w = ExplainWidget(model, images[0], classes=classes, method=method, data=images[:100],
                          **params).wait(120)
        end_to_end, compute = [], []
        for _ in range(CHANGES):
            w._engine._cache.clear()  # a full recomputation every time
            start = time.perf_counter()
            w._recompute()  # what every trait change calls
            w.wait(120)
            end_to_end.append(time.perf_counter() - start)
            compute.append(w.explanation.seconds)
        sent = sum(wire_bytes(v) for v in (w._heatmap, w._grid, w._bars))
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


if __name__ == "__main__":
    main()
