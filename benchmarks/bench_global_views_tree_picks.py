"""Surrogate trees and global picks on the shipped held-out digits.

    python benchmarks/bench_global_views_tree_picks.py

1. Surrogate-tree fidelity (held-out agreement with the network's predictions; 700 digits to
   train, 300 held out, split seed 0) for depths 2–8: a plain tree on 7×7 cell means, the same
   with model-labelled augmented copies, and the regional class concepts ("parts", the
   default) without and with augmentation; the seconds to fit all seven depths (features once)
   and one depth-6 tree from scratch.
2. The depth-6 fidelity of the default over five split seeds.
3. SP-LIME picks over integrated-gradients maps of the 1,000 digits: coverage of the pick
   against random picks of the same budget (median ratio over 100 seeds).
4. The Clever-Hans 7s (held-out 7s, half of them tagged with plant_shortcut(fraction=0.5,
   classes=[7], seed=1), the shipped Clever-Hans model): SpRAy clusters of the maps and how
   many of them the pick of budget 8 reaches, against random picks of 8; other plant seeds too.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import table
from xai_widgets.batch import explain_many
from xai_widgets.datasets import plant_shortcut
from xai_widgets.global_views import pick, surrogate_tree, surrogate_trees
from xai_widgets.spray import spray
from xai_widgets.zoo import load_clever_hans, load_demo

warnings.filterwarnings("ignore")
DEPTHS = range(2, 9)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def fidelity_table(model, images) -> str:
    rows = []
    for label, features, augment in (("grid 7×7 cell means (plain sklearn tree)", "grid", 0),
                                     ("grid 7×7 + 10 model-labelled copies", "grid", 10),
                                     ("parts (regional class concepts)", "parts", 0),
                                     ("**parts + 10 model-labelled copies (default)**", "parts",
                                      10)):
        trees, seconds = timed(lambda f=features, a=augment: surrogate_trees(
            model, images, DEPTHS, features=f, augment=a))
        _, one = timed(lambda f=features, a=augment: surrogate_tree(
            model, images, features=f, max_depth=6, augment=a))
        row = {"features": label, "fit 2–8 (s)": f"{seconds:.2f}",
               "fit depth 6 (s)": f"{one:.2f}"}
        row |= {f"depth {d}": f"{trees[d].fidelity:.3f}" for d in DEPTHS}
        rows.append(row)
    columns = ["features", *(f"depth {d}" for d in DEPTHS), "fit 2–8 (s)", "fit depth 6 (s)"]
    return table(rows, columns)


def seeds_table(model, images) -> str:
    rows = []
    for seed in range(5):
        tree = surrogate_tree(model, images, max_depth=6, seed=seed)
        grid = surrogate_tree(model, images, features="grid", max_depth=6, augment=0, seed=seed)
        rows.append({"split seed": seed, "parts (default)": f"{tree.fidelity:.3f}",
                     "grid plain": f"{grid.fidelity:.3f}", "leaves": tree.n_leaves,
                     "train fidelity": f"{tree.train_fidelity:.3f}"})
    return table(rows, ["split seed", "parts (default)", "grid plain", "leaves",
                        "train fidelity"])


def picks_table(model, images) -> str:
    maps, explain_seconds = timed(lambda: explain_many(model, images))
    rows = []
    for budget in (4, 8, 16):
        picks, seconds = timed(lambda b=budget: pick(None, None, budget=b, maps=maps))
        random = [picks.random_coverage(seed) for seed in range(100)]
        ratios = [picks.coverage / r for r in random]
        rows.append({"budget": budget, "pick coverage": f"{picks.share:.1%} of total",
                     "median random": f"{statistics.median(random) / picks.total:.1%}",
                     "median ratio pick/random": f"{statistics.median(ratios):.3f}",
                     "min ratio": f"{min(ratios):.3f}",
                     "pick (s)": f"{seconds:.3f}"})
    return (table(rows, ["budget", "pick coverage", "median random", "median ratio pick/random",
                         "min ratio", "pick (s)"])
            + f"\n\n(integrated-gradients maps of {len(images)} digits: {explain_seconds:.1f} s)")


def clusters_table(images, labels) -> str:
    model = load_clever_hans().model
    rows = []
    for seed in (1, 2, 3, 4, 5):
        tagged, masks = plant_shortcut(images, labels, fraction=0.5, classes=[7], seed=seed)
        sevens, tags = tagged[labels == 7], masks[labels == 7].flatten(1).any(1).numpy()
        for budget in (8, 12):
            picks = pick(model, sevens, budget=budget)
            clusters = spray(picks.maps).clusters
            k = len(np.unique(clusters))
            random = [len(np.unique(clusters[np.random.default_rng(s).choice(
                len(sevens), budget, replace=False)])) for s in range(100)]
            rows.append({"plant seed": f"**{seed}**" if seed == 1 else seed, "budget": budget,
                         "7s (tagged)": f"{len(sevens)} ({int(tags.sum())})",
                         "SpRAy clusters": k,
                         "reached by pick": len(np.unique(clusters[picks.indices])),
                         "random: mean reached": f"{np.mean(random):.1f}",
                         "random: all reached": f"{np.mean(np.array(random) == k):.0%}",
                         "tagged in pick": int(tags[picks.indices].sum())})
    return table(rows, ["plant seed", "budget", "7s (tagged)", "SpRAy clusters",
                        "reached by pick", "random: mean reached", "random: all reached",
                        "tagged in pick"])


def main() -> None:
    torch.manual_seed(0)
    model, images, labels, _ = load_demo("mnist")
    print(f"torch threads: {torch.get_num_threads()}\n")
    print("## Surrogate tree: held-out fidelity by depth (700 train / 300 held out, seed 0)\n")
    print(fidelity_table(model, images))
    print("\n## Depth 6 over split seeds\n")
    print(seeds_table(model, images))
    print("\n## SP-LIME picks vs random picks (1,000 digits, integrated gradients)\n")
    print(picks_table(model, images))
    print("\n## Clever-Hans 7s: SpRAy clusters reached by the pick\n")
    print(clusters_table(images, labels))


if __name__ == "__main__":
    main()
