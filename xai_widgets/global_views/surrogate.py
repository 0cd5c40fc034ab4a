"""A surrogate decision tree: a shallow tree trained to mimic the network's predictions (not
the labels) on interpretable features, each drawn as the image region it tests.

``features="parts"`` (the default) are *regional class concepts*: for every class the model
predicts and each of 3×3 overlapping image regions (top-left … bottom-right, half the side
each), the model's last-conv activations there (rectified and max-pooled to at most 4×4
cells, as its next ReLU and pooling see them) projected on the direction from the other
classes' mean to that class's mean there: a pattern CAV, as ``concepts.Concept`` learns one,
restricted to a region. The value reads "this region looks, to the model, like class c's":
0 is a typical image of another class there, 1 a typical c. Why: cell brightness
(``"grid"``, 7×7 means) gives a depth-6 tree ~0.6 fidelity on the demo digits, because no
single pixel cell says much about a digit; one regional concept says a lot, so a few splits
suffice and each split still names a place and a class. The training images are also
``augment``-ed (small random rotations, scalings and shifts, each labelled by the model
itself: the tree mimics the model, so the model can label any image), which fills in the
model's decision regions a 700-image sample leaves sparse. ``features=[concept, ...]`` uses
``concepts.Concept`` objects (the value is 0 at the concept's clean mean, 1 at its artifact
mean). Fidelity is measured on held-out images (a seeded split), never on trained-on ones.

>>> from xai_widgets.global_views import surrogate_tree
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> tree = surrogate_tree(model, images[:200], max_depth=3, augment=2)
>>> tree.depth, tree.n_leaves <= 8, 0 <= tree.fidelity <= 1, tree.feature_names[0]
(3, True, True, 'top-left like 0')
>>> tree.render().count('class="xw-node"') == tree.tree.tree_.node_count
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xai_widgets.adapter import ModelAdapter, to_nchw
from xai_widgets.concepts import Concept, activations, default_layer, layer_module
from xai_widgets.errors import InputError

MIN_IMAGES = 10
FEATURES = ("parts", "grid")


@dataclass(eq=False)
class SurrogateTree:
    """A fitted surrogate: ``tree`` (scikit-learn), ``features`` ("parts", "grid" or
    "concepts") and their ``feature_names``; ``fidelity``: the share of held-out images on
    which the tree predicts what the network predicts; ``train_fidelity`` the same on the
    training split's own images (augmented copies excluded); ``test_indices``: the held-out
    images."""

    tree: Any
    features: str
    feature_names: list[str] = field(repr=False)
    fidelity: float
    train_fidelity: float
    depth: int
    n_leaves: int
    classes: list[str] = field(repr=False)
    n_train: int
    n_test: int
    n_augmented: int
    test_indices: np.ndarray = field(repr=False)
    featurizer: Any = field(repr=False)
    adapter: ModelAdapter = field(repr=False)
    thumbnails: dict = field(repr=False)

    def predict(self, images) -> np.ndarray:
        """The tree's class index for each of (N,C,H,W) ``images``."""
        x = _batch(self.adapter, images, least=1)
        return self.tree.predict(self.featurizer.transform(self.adapter, x))

    def render(self, size: int = 40) -> str:
        """The tree as HTML with an inline SVG, left to right: each node a thumbnail with the
        region it tests outlined (the mean image of the class it asks about), the question and
        "no"/"yes" branches; each leaf the mean image of its class, the class and its share.
        Text and lines use ``currentColor``, so it reads in light and dark themes."""
        from xai_widgets.global_views.tree_drawing import draw_tree

        return draw_tree(self, size)


def surrogate_tree(model, images, features: str | Sequence[Concept] = "parts", grid: int = 7,
                   max_depth: int = 4, **options) -> SurrogateTree:
    """Fit a tree of at most ``max_depth`` levels that mimics ``model`` on ``images``
    (N,C,H,W in 0..1, at least 10). ``grid`` sets the cells of ``features="grid"``. Options:
    ``augment`` (model-labelled perturbed copies per training image; default 10, fewer when
    they would pass 512 MB), ``test_size`` (held-out share, 0.3), ``seed`` (split, copies
    and tree, 0), ``layer`` (the parts' layer, default ``concepts.default_layer``),
    ``classes`` (names), ``preprocess`` and ``output`` as in ``explain()``."""
    return surrogate_trees(model, images, (max_depth,), features, grid, **options)[max_depth]


def fidelity_by_depth(model, images, depths: Iterable[int] = range(2, 9),
                      features: str | Sequence[Concept] = "parts", grid: int = 7,
                      **options) -> dict[int, float]:
    """``{depth: held-out fidelity}``, the features computed once for all depths."""
    trees = surrogate_trees(model, images, depths, features, grid, **options)
    return {depth: tree.fidelity for depth, tree in trees.items()}


def surrogate_trees(model, images, depths: Iterable[int] = range(2, 9),
                    features: str | Sequence[Concept] = "parts", grid: int = 7, *,
                    augment: int | None = None, test_size: float = 0.3, seed: int = 0,
                    layer: str | None = None, classes: Sequence[str] | None = None,
                    preprocess=None, output: str = "auto") -> dict[int, SurrogateTree]:
    """``{depth: SurrogateTree}`` over one split and one set of features."""
    from sklearn.tree import DecisionTreeClassifier

    depths = [whole(d, 1, "max_depth must be an int of at least 1") for d in depths]
    if not 0 < test_size < 1:
        raise InputError(f"test_size must lie strictly between 0 and 1, got {test_size}")
    adapter = ModelAdapter(model, preprocess=preprocess, output=output)
    x = _batch(adapter, images)
    featurizer = _featurizer(features, grid, layer, x, adapter)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = min(len(x) - 2, max(1, round(test_size * len(x))))
    test, train = order[:n_test], order[n_test:]
    if augment is None:  # 10 copies, fewer where they would pass 2**27 floats (512 MB)
        augment = min(10, max(0, 2**27 // x[train].numel() - 1))
    augment = whole(augment, 0, "augment must be an int ≥ 0 (copies per training image)")
    x_train = torch.cat([x[train], perturb(x[train], augment, seed)])
    y_train, y_test = predictions(adapter, x_train), predictions(adapter, x[test])
    if len(np.unique(y_train)) < 2:
        raise InputError("the model predicts one class for every training image: a tree has "
                         "nothing to tell apart; pass images of several classes")
    names = list(classes if classes is not None else adapter.classes
                 or [str(c) for c in range(adapter.n_classes)])
    if len(names) != adapter.n_classes:
        raise InputError(f"{len(names)} class names for a model of {adapter.n_classes} classes")
    featurizer.fit(adapter, x_train, y_train, names)
    f_train, f_test = featurizer.transform(adapter, x_train), featurizer.transform(adapter, x[test])
    thumbnails = {"mean": x[train].mean(0)} | featurizer.thumbnails
    for c in np.unique(y_train):  # each class's mean image (its own images, else the copies)
        own = x_train[: len(train)][y_train[: len(train)] == c]
        thumbnails[int(c)] = (own if len(own) else x_train[y_train == c]).mean(0)
    trees = {}
    for depth in depths:
        tree = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(f_train, y_train)
        own = tree.predict(f_train[: len(train)]) == y_train[: len(train)]
        trees[depth] = SurrogateTree(
            tree, featurizer.kind, featurizer.names, float(np.mean(tree.predict(f_test) == y_test)),
            float(np.mean(own)), int(tree.get_depth()), int(tree.get_n_leaves()), names,
            len(train), n_test, len(x_train) - len(train), test, featurizer, adapter, thumbnails)
    return trees


# -- inputs ------------------------------------------------------------------------------
def _batch(adapter: ModelAdapter, images, least: int = MIN_IMAGES) -> torch.Tensor:
    """(N,C,H,W) float images on the model's device, checked."""
    channels = adapter.expected_channels
    try:
        x = to_nchw(images, channels or 3)
    except (TypeError, ValueError, RuntimeError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError("images must be an (N,C,H,W) or (N,H,W) array or tensor of numbers "
                         f"({error})") from None
    if len(x) < least:
        raise InputError(f"got {len(x)} image(s); pass at least {least} (N,C,H,W) images")
    if channels is not None and x.shape[1] != channels:
        raise InputError(f"the images have {x.shape[1]} channel(s) but the model's first conv "
                         f"layer expects {channels}: pass (N,{channels},H,W) images")
    if min(x.shape[2:]) < 4:
        raise InputError(f"images of {tuple(x.shape[2:])} pixels are too small: at least 4×4")
    return x.to(adapter.device)


def whole(value, least: int, message: str, most: float = math.inf) -> int:
    """``value`` as an int in least..most, else an ``InputError`` with ``message``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
            least <= value <= most):
        raise InputError(f"{message}, got {value!r}")
    return int(value)


def check_grid(grid, shape: Sequence[int]) -> int:
    """``grid`` cells a side: an int from 2 up to cells of at least 2×2 pixels."""
    most = min(shape[-2:]) // 2
    return whole(grid, 2, f"grid does not divide {tuple(shape[-2:])} images sensibly: pass an "
                 f"int from 2 to {most} (cells of at least 2×2 pixels), e.g. 7 for 28×28 "
                 "digits", most)


def perturb(x: torch.Tensor, copies: int, seed: int = 0) -> torch.Tensor:
    """``copies`` random variants of each image: rotated ±10°, scaled ±10 %, sheared ±0.1 and
    shifted ±8 % of the side (seeded; edges repeat the border pixels)."""
    generator, source = torch.Generator().manual_seed(seed), x.repeat(copies, 1, 1, 1)
    n = len(source)
    if n == 0:
        return source

    def uniform(scale):
        return (torch.rand(n, generator=generator) * 2 - 1) * scale

    angle, scale, shear = uniform(math.pi / 18), 1 + uniform(0.1), uniform(0.1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = angle.cos() / scale, angle.cos() / scale
    theta[:, 0, 1], theta[:, 1, 0] = -angle.sin() / scale + shear, angle.sin() / scale
    theta[:, :, 2] = torch.stack([uniform(0.16), uniform(0.16)], 1)
    grid = F.affine_grid(theta.to(x), list(source.shape), align_corners=False)
    return F.grid_sample(source, grid, padding_mode="border", align_corners=False)


def predictions(adapter: ModelAdapter, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    return torch.cat([adapter.logits(c).argmax(1).cpu() for c in x.split(batch_size)]).numpy()


# -- features ----------------------------------------------------------------------------
def _featurizer(features, grid, layer, x: torch.Tensor, adapter: ModelAdapter):
    if isinstance(features, str) and features in FEATURES:
        if features == "grid":
            return GridFeatures(check_grid(grid, x.shape))
        layer = layer or default_layer(adapter.model)
        layer_module(adapter.model, layer)  # an unknown layer raises here
        return PartFeatures(layer)
    if isinstance(features, str):
        raise InputError(f"unknown features {features!r}: choose one of {', '.join(FEATURES)} "
                         "or pass a list of concepts.Concept")
    if not isinstance(features, (list, tuple)) or not features or not all(
            isinstance(c, Concept) for c in features):
        raise InputError("features must be 'parts', 'grid' or a non-empty list of Concept")
    return ConceptFeatures(list(features))


class _Features:
    """Features: ``fit`` on the training images and the model's classes for them,
    ``transform`` images to an (N, features) array, ``region(j)``: feature j's box (top,
    bottom, left, right as fractions of the image) and the key of its thumbnail."""

    kind, thumbnails = "", {}

    def fit(self, adapter, x, y, names):
        return self


class GridFeatures(_Features):
    """Mean brightness (over channels) of each of grid×grid cells."""

    kind = "grid"

    def __init__(self, grid: int):
        self.grid = grid
        self.names = [f"cell ({r},{c}) brightness" for r in range(grid) for c in range(grid)]

    def transform(self, adapter, x):
        return F.adaptive_avg_pool2d(x.mean(1, keepdim=True), self.grid).flatten(1).cpu().numpy()

    def region(self, j: int):
        r, c = divmod(j, self.grid)
        return (r / self.grid, (r + 1) / self.grid, c / self.grid, (c + 1) / self.grid), "mean"


class PartFeatures(_Features):
    """Regional class concepts at ``layer`` (see the module's docstring)."""

    kind = "parts"

    def __init__(self, layer: str):
        self.layer = layer

    def maps(self, adapter: ModelAdapter, x: torch.Tensor) -> torch.Tensor:
        """(N,C,h,w) activations at the layer, rectified and max-pooled to at most 4×4."""
        kept, module = [], layer_module(adapter.model, self.layer)

        def keep(_module, _inputs, out):
            out = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(out, torch.Tensor) or out.ndim != 4:
                raise InputError(f"layer {self.layer!r} does not output (N,C,h,w) maps: pass "
                                 "layer= a convolutional block, or features='grid'")
            side = (min(out.shape[2], 4), min(out.shape[3], 4))
            kept.append(F.adaptive_max_pool2d(out.clamp_min(0), side).cpu())

        handle = module.register_forward_hook(keep)
        try:
            for chunk in x.split(512):
                adapter.logits(chunk)
        finally:
            handle.remove()
        return torch.cat(kept)

    def fit(self, adapter, x, y, names):
        maps = self.maps(adapter, x)
        self.side, self.classes = tuple(maps.shape[2:]), [int(c) for c in np.unique(y)]
        onehot = torch.as_tensor(y[:, None] == np.array(self.classes)[None], dtype=torch.float64)
        counts = onehot.sum(0)[:, None]
        self.windows, self.directions, self.scales = _windows(self.side), [], []
        for rows, cols in self.windows:
            a = maps[:, :, rows, cols].flatten(1).double()
            sums = onehot.T @ a
            own, other = sums / counts, (a.sum(0) - sums) / (len(a) - counts)
            self.directions.append(own - other)
            self.scales.append(((other * (own - other)).sum(1), (own * (own - other)).sum(1)))
        self.names = [f"{_where(w, self.side)} like {names[c]}" for w in self.windows
                      for c in self.classes]
        return self

    def transform(self, adapter, x):
        maps, out = self.maps(adapter, x), []
        for (rows, cols), direction, (low, high) in zip(self.windows, self.directions,
                                                         self.scales, strict=True):
            projection = maps[:, :, rows, cols].flatten(1).double() @ direction.T
            out.append((projection - low) / (high - low).clamp_min(1e-12))
        return torch.cat(out, 1).numpy()

    def region(self, j: int):
        (rows, cols), c = self.windows[j // len(self.classes)], j % len(self.classes)
        h, w = self.side
        return (rows.start / h, rows.stop / h, cols.start / w, cols.stop / w), self.classes[c]


def _windows(side: tuple[int, int]) -> list[tuple[slice, slice]]:
    def starts(n):
        size = max(1, round(n / 2))
        return [slice(s, s + size) for s in sorted({round(t) for t in np.linspace(0, n - size, 3)})]

    return [(r, c) for r in starts(side[0]) for c in starts(side[1])]


def _where(window: tuple[slice, slice], side: tuple[int, int]) -> str:
    def word(s, n, words):
        return words[0 if s.start == 0 and s.stop < n else 2 if s.stop == n and s.start > 0 else 1]

    row = word(window[0], side[0], ("top", "middle", "bottom"))
    col = word(window[1], side[1], ("left", "centre", "right"))
    return {"middle-centre": "centre", "top-centre": "top", "bottom-centre": "bottom",
            "middle-left": "left", "middle-right": "right"}.get(f"{row}-{col}", f"{row}-{col}")


class ConceptFeatures(_Features):
    """One feature per ``Concept``: its level, 0 at the clean mean and 1 at the artifact's."""

    kind = "concepts"

    def __init__(self, concepts: list[Concept]):
        self.concepts, self.names = concepts, [c.name for c in concepts]
        self.thumbnails = {("concept", k): c.positives.mean(0) for k, c in enumerate(concepts)}

    def transform(self, adapter, x):
        out = []
        for c in self.concepts:
            a, cav = activations(adapter, x, c.layer), c.cav.double().cpu()
            clean, artifact = c.clean_mean.double().cpu(), c.artifact_mean.double().cpu()
            out.append(((a - clean) @ cav / ((artifact - clean) @ cav).clamp_min(1e-12)).numpy())
        return np.stack(out, 1)

    def region(self, j: int):  # the box around the concept's region, else the whole image
        mask = self.concepts[j].region.reshape(-1, *self.concepts[j].region.shape[-2:]).any(0)
        if not mask.any():
            return (0.0, 1.0, 0.0, 1.0), ("concept", j)
        rows, cols, (h, w) = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0], mask.shape
        box = int(rows[0]) / h, (int(rows[-1]) + 1) / h, int(cols[0]) / w, (int(cols[-1]) + 1) / w
        return box, ("concept", j)
