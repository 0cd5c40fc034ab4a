"""Global picks: a few images whose explanations together cover what the model attends to
over a whole set (SP-LIME, the submodular pick of Ribeiro et al. 2016, "Why should I trust
you?", section 4).

The explanation matrix ``W`` (images × features) is built from attribution maps
(``batch.explain_many``: each image's predicted class, or given ``targets``): the features
are grid×grid cells (14×14 by default: the resolution SpRAy clusters maps at, so picks and
clusters see the same detail), and ``W[i, j]`` is the share of image i's |map| mass in cell j
(shares, so that every image counts alike whatever its score's scale). As in
SP-LIME, where each explanation has K features, an explanation keeps only its ``top``
cells (the rest are 0): without that, dense maps such as integrated gradients' touch every
cell and any single image would "cover" everything. The global importance of a cell is
``I_j = sqrt(sum_i W_ij)`` and the coverage of a set V of images is
``c(V) = sum_j I_j · 1[some i in V has W_ij > 0]``. Coverage is submodular, so the greedy
pick (each step the image adding the most uncovered importance; ties, including after
everything is covered, go to the image with the largest ``sum_j W_ij I_j``) is within
1 − 1/e of the best pick of that budget.

>>> from xai_widgets.global_views import pick
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> picks = pick(model, images[:60], budget=4, method="saliency")
>>> len(picks.indices), picks.coverage <= picks.total, picks.importance.shape
(4, True, (14, 14))
>>> picks.coverage >= picks.coverage_of([0, 1, 2, 3])
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from xai_widgets.adapter import ModelAdapter
from xai_widgets.batch import explain_many
from xai_widgets.errors import InputError
from xai_widgets.global_views.surrogate import MIN_IMAGES, _batch, check_grid, whole


@dataclass(eq=False)
class Picks:
    """``indices``: the picked images, in pick order; ``coverage``: c(V) of the pick;
    ``total``: the coverage of all images (the sum of ``importance``); ``importance``:
    (grid, grid) I_j; ``maps``: (N,H,W) attribution maps; ``weights``: (N, grid·grid) the
    explanation matrix W; ``gains``: the coverage each pick added."""

    indices: list[int]
    coverage: float
    total: float
    importance: np.ndarray
    maps: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    gains: list[float]
    grid: int
    top: int

    @property
    def share(self) -> float:
        """The share of all importance the pick covers."""
        return self.coverage / self.total if self.total > 0 else 0.0

    def coverage_of(self, indices: Sequence[int]) -> float:
        """c(V) for any set of image indices (e.g. a random pick, to compare)."""
        covered = (self.weights[np.asarray(list(indices), dtype=int)] > 0).any(0)
        return float(self.importance.ravel()[covered].sum())

    def random_coverage(self, seed: int = 0) -> float:
        """The coverage of ``budget`` images drawn at random (without replacement)."""
        chosen = np.random.default_rng(seed).choice(len(self.weights), len(self.indices),
                                                    replace=False)
        return self.coverage_of(chosen)


def pick(model, images, budget: int = 8, method: str = "integrated_gradients", *,
         targets=None, maps=None, grid: int = 14, top: int = 5, n_steps: int = 32,
         batch_size: int = 256, preprocess: Callable | None = None,
         output: str = "auto") -> Picks:
    """Pick ``budget`` of (N,C,H,W) ``images`` (at least 10) whose ``method`` maps cover the
    most global importance. ``maps``: precomputed (N,H,W) maps (then ``model`` and ``images``
    may be None, and nothing is recomputed); ``targets``, ``n_steps``, ``batch_size``,
    ``preprocess`` and ``output`` as in ``explain_many``; ``grid``: cells a side;
    ``top``: cells each explanation keeps."""
    if maps is None:
        if model is None or images is None:
            raise InputError("pass a model and images, or precomputed maps=")
        adapter = ModelAdapter(model, preprocess=preprocess, output=output)
        x = _batch(adapter, images)
        maps = explain_many(model, x, targets=targets, method=method, n_steps=n_steps,
                            batch_size=batch_size, preprocess=preprocess, output=output)
    maps = _maps(maps, images)
    budget = whole(budget, 1, f"budget must be an int from 1 to the number of images "
                   f"({len(maps)})", len(maps))
    grid = check_grid(grid, maps.shape)
    top = whole(top, 1, f"top must be an int from 1 to {grid * grid} (cells per explanation)",
                grid * grid)
    weights = explanation_matrix(maps, grid, top)
    importance = np.sqrt(weights.sum(0))
    indices, gains = greedy(weights, importance, budget)
    covered = (weights[indices] > 0).any(0)
    return Picks(indices, float(importance[covered].sum()), float(importance.sum()),
                 importance.reshape(grid, grid), maps, weights, gains, grid, top)


def explanation_matrix(maps: np.ndarray, grid: int, top: int) -> np.ndarray:
    """(N, grid·grid): each image's share of |map| mass per cell, kept in its ``top`` cells."""
    mass = F.adaptive_avg_pool2d(torch.as_tensor(np.abs(maps), dtype=torch.float64)[:, None],
                                 grid).flatten(1).numpy()
    mass = mass / np.maximum(mass.sum(1, keepdims=True), 1e-300)
    order = np.argsort(-mass, axis=1, kind="stable")[:, :top]
    kept = np.zeros_like(mass)
    np.put_along_axis(kept, order, np.take_along_axis(mass, order, 1), 1)
    return kept


def greedy(weights: np.ndarray, importance: np.ndarray, budget: int) -> tuple[list, list]:
    """SP-LIME's greedy pick: the largest marginal coverage each step."""
    present = weights > 0
    soft = weights @ importance
    covered = np.zeros(weights.shape[1], dtype=bool)
    chosen, gains = [], []
    for _ in range(budget):
        gain = (present & ~covered) @ importance
        gain[chosen] = -np.inf
        best = int(np.lexsort((-soft, -gain))[0])
        chosen.append(best)
        gains.append(float(gain[best]))
        covered |= present[best]
    return chosen, gains


def _maps(maps, images) -> np.ndarray:
    maps = np.asarray(maps.detach().cpu() if isinstance(maps, torch.Tensor) else maps)
    if maps.ndim != 3 or not np.issubdtype(maps.dtype, np.number):
        raise InputError(f"maps must be (N,H,W) numbers, one map per image; got shape "
                         f"{maps.shape}")
    if images is not None and len(images) != len(maps):
        raise InputError(f"{len(maps)} maps for {len(images)} images: pass one map per image")
    if len(maps) < MIN_IMAGES:
        raise InputError(f"got {len(maps)} image(s); pick needs at least {MIN_IMAGES}")
    if not np.isfinite(maps).all():
        raise InputError("maps have NaN or infinite values: clean them (np.nan_to_num) first")
    return maps.astype(np.float64)
