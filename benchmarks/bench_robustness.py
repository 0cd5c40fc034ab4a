"""Fragility of explanations on held-out digits: the top-k attack and max-sensitivity.

    python benchmarks/bench_robustness.py [--n 50] [--steps 100] [--top-k 50]
        [--epsilons 8/255,0.1] [--methods saliency,integrated_gradients,smoothgrad]
        [--beta 3] [--beta-end 100] [--sensitivity-n 10]

Per method and ε: share of digits whose class (and probability within 0.1) is kept, median
and mean top-k intersection after the attack (1 = the map did not move), median L∞ used and
median seconds per attack (the goal: at ε = 8/255, class kept on ≥ 95 % and saliency's median
below 0.5); then the median max-sensitivity (ε = 0.02, 20 draws) per method
(``--sensitivity-n 0`` skips it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import table
from xai_widgets import robustness
from xai_widgets.zoo import load_demo

warnings.filterwarnings("ignore")
METHODS = ("saliency", "integrated_gradients", "smoothgrad")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--epsilons", default="8/255,0.1", help="comma-separated, e.g. 8/255")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--beta", type=float, default=3.0)
    parser.add_argument("--beta-end", type=float, default=100.0, help="≤ 0: constant beta")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sensitivity-n", type=int, default=10, help="digits for sensitivity")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, images, _, _ = load_demo("mnist")
    beta_end = args.beta_end if args.beta_end > 0 else None
    rows = []
    for eps_name in args.epsilons.split(","):
        num, _, den = eps_name.partition("/")
        eps = float(num) / float(den or 1)
        for method in args.methods.split(","):
            kept, inter, linf, secs = [], [], [], []
            for i in range(args.n):
                start = time.perf_counter()
                a = robustness.attack_map(model, images[i], method=method, epsilon=eps,
                                          top_k=args.top_k, steps=args.steps, beta=args.beta,
                                          beta_end=beta_end)
                secs.append(time.perf_counter() - start)
                kept.append(a.kept_class)
                inter.append(a.topk_intersection)
                linf.append(a.linf)
            rows.append({"method": method, "ε": eps_name,
                         "class kept": f"{100 * sum(kept) / len(kept):.0f} %",
                         f"median top-{args.top_k} ∩": f"{statistics.median(inter):.2f}",
                         "mean ∩": f"{statistics.mean(inter):.2f}",
                         "median L∞": f"{statistics.median(linf):.3f}",
                         "s / attack": f"{statistics.median(secs):.2f}"})
            print(rows[-1], flush=True)
    print(table(rows, list(rows[0])))
    if args.sensitivity_n < 1:
        return
    sens = []
    for method in METHODS:
        name, params = (("saliency", dict(smoothing="smoothgrad", nt_samples=10))
                        if method == "smoothgrad" else (method, {}))
        values = [robustness.sensitivity(model, images[i], method=name, epsilon=0.02, n=20,
                                         **params).value for i in range(args.sensitivity_n)]
        sens.append({"method": method, "median max-sensitivity (ε 0.02, n 20)":
                     f"{statistics.median(values):.3f}"})
    print(table(sens, list(sens[0])))


if __name__ == "__main__":
    main()
