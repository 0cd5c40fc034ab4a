"""Spurious cues for Clever-Hans experiments: plant a shortcut correlated with the label.

>>> import torch
>>> from xai_widgets.datasets import plant_shortcut
>>> images, labels = torch.zeros(10, 1, 28, 28), torch.tensor([7] * 5 + [1] * 5)
>>> tagged, mask = plant_shortcut(images, labels, kind="tag", fraction=1.0, classes=[7])
>>> int(mask.any(dim=(1, 2, 3)).sum()), float(tagged[0].max())
(5, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xai_widgets.errors import InputError

KINDS = ("tag", "background", "stripe")


def cue_mask(kind: str, shape: tuple[int, int, int], size: int = 4) -> torch.Tensor:
    """Where a cue of ``kind`` sits in an image of ``shape`` (C, H, W): a bool mask."""
    _channels, height, _width = shape
    mask = torch.zeros(shape, dtype=torch.bool)
    if kind == "tag":  # a small bright square in the top-left corner, like a copyright tag
        mask[:, 1:1 + size, 1:1 + size] = True
    elif kind == "stripe":  # a border stripe along the bottom edge
        mask[:, height - 2:, :] = True
    elif kind == "background":  # everything the digit does not cover: decided per image
        mask[:] = True
    else:
        raise InputError(f"unknown shortcut kind {kind!r}: choose one of {', '.join(KINDS)}")
    return mask


def plant_shortcut(images, labels, kind: str = "tag", fraction: float = 0.5,
                   classes: Sequence[int] = (0,), value: float = 1.0, seed: int = 0,
                   size: int = 4):
    """Copies of ``images`` (N,C,H,W, values in 0..1) where ``fraction`` of the images of
    ``classes`` carry the cue, and the per-image bool mask (N,C,H,W) of the cue's pixels.

    ``tag``: a ``size``×``size`` square of ``value`` in the top-left corner; ``stripe``: a
    2-pixel band along the bottom; ``background``: a faint texture (0.25 · ``value``
    checkerboard) wherever the image is dark. The inputs are not modified.
    """
    images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if images.ndim != 4 or len(images) != len(labels):
        raise InputError(f"images must be (N,C,H,W) with one label each; got {tuple(images.shape)} "
                         f"images and {len(labels)} labels")
    if kind not in KINDS:
        raise InputError(f"unknown shortcut kind {kind!r}: choose one of {', '.join(KINDS)}")
    if not 0.0 <= fraction <= 1.0:
        raise InputError(f"fraction must be in 0..1, got {fraction}")
    images = images.float().clone()
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(np.isin(labels.numpy(), list(classes)))
    chosen = rng.choice(candidates, size=round(fraction * len(candidates)), replace=False)
    masks = torch.zeros(images.shape, dtype=torch.bool)
    shape = tuple(images.shape[1:])
    for i in chosen:
        mask = cue_mask(kind, shape, size)
        if kind == "background":
            height, width = shape[1:]
            checker = ((torch.arange(height)[:, None] + torch.arange(width)[None]) % 2 == 0)
            mask = mask & (images[i] < 0.1) & checker
            images[i][mask] = 0.25 * value
        else:
            images[i][mask] = value
        masks[i] = mask
    return images, masks
