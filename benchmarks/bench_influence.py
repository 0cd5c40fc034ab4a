"""Influence (TracIn, last layer) on the Clever-Hans demo: parity, tag recall, speed.

    python benchmarks/bench_influence.py

1. Parity: our scores against captum's ``TracInCPFast.influence`` on the same inputs.
2. For tagged held-out non-7s that the Clever-Hans model calls 7: the share of the top-10
   proponents that are tagged training 7s (goal ≥ 0.8), against the base rate; the same for
   the clean twin (queried with the same tagged digits, its own untagged training set and
   its 4 checkpoints; there no training image carries the tag, so we count the training
   images that carry it in the Clever-Hans set, i.e. the same 364 indices).
3. One-off preparation time and time per query, separately (2 threads).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from captum.influence import TracInCPFast

from xai_widgets.datasets import plant_shortcut
from xai_widgets.influence import Influencer
from xai_widgets.zoo import load_clever_hans, load_clever_hans_training, load_demo


def main() -> None:
    torch.set_num_threads(2)
    demo = load_clever_hans()
    _, heldout, labels, _ = load_demo()
    others = labels != 7
    tagged_x, _ = plant_shortcut(heldout[others], labels[others], fraction=1.0,
                                 classes=range(10))
    for name, model, twin in (("Clever-Hans", demo.model, False), ("clean twin", demo.twin, True)):
        images, train_labels, _, checkpoints = load_clever_hans_training(twin=twin)
        flags = load_clever_hans_training()[2]
        start = time.perf_counter()
        influencer = Influencer(model, images, train_labels, checkpoints)
        prep = time.perf_counter() - start
        raw = Influencer(model, images, train_labels, checkpoints, normalize=False)
        with torch.no_grad():
            called_seven = (demo.model(tagged_x).argmax(1) == 7).nonzero().flatten()[:100]
        shares, raw_shares, times = [], [], []
        for i in called_seven:
            start = time.perf_counter()
            result = influencer.query(tagged_x[i], k=10)  # its own predicted class
            times.append(time.perf_counter() - start)
            shares.append(flags[result.proponents].float().mean().item())
            raw_shares.append(flags[raw.query(tagged_x[i], k=10).proponents].float().mean().item())
        base = flags.float().mean().item()
        print(f"{name}: {len(checkpoints or [0])} checkpoint(s); {len(shares)} tagged non-7s "
              f"the Clever-Hans model calls 7: top-10 proponents tagged 7s "
              f"{sum(shares) / len(shares):.3f} renormalised, "
              f"{sum(raw_shares) / len(raw_shares):.3f} raw (base rate {base:.3f}); preparation "
              f"{prep:.2f} s, query {1000 * sorted(times)[len(times) // 2]:.1f} ms (median)")
        tracin = raw.tracin
        x = tagged_x[called_seven[:5]]
        theirs = tracin.influence((x, torch.full((5,), 7)), k=None)
        ours = torch.stack([raw.scores(xi, 7)[0] for xi in x])
        print(f"  parity with captum TracInCPFast.influence (5 queries x 4000): max |diff| "
              f"{(ours - theirs).abs().max().item():.2e}, max |score| "
              f"{theirs.abs().max().item():.2e}; isinstance {isinstance(tracin, TracInCPFast)}")


if __name__ == "__main__":
    main()
