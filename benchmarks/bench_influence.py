"""Influence on the Clever-Hans demo, per method: tag recall, parity with captum, speed.

    python benchmarks/bench_influence.py [methods, default tracin,naive,arnoldi,auto]

For tagged held-out non-7s that the Clever-Hans model calls 7 (up to 100): the share of the
top-10 proponents that are tagged training 7s (goal ≥ 0.8), renormalised and raw, against
the base rate; the same for the clean twin (queried with the same tagged digits and its own
untagged training set; there no training image carries the tag, so we count the training
images that carry it in the Clever-Hans set, i.e. the same 364 indices; the twin calls most
of these digits by their own class, so its share falls to about 0, below the base rate).
TracIn (and "auto", which then picks it) uses the twin's 4 checkpoints and the Clever-Hans
model's final weights (it ships no checkpoints); the influence functions use each model's
final weights ("auto" picks naive for the Clever-Hans model). Also: one-off
preparation time and median time per query (2 threads, or $BENCH_THREADS), and the largest
relative difference between our raw scores and captum's own ``.influence`` on 5 queries.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from xai_widgets.datasets import plant_shortcut
from xai_widgets.influence import Influencer
from xai_widgets.zoo import load_clever_hans, load_clever_hans_training, load_demo


def share(influencer: Influencer, queries: torch.Tensor, flags: torch.Tensor):
    """Mean share of tagged images among the top-10 proponents, and query times."""
    shares, times = [], []
    for x in queries:
        start = time.perf_counter()
        result = influencer.query(x, k=10)  # its own predicted class
        times.append(time.perf_counter() - start)
        shares.append(flags[result.proponents].float().mean().item())
    return sum(shares) / len(shares), sorted(times)[len(times) // 2]


def main() -> None:
    warnings.filterwarnings("ignore", module="captum")
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    methods = (sys.argv[1] if len(sys.argv) > 1 else "tracin,naive,arnoldi,auto").split(",")
    demo = load_clever_hans()
    _, heldout, labels, _ = load_demo()
    others = labels != 7
    tagged_x, _ = plant_shortcut(heldout[others], labels[others], fraction=1.0,
                                 classes=range(10))
    flags = load_clever_hans_training()[2]
    with torch.no_grad():
        queries = tagged_x[(demo.model(tagged_x).argmax(1) == 7).nonzero().flatten()[:100]]
    print(f"{len(queries)} tagged non-7s the Clever-Hans model calls 7; base rate "
          f"{flags.float().mean().item():.3f}; top-10 proponents that are tagged training 7s")
    print(f"{'method':12} {'model':11} {'renorm':>7} {'raw':>6} {'prep s':>7} "
          f"{'query ms':>9} {'parity':>9}")
    for method in methods:
        for name, model, twin in (("Clever-Hans", demo.model, False),
                                  ("clean twin", demo.twin, True)):
            images, train_labels, _, checkpoints = load_clever_hans_training(twin=twin)
            start = time.perf_counter()
            influencer = Influencer(model, images, train_labels,
                                    checkpoints if method in ("tracin", "auto") else None,
                                    method=method, batch_size=500)
            prep = time.perf_counter() - start
            renormalised, query = share(influencer, queries, flags)
            influencer.normalize = False
            raw, _ = share(influencer, queries, flags)
            x, targets = queries[:5], torch.full((5,), 7)
            theirs = influencer.captum.influence((x, targets), k=None)
            ours = torch.stack([influencer.scores(xi, 7)[0] for xi in x])
            parity = ((ours - theirs).abs().max() / theirs.abs().max()).item()
            method_used = method if method != "auto" else f"auto:{influencer.method}"
            print(f"{method_used:12} {name:11} {renormalised:7.3f} {raw:6.3f} {prep:7.2f} "
                  f"{1000 * query:9.1f} {parity:9.1e}", flush=True)


if __name__ == "__main__":
    main()
