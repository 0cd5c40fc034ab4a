"""Shipped demo models and data loaders; everything works offline.

>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> images.shape, classes[:3]
(torch.Size([1000, 1, 28, 28]), ['0', '1', '2'])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xai_widgets.errors import InputError
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
    model = MnistCNN()
    model.load_state_dict(torch.load(WEIGHTS / "mnist_cnn.pt", weights_only=True))
    model.eval()
    with np.load(WEIGHTS / "mnist_heldout.npz") as heldout:
        images = torch.from_numpy(heldout["images"]).float() / 255.0
        labels = torch.from_numpy(heldout["labels"]).long()
    return model, images, labels, list(MNIST_CLASSES)


def load_autoencoder(name: str = "mnist"):
    """The shipped autoencoder of the MNIST digits (prototype counterfactuals), in eval mode."""
    from xai_widgets.zoo.autoencoder import ConvAutoencoder

    if name != "mnist":
        raise InputError(f"unknown autoencoder {name!r}: the shipped one is 'mnist'")
    model = ConvAutoencoder(channels=1)
    model.load_state_dict(torch.load(WEIGHTS / "mnist_autoencoder.pt", weights_only=True))
    return model.eval()


__all__ = ["FASHION_MNIST_CLASSES", "load_autoencoder", "MNIST_CLASSES", "MnistCNN", "load_demo", "load_idx",
           "load_idx_dataset"]
