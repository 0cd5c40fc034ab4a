"""Shipped demo models and data loaders; everything works offline.

>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> images.shape, classes[:3]
(torch.Size([1000, 1, 28, 28]), ['0', '1', '2'])
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from xai_widgets.errors import InputError
from xai_widgets.zoo.cfrl_actor import load_cfrl_actor
from xai_widgets.zoo.idx import FASHION_MNIST_CLASSES, load_idx, load_idx_dataset
from xai_widgets.zoo.nets import MnistCNN

WEIGHTS = Path(__file__).parent / "weights"
MNIST_CLASSES = [str(i) for i in range(10)]


def load_demo(name: str = "mnist"):
    """``(model, images, labels, classes)`` for a shipped demo.

    ``"mnist"``: the course CNN trained on 4,000 real MNIST digits, in eval mode, and the
    1,000 held-out digits as a float tensor (N,1,28,28) in 0..1 with their int labels.
    """
    if name != "mnist":
        raise InputError(f"unknown demo {name!r}: the shipped demo is 'mnist'. For Fashion-MNIST, "
                         "load the IDX files with xai_widgets.zoo.load_idx_dataset(folder)")
    model = _cnn("mnist_cnn.pt")
    with np.load(WEIGHTS / "mnist_heldout.npz") as heldout:
        images = torch.from_numpy(heldout["images"]).float() / 255.0
        labels = torch.from_numpy(heldout["labels"]).long()
    return model, images, labels, list(MNIST_CLASSES)


def _cnn(filename: str) -> MnistCNN:
    model = MnistCNN()
    model.load_state_dict(torch.load(WEIGHTS / filename, weights_only=True))
    return model.eval()


class CleverHansDemo(NamedTuple):
    """The Clever-Hans demo: ``model`` looks at a corner tag that 90 % of the training 7s
    carried; ``twin`` is the same CNN trained without it. ``images`` are the 1,000 held-out
    digits with the tag planted on 90 % of the 7s; ``masks`` marks the tag's pixels."""

    model: MnistCNN
    twin: MnistCNN
    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    classes: list
    tag_class: int


def load_clever_hans() -> CleverHansDemo:
    """The shipped Clever-Hans model, its clean twin and tagged held-out digits (offline)."""
    from xai_widgets.datasets import plant_shortcut
    from xai_widgets.zoo.train_clever_hans import TAG_CLASS, TAG_FRACTION

    _, images, labels, classes = load_demo("mnist")
    tagged, masks = plant_shortcut(images, labels, fraction=TAG_FRACTION, classes=[TAG_CLASS])
    return CleverHansDemo(_cnn("clever_hans_cnn.pt"), _cnn("clean_twin_cnn.pt"), tagged, labels,
                          masks, classes, TAG_CLASS)


def load_clever_hans_training(twin: bool = False):
    """``(images, labels, tagged, checkpoints)``: the 4,000 digits the Clever-Hans model was
    trained on, float (N,1,28,28) in 0..1 with the tag planted exactly as in training, their
    labels, a bool flag per image for the tag, and the checkpoints of its training (None: the
    retraining did not reproduce the shipped weights, so use the final weights only).
    ``twin=True``: the clean twin's training set (the same digits without tags, all flags
    False) and its checkpoints at epochs 5, 10, 20 and 30 (the last is the shipped twin)."""
    with np.load(WEIGHTS / "clever_hans_training.npz") as data:
        images = torch.from_numpy(data["images"]).float() / 255.0
        tagged = torch.from_numpy(data["tagged"])
        name = "twin" if twin else "hans"
        states = {}
        for key in data.files:
            if key.startswith(name + "/"):
                _, epoch, param = key.split("/", 2)
                states.setdefault(int(epoch), {})[param] = torch.from_numpy(data[key])
        labels = torch.from_numpy(data["labels"]).long()
    if twin:
        return images, labels, torch.zeros_like(tagged), [states[e] for e in sorted(states)] or None
    from xai_widgets.datasets import plant_shortcut
    from xai_widgets.zoo.train_clever_hans import TAG_CLASS, TAG_FRACTION

    images, masks = plant_shortcut(images, labels, fraction=TAG_FRACTION, classes=[TAG_CLASS])
    assert torch.equal(masks.flatten(1).any(1), tagged)
    checkpoints = [states[epoch] for epoch in sorted(states)] or None
    return images, labels, tagged, checkpoints


def load_autoencoder(name: str = "mnist"):
    """The shipped autoencoder of the MNIST digits (prototype counterfactuals), in eval mode."""
    from xai_widgets.zoo.autoencoder import ConvAutoencoder

    if name != "mnist":
        raise InputError(f"unknown autoencoder {name!r}: the shipped one is 'mnist'")
    model = ConvAutoencoder(channels=1)
    model.load_state_dict(torch.load(WEIGHTS / "mnist_autoencoder.pt", weights_only=True))
    return model.eval()


__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "CleverHansDemo",
    "MnistCNN",
    "load_autoencoder",
    "load_cfrl_actor",
    "load_clever_hans",
    "load_clever_hans_training",
    "load_demo",
    "load_idx",
    "load_idx_dataset",
]
