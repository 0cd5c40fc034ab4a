"""Finding and removing the Clever-Hans shortcut: TCAV, then each correction, before/after.

    python benchmarks/bench_correction.py

The shipped Clever-Hans model saw a 4×4 corner tag on 90 % of its training 7s. The 1,000
held-out digits are split: the first 500 (with the tag on 90 % of their 7s, as the model was
trained) are what fine-tuning may use; the last 500, clean, are where everything is measured.

1. TCAV of the tag concept (pasted onto 60 clean digits) for class 7 on the held-out 7s, for
   the shortcut model and its clean twin: score, random directions, p-value.
2. Before and after project_out (P-ClArC, strength 1), a_clarc and rrr (with their
   defaults): clean accuracy, flip rate (other digits with the tag pasted, called 7),
   relevance mass on the tag (integrated gradients, target 7), TCAV score; the time each
   correction takes with 2 threads (CI's cores).
3. Projection strength sweep: flip rate and clean accuracy at strength 0 … 1.

The widget's live projection slider against one explanation: bench_concept_widget.py.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import table
from xai_widgets import concepts, correct
from xai_widgets.correction_report import format_value, report
from xai_widgets.zoo import load_clever_hans, load_demo

warnings.filterwarnings("ignore")


def percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def main() -> None:
    torch.set_num_threads(2)
    demo = load_clever_hans()
    _, clean, labels, _ = load_demo()
    carrier = demo.masks.flatten(1).any(1)
    fit_x, fit_y = demo.images[:500], demo.labels[:500]
    test_x, test_y = clean[500:], labels[500:]
    sevens = test_x[test_y == 7]

    rows = []
    for name, model in (("Clever-Hans model", demo.model), ("clean twin", demo.twin)):
        tag = concepts.Concept.from_region(model, demo.images[carrier][0], demo.masks[carrier][0],
                                           clean[:60], min_accuracy=0)
        result = concepts.tcav(model, sevens, tag, target=7)
        mean, spread = result.random_spread
        rows.append({"model": name, "CAV accuracy": f"{tag.accuracy:.2f}",
                     "TCAV score": f"{result.score:.2f}",
                     "random directions": f"{mean:.2f} ± {spread:.2f}",
                     "p (one-sided)": f"{result.p_value:.1e}",
                     "significant (p < 0.01)": "yes" if result.significant else "no"})
    print(f"TCAV of the tag concept for class 7, {len(sevens)} held-out 7s, 30 runs each")
    print(table(rows, list(rows[0])), flush=True)

    tag = concepts.Concept.from_region(demo.model, demo.images[carrier][0],
                                       demo.masks[carrier][0], clean[:60])
    fixes, seconds = {}, {}
    start = time.perf_counter()
    fixes["project_out"] = correct.project_out(demo.model, tag, strength=1.0)
    seconds["project_out"] = time.perf_counter() - start
    for method in correct.METHODS:
        start = time.perf_counter()
        fixes[method] = correct.finetune(demo.model, fit_x, fit_y, concept=tag, method=method,
                                         progress=None)
        seconds[method] = time.perf_counter() - start
    result = report(demo.model, fixes, test_x, test_y, artifact=tag)
    rows = [{"metric": row["metric"],
             **{c: format_value(row[c], row["metric"]) for c in result.values}}
            for row in result.rows()]
    rows.append({"metric": "time (2 threads)", "before": "",
                 **{c: f"{seconds[c]:.2f} s" for c in fixes}})
    print(f"\nbefore/after on {len(test_x)} clean held-out digits; flip rate and relevance over "
          f"{result.counts['artifact']} other digits with the tag pasted "
          f"(relevance: first {result.counts['relevance']})")
    print(table(rows, list(rows[0])), flush=True)

    sweep = []
    others = tag.insert(test_x[test_y != 7])
    for strength in (0.0, 0.25, 0.5, 0.75, 1.0):
        fixed = correct.project_out(demo.model, tag, strength)
        with torch.no_grad():
            flip = (fixed(others).argmax(1) == 7).float().mean().item()
            accuracy = (fixed(test_x).argmax(1) == test_y).float().mean().item()
        sweep.append({"strength": strength, "flip rate": percent(flip),
                      "clean accuracy": percent(accuracy)})
    print("\nprojection strength sweep")
    print(table(sweep, list(sweep[0])), flush=True)


if __name__ == "__main__":
    main()
