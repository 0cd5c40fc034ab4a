"""Does a map point at the right pixels, and is it faithful to the model?

- ``relevance_mass``: the share of positive relevance inside a region (e.g. a planted tag);
- ``pointing_game``: whether the map's maximum falls inside the region;
- ``deletion_curve`` / ``insertion_curve``: remove (or reveal) the most relevant pixels
  first, in batched forward passes, and track the target's probability; a faithful map makes
  the deletion curve drop fastest (small area under it) and the insertion curve rise
  fastest. Each comes with the same curve for a random order.

>>> import numpy as np
>>> from xai_widgets.metrics import relevance_mass
>>> heat = np.zeros((4, 4)); heat[0, 0] = 3.0; heat[3, 3] = 1.0
>>> region = np.zeros((4, 4), bool); region[0, 0] = True
>>> relevance_mass(heat, region)
0.75
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import InputError


def _as_map(attribution) -> np.ndarray:
    array = np.asarray(attribution, dtype=np.float64)
    return array.sum(0) if array.ndim == 3 else array


def _as_region(mask, shape) -> np.ndarray:
    region = np.asarray(mask, dtype=bool)
    region = region.any(0) if region.ndim == 3 else region
    if region.shape != shape:
        raise InputError(f"the region is {region.shape} but the map is {shape}: pass a mask of "
                         "the image's size")
    return region


def relevance_mass(attribution, mask) -> float:
    """Σ positive relevance inside ``mask`` / Σ positive relevance (0 when there is none)."""
    heat = np.clip(_as_map(attribution), 0, None)
    total = heat.sum()
    return float(heat[_as_region(mask, heat.shape)].sum() / total) if total > 0 else 0.0


def pointing_game(attribution, mask) -> bool:
    """Whether the single most relevant pixel lies inside ``mask``."""
    heat = _as_map(attribution)
    return bool(_as_region(mask, heat.shape).ravel()[int(np.argmax(heat))])


@dataclass(frozen=True)
class Curve:
    """A perturbation curve: the target's probability after each step, its normalised area,
    and the same for a random pixel order."""

    fractions: np.ndarray
    probabilities: np.ndarray
    auc: float
    random_probabilities: np.ndarray
    random_auc: float


def _curve(model, x, attribution, target: int, steps: int, baseline, insert: bool,
           seed: int, preprocess=None) -> Curve:
    adapter = (model if isinstance(model, ModelAdapter)
               else ModelAdapter(model, preprocess=preprocess))
    image, _ = adapter.image(x)
    heat = torch.as_tensor(_as_map(attribution), dtype=image.dtype, device=image.device)
    if tuple(heat.shape) != tuple(image.shape[-2:]):
        raise InputError(f"the map is {tuple(heat.shape)} but the image is "
                         f"{tuple(image.shape[-2:])}")
    reference = (torch.zeros_like(image) if baseline is None else
                 torch.as_tensor(baseline, dtype=image.dtype,
                                 device=image.device).reshape(image.shape))
    pixels = heat.numel()
    fractions = np.linspace(0, 1, steps + 1)
    generator = torch.Generator().manual_seed(seed)
    orders = [heat.flatten().argsort(descending=True),
              torch.randperm(pixels, generator=generator).to(image.device)]
    results = []
    for order in orders:
        rank = torch.empty(pixels, dtype=torch.long, device=image.device)
        rank[order] = torch.arange(pixels, device=image.device)
        counts = torch.as_tensor(np.round(fractions * pixels), device=image.device)
        changed = (rank[None, :] < counts[:, None]).reshape(-1, 1, *heat.shape).to(image.dtype)
        start, end = (reference, image) if insert else (image, reference)
        batch = start * (1 - changed) + end * changed
        probabilities = adapter.probabilities(batch)[:, target].cpu().numpy()
        results.append((probabilities, float(np.trapezoid(probabilities, fractions))))
    (p, auc), (rp, rauc) = results
    return Curve(fractions, p, auc, rp, rauc)


def deletion_curve(model, x, attribution, target: int, steps: int = 28, baseline=None,
                   seed: int = 0, preprocess=None) -> Curve:
    """Replace the most relevant pixels first by ``baseline`` (zero by default); lower AUC =
    more faithful."""
    return _curve(model, x, attribution, target, steps, baseline, False, seed, preprocess)


def insertion_curve(model, x, attribution, target: int, steps: int = 28, baseline=None,
                    seed: int = 0, preprocess=None) -> Curve:
    """Start from ``baseline`` and reveal the most relevant pixels first; higher AUC = more
    faithful."""
    return _curve(model, x, attribution, target, steps, baseline, True, seed, preprocess)
