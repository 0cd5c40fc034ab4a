"""Class visualisation (activation maximisation) on the shipped models.

    python benchmarks/bench_global_views_visualize.py [--steps 256] [--seed 0]

1. The demo CNN, defaults, one seed: p(target) of the final image for every class and the
   first step whose (un-jittered) image reaches p ≥ 0.99, pixel and Fourier.
2. The shipped autoencoder as generator (``data=`` 100 held-out digits for the start and the
   latent prior): p(target) and the autoencoder's reconstruction error (MSE of ae(x) vs x)
   of the 10 class images against the mean over the 1,000 held-out digits.
3. The Clever-Hans model and its clean twin, class 7: mean intensity in the tag's 4×4 region
   over the mean intensity of the image (1 = no preference), Hans vs twin.
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
from xai_widgets.global_views import visualize_class
from xai_widgets.zoo import load_autoencoder, load_clever_hans, load_demo

warnings.filterwarnings("ignore")


def reconstruction_error(autoencoder, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return ((autoencoder(images) - images) ** 2).flatten(1).mean(1)


def every_class(model, steps: int, seed: int) -> list[dict]:
    rows = []
    for parameterization in ("pixel", "fourier"):
        probabilities, needed, start = [], [], time.perf_counter()
        for target in range(10):
            seen: list[float] = []

            def on_step(_step, _steps, image, _score, target=target, seen=seen):
                with torch.no_grad():
                    scores = model(torch.tensor(image)[None])
                seen.append(float(torch.softmax(scores, 1)[0, target]))

            v = visualize_class(model, target=target, steps=steps, seed=seed, on_step=on_step,
                                report_every=1, parameterization=parameterization)
            probabilities.append(float(v.probabilities[target]))
            needed.append(next((i + 1 for i, p in enumerate(seen) if p >= 0.99), None))
        seconds = time.perf_counter() - start
        rows.append({"parameterization": parameterization,
                     **{str(c): f"{p:.4f} ({n})" for c, (p, n) in
                        enumerate(zip(probabilities, needed, strict=True))},
                     "min p": f"{min(probabilities):.4f}",
                     "most steps to 0.99": max((n or steps + 1) for n in needed),
                     "time per class (s)": f"{seconds / 10:.2f}"})
    return rows


def generator_rows(model, images, autoencoder, steps: int, seed: int) -> tuple[float, list]:
    real = float(reconstruction_error(autoencoder, images).mean())
    rows = []
    for label, kwargs in (("ae, data= (default latent_l2=0.1)", {"data": images[500:600]}),
                          ("ae, data=, latent_l2=0", {"data": images[500:600], "latent_l2": 0}),
                          ("ae, no data", {}),
                          ("ae.decoder, latent_shape=(8,7,7)",
                           {"latent_shape": (8, 7, 7), "generator": autoencoder.decoder})):
        kwargs = {"generator": autoencoder, **kwargs}
        results = [visualize_class(model, target=t, steps=steps, seed=seed, **kwargs)
                   for t in range(10)]
        pictures = torch.stack([torch.tensor(v.image) for v in results])
        errors = reconstruction_error(autoencoder, pictures)
        probabilities = [float(v.probabilities[t]) for t, v in enumerate(results)]
        rows.append({"generator": label, "min p(target)": f"{min(probabilities):.4f}",
                     "mean p(target)": f"{np.mean(probabilities):.4f}",
                     "recon. MSE, 10 visualisations": f"{float(errors.mean()):.5f}",
                     "real digits": f"{real:.5f}",
                     "ratio": f"{float(errors.mean()) / real:.2f}×"})
    return real, rows


def clever_hans_rows(images, autoencoder, steps: int, seed: int) -> list[dict]:
    demo = load_clever_hans()
    mask = demo.masks[demo.masks.flatten(1).any(1)][0].numpy()
    rows = []
    for label, kwargs in (("pixel (defaults)", {}),
                          ("fourier (defaults)", {"parameterization": "fourier"}),
                          ("generator (defaults: latent_l2=0.1)",
                           {"generator": autoencoder, "data": images[500:600]}),
                          ("generator, latent_l2=0",
                           {"generator": autoencoder, "data": images[500:600], "latent_l2": 0})):
        ratios, probabilities = {}, {}
        for name, model in (("hans", demo.model), ("twin", demo.twin)):
            v = visualize_class(model, target=demo.tag_class, steps=steps, seed=seed, **kwargs)
            ratios[name] = float(v.image[mask].mean() / v.image.mean())
            probabilities[name] = float(v.probabilities[demo.tag_class])
        rows.append({"visualisation": label, "tag ratio, Hans": f"{ratios['hans']:.2f}",
                     "tag ratio, twin": f"{ratios['twin']:.2f}",
                     "Hans / twin": f"{ratios['hans'] / ratios['twin']:.1f}",
                     "p(7) Hans / twin": f"{probabilities['hans']:.3f} / "
                                         f"{probabilities['twin']:.3f}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model, images, _labels, _ = load_demo("mnist")
    autoencoder = load_autoencoder("mnist")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps, "
          f"seed {args.seed}\n")
    print("## 1. Every demo class, defaults: p(target) (first step with p ≥ 0.99)\n")
    rows = every_class(model, args.steps, args.seed)
    print(table(rows, ["parameterization", *map(str, range(10)), "min p", "most steps to 0.99",
                       "time per class (s)"]))
    print("\n## 2. Generator-constrained (the shipped autoencoder)\n")
    _, rows = generator_rows(model, images, autoencoder, args.steps, args.seed)
    print(table(rows, ["generator", "min p(target)", "mean p(target)",
                       "recon. MSE, 10 visualisations", "real digits", "ratio"]))
    print("\n## 3. Clever-Hans, class 7: tag-region intensity / image intensity\n")
    rows = clever_hans_rows(images, autoencoder, args.steps, args.seed)
    print(table(rows, ["visualisation", "tag ratio, Hans", "tag ratio, twin", "Hans / twin",
                       "p(7) Hans / twin"]))


if __name__ == "__main__":
    main()
