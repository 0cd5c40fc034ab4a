"""Counterfactual methods over held-out digits, each with a random other target.

    python benchmarks/bench_counterfactuals.py [--n 200] [--threads 2]

Per method: success rate, median L1 and L0 change, median time, and the median
reconstruction error of x′ under the shipped autoencoder (lower = more in-distribution).
Prototypes come from the demo's other held-out digits (data=). ``cfrl`` is one forward
pass of the shipped actor: ``single`` calls ``counterfactual(method="cfrl")`` per digit;
``batched`` calls ``all_classes`` once per digit (all 9 other classes in one pass) and
reports the time per counterfactual and the success over all of them.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import table
from xai_widgets import counterfactual
from xai_widgets.methods.cfrl import all_classes
from xai_widgets.zoo import load_autoencoder, load_demo

warnings.filterwarnings("ignore")


def row(name: str, results: list, seconds: list, autoencoder) -> dict:
    ok = [r for r in results if r.success]
    with torch.no_grad():
        errors = [float(torch.nn.functional.mse_loss(autoencoder(torch.tensor(r.image)[None]),
                                                     torch.tensor(r.image)[None])) for r in ok]
    return {"method": name, "success": f"{len(ok)}/{len(results)}",
            "median L1": f"{np.median([r.l1 for r in ok]):.1f}" if ok else "–",
            "median L0 (pixels)": f"{np.median([r.l0 for r in ok]):.0f}" if ok else "–",
            "median time (ms)": f"{1e3 * np.median(seconds):.1f}",
            "median AE error of x′": f"{np.median(errors):.4f}" if ok else "–"}


def timed(call):
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="wachter,prototype,adversarial,cfrl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, images, _labels, _ = load_demo("mnist")
    data, digits = images[500:], images[: args.n]
    rng = np.random.default_rng(0)
    with torch.no_grad():
        predicted = model(digits).argmax(1).numpy()
    targets = [int(rng.choice([c for c in range(10) if c != p])) for p in predicted]
    autoencoder = load_autoencoder("mnist")
    rows = []
    for method in args.methods.split(","):
        counterfactual(model, digits[0], target=targets[0], method=method, data=data)  # warm-up
        found = [timed(lambda: counterfactual(model, x, target=t, method=method, data=data))
                 for x, t in zip(digits, targets, strict=True)]
        results, seconds = [f[0] for f in found], [f[1] for f in found]
        rows.append(row(method + (" (single)" if method == "cfrl" else ""), results, seconds,
                        autoencoder))
        print(rows[-1], flush=True)
        if method == "cfrl":
            batches = [timed(lambda: all_classes(model, x)) for x in digits]
            results = [cf for batch, _ in batches for cf in batch.values()]
            seconds = [s / len(batch) for batch, s in batches]
            rows.append(row("cfrl (batched, 9 classes)", results, seconds, autoencoder))
            print(rows[-1], flush=True)
    print()
    print(f"{args.n} held-out digits, each with a random other target (batched: all 9 other "
          f"classes); demo CNN; prototypes from 500 other held-out digits; "
          f"{torch.get_num_threads()} threads; time = wall clock per counterfactual, with its "
          "21-frame morph path")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
