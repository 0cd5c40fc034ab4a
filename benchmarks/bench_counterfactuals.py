"""Counterfactual methods over held-out digits, each with a random other target.

    python benchmarks/bench_counterfactuals.py [--n 50]

Per method: success rate, median L1 and L0 change, median time, and the median
reconstruction error of x′ under the shipped autoencoder (lower = more in-distribution).
Prototypes come from the demo's other held-out digits (data=).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import table
from xai_widgets import counterfactual
from xai_widgets.zoo import load_autoencoder, load_demo

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    model, images, _labels, _ = load_demo("mnist")
    data, digits = images[500:], images[: args.n]
    rng = np.random.default_rng(0)
    with torch.no_grad():
        predicted = model(digits).argmax(1).numpy()
    targets = [int(rng.choice([c for c in range(10) if c != p])) for p in predicted]
    autoencoder = load_autoencoder("mnist")
    rows = []
    for method in ("wachter", "prototype", "adversarial"):
        results = [counterfactual(model, x, target=t, method=method, data=data)
                   for x, t in zip(digits, targets, strict=True)]
        ok = [r for r in results if r.success]
        with torch.no_grad():
            errors = [float(torch.nn.functional.mse_loss(autoencoder(torch.tensor(r.image)[None]),
                                                         torch.tensor(r.image)[None])) for r in ok]
        rows.append({"method": method, "success": f"{len(ok)}/{len(results)}",
                     "median L1": f"{np.median([r.l1 for r in ok]):.1f}" if ok else "–",
                     "median L0 (pixels)": f"{np.median([r.l0 for r in ok]):.0f}" if ok else "–",
                     "median time (ms)": f"{1e3 * np.median([r.seconds for r in results]):.0f}",
                     "median AE error of x′": f"{np.median(errors):.4f}" if ok else "–"})
        print(rows[-1], flush=True)
    print()
    print(f"{args.n} held-out digits, each with a random other target; seed CNN; prototypes "
          "from 500 other held-out digits")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
