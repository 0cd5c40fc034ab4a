"""Cascading randomisation (Adebayo et al.): a map that does not change when the model's
weights are randomised explains nothing.

On a copy of the model, the layers with weights are re-initialised one after another, top
layer first; after each step the map is computed again and compared with the original by
Spearman rank correlation and SSIM. The user's model is never touched.

>>> from xai_widgets.sanity import sanity_check
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> check = sanity_check(model, images[0], method="saliency", target=4)
>>> check.layers[:2], check.maps.shape
(['original', 'fc2'], (5, 28, 28))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import Cancelled
from xai_widgets.explain import explain


@dataclass(frozen=True)
class SanityCheck:
    """``layers[0]`` is "original", then the layers randomised so far (top first);
    ``maps[i]`` is the target's map after step i; ``rank_correlation[i]`` and ``ssim[i]``
    compare it with ``maps[0]`` (1 = unchanged)."""

    method: str
    target: int
    layers: list
    maps: np.ndarray
    rank_correlation: np.ndarray
    ssim: np.ndarray


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    value = spearmanr(a.ravel(), b.ravel()).statistic
    return float(np.nan_to_num(value))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the two maps, each scaled to 0..1 by its own range."""
    from skimage.metrics import structural_similarity

    def scaled(m):
        span = m.max() - m.min()
        return (m - m.min()) / span if span > 0 else np.zeros_like(m)

    return float(structural_similarity(scaled(a), scaled(b), data_range=1.0))


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf layers that own parameters, top (output) first."""
    leaves = [(name, m) for name, m in model.named_modules()
              if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    return leaves[::-1]


def sanity_check(model, x, method: str = "integrated_gradients", target: int | None = None,
                 seed: int = 0, data=None, *, preprocess=None, output: str = "auto",
                 baseline="zero", baseline_alpha: float = 0.0, cancelled=None,
                 **params) -> SanityCheck:
    """Cascading randomisation of a copy of ``model`` for one image and one target, with the
    same ``preprocess``, ``output`` and baseline as the map under test. ``cancelled()`` is
    checked between layers (a superseded check stops early)."""
    adapter = ModelAdapter(model, preprocess=preprocess, output=output)
    if target is None:
        image, _ = adapter.image(x)
        target = int(adapter.probabilities(image)[0].argmax())
    common = dict(targets=target, data=data, preprocess=preprocess, output=output,
                  baseline=baseline, baseline_alpha=baseline_alpha, **params)
    original = explain(model, x, method=method, **common).map(target)
    scrambled = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    layers, maps = ["original"], [original]
    for name, layer in weighted_layers(scrambled):
        if cancelled is not None and cancelled():
            raise Cancelled()
        with torch.no_grad():
            for parameter in layer.parameters(recurse=False):
                parameter.copy_(torch.randn(parameter.shape, generator=generator)
                                .to(parameter) * parameter.std().clamp_min(1e-3))
        layers.append(name)
        maps.append(explain(scrambled, x, method=method, **common).map(target))
    maps = np.stack(maps)
    return SanityCheck(method, target, layers, maps,
                       np.array([spearman(original, m) for m in maps]),
                       np.array([ssim(original, m) for m in maps]))
