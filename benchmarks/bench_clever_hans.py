"""Clever-Hans numbers: relevance mass on the tag, randomisation, deletion, SpRAy, speed.

    python benchmarks/bench_clever_hans.py

1. Mean relevance mass on the tag for target 7, per method, for the shipped Clever-Hans
   model and its clean twin, over 250 held-out digits (any class) with the tag planted.
2. Cascading randomisation: rank correlation and SSIM between each gradient method's map
   and the map of the fully randomised copy (mean over 20 digits); weights checksum.
3. Deletion AUC of the default method against a random order (100 held-out digits).
4. SpRAy on the held-out 7s, half of them tagged: purity of the cluster holding most tags.
5. DatasetWidget work for 1,000 images with its default method (input × gradient) and with
   integrated gradients: ours (batched over images) against the floor (one batched
   forward+backward over the same points) and a per-image loop of explain() calls.
"""

from __future__ import annotations

import hashlib
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import median_seconds, table
from xai_widgets import explain
from xai_widgets.batch import explain_many
from xai_widgets.datasets import plant_shortcut
from xai_widgets.metrics import deletion_curve, relevance_mass
from xai_widgets.sanity import sanity_check
from xai_widgets.spray import purity, spray
from xai_widgets.zoo import load_clever_hans, load_demo

warnings.filterwarnings("ignore")
METHODS = ["integrated_gradients", "saliency", "input_x_gradient", "deeplift", "guided_backprop",
           "grad_cam", "occlusion", "lrp", "gradient_shap", "deep_shap"]


def weights_digest(model) -> str:
    weights = b"".join(t.numpy().tobytes() for t in model.state_dict().values())
    return hashlib.sha256(weights).hexdigest()


def main() -> None:
    demo = load_clever_hans()
    _, clean, labels, _ = load_demo("mnist")
    rng = np.random.default_rng(0)
    chosen = torch.from_numpy(rng.choice(len(clean), 250, replace=False))
    tagged, masks = plant_shortcut(clean[chosen], labels[chosen], fraction=1.0,
                                   classes=range(10))
    reference = clean[:100]

    rows = []
    for method in METHODS:
        row = {"method": method}
        for name, model in (("Clever-Hans model", demo.model), ("clean twin", demo.twin)):
            maps = [explain(model, x, method=method, targets=7, data=reference).map(7)
                    for x in tagged]
            masses = [relevance_mass(m, k) for m, k in zip(maps, masks, strict=True)]
            row[name] = f"{np.mean(masses):.3f}"
        rows.append(row)
        print(row, flush=True)
    print("\nmean relevance mass on the tag (target 7, 250 tagged held-out digits; the tag "
          f"covers {masks[0].sum().item()} of 784 pixels = 2 %)")
    print(table(rows, list(rows[0])))

    before = weights_digest(demo.twin)
    sanity_rows = []
    for method in ["integrated_gradients", "saliency", "input_x_gradient", "gradient_shap",
                   "guided_backprop", "grad_cam"]:
        checks = [sanity_check(demo.twin, x, method=method, data=reference) for x in clean[:20]]
        after_fc2 = np.mean([c.rank_correlation[1] for c in checks])
        all_layers = np.mean([c.rank_correlation[-1] for c in checks])
        sanity_rows.append({"method": method,
                            "rank correlation after fc2": f"{after_fc2:.2f}",
                            "rank correlation, all layers": f"{all_layers:.2f}",
                            "SSIM, all layers": f"{np.mean([c.ssim[-1] for c in checks]):.2f}"})
        print(sanity_rows[-1], flush=True)
    print(f"\ncascading randomisation of the clean twin (20 digits); weights unchanged: "
          f"{weights_digest(demo.twin) == before}")
    print(table(sanity_rows, list(sanity_rows[0])))

    aucs = []
    for x in clean[:100]:
        e = explain(demo.twin, x)
        curve = deletion_curve(demo.twin, x, e.map(e.prediction), e.prediction)
        aucs.append((curve.auc, curve.random_auc))
    aucs = np.array(aucs)
    print(f"\ndeletion AUC, integrated gradients, 100 held-out digits: {aucs[:, 0].mean():.3f} "
          f"(random order {aucs[:, 1].mean():.3f}); better than random on "
          f"{(aucs[:, 0] < aucs[:, 1]).mean():.0%} of the digits")

    sevens = labels == 7
    mixed, mixed_masks = plant_shortcut(clean[sevens], labels[sevens], fraction=0.5, classes=[7],
                                        seed=1)
    result = spray(explain_many(demo.model, mixed, targets=7))
    cluster, share = purity(result.clusters, mixed_masks.flatten(1).any(1).numpy())
    print(f"\nSpRAy on {int(sevens.sum())} held-out 7s ({int(mixed_masks.flatten(1).any(1).sum())} "
          f"tagged): {result.n_clusters} clusters by the eigengap, sizes "
          f"{np.bincount(result.clusters).tolist()}; cluster {cluster} holds most tagged 7s, "
          f"purity {share:.2f}")

    images = clean[:1000]
    for method, steps in (("input_x_gradient", 1), ("integrated_gradients", 32)):
        ours = median_seconds(
            lambda: explain_many(demo.model, images, method=method, n_steps=steps),
            repeats=3, warmup=1)
        alphas = torch.linspace(1 / steps, 1, steps).view(-1, 1, 1, 1, 1)
        points = (alphas * images[None]).flatten(0, 1)
        targets = torch.arange(len(points)) % 10

        def floor():
            x = points.clone().requires_grad_(True)
            torch.autograd.grad(demo.model(x).gather(1, targets[:, None]).sum(), x)

        floor_time = median_seconds(floor, repeats=3, warmup=1)
        extra = {"n_steps": steps} if method == "integrated_gradients" else {}
        start = time.perf_counter()
        for x in images[:100]:
            explain(demo.model, x, method=method, targets=int(demo.model(x[None]).argmax()),
                    **extra)
        loop = (time.perf_counter() - start) * 10  # 100 timed, scaled to 1,000
        print(f"\nDatasetWidget work, 1,000 images, {method} ({steps} pass(es) per image), "
              f"predicted class: ours {ours:.2f} s, floor (one forward+backward of all "
              f"{len(points)} points) {floor_time:.2f} s, per-image explain() loop {loop:.2f} s "
              f"(100 timed, ×10): {loop / ours:.1f}× faster than the loop, "
              f"{ours / floor_time:.2f}× the floor")


if __name__ == "__main__":
    main()
