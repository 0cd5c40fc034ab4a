"""Concepts: a direction in one layer's activations that separates images showing something
(a corner tag, stripes) from images without it, and TCAV: does a class's score rise along it?

>>> import torch
>>> from xai_widgets import concepts
>>> from xai_widgets.zoo import load_clever_hans
>>> demo = load_clever_hans()
>>> sevens = demo.images[demo.labels == 7]
>>> tagged = demo.masks[demo.labels == 7].flatten(1).any(1)
>>> tag = concepts.Concept.from_images(demo.model, sevens[tagged][:40], sevens[~tagged][:40])
>>> tag.layer, tag.accuracy >= 0.9, tuple(tag.region.nonzero()[0].tolist())
('conv2', True, (0, 1, 1))
>>> concepts.tcav(demo.model, demo.images[demo.labels == 7][:50], tag, target=7).significant
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import InputError
from xai_widgets.tcav import TCAVResult, tcav

MIN_IMAGES = 5
MIN_ACCURACY = 0.7


@dataclass(eq=False)
class Concept:
    """A concept at one ``layer`` of a model, learned from ``positives`` (images showing it)
    and ``negatives`` (images without it), both (N,C,H,W) in image space.

    ``cav``: the unit direction from the negatives' mean activation to the positives' (a
    pattern CAV, what corrections remove); ``clean_mean`` and ``artifact_mean``: those means;
    ``accuracy``: held-out accuracy of a linear classifier telling positives from
    negatives (3-fold; 0.5 is chance); ``region`` (C,H,W bool) and ``patch``: where in the
    image positives differ from negatives and what they show there (``insert`` pastes it), for
    artifacts at a fixed
    place such as a tag or a watermark; empty when no pixel differs consistently.
    """

    layer: str
    cav: torch.Tensor
    clean_mean: torch.Tensor
    artifact_mean: torch.Tensor
    accuracy: float
    positives: torch.Tensor = field(repr=False)
    negatives: torch.Tensor = field(repr=False)
    region: torch.Tensor = field(repr=False)
    patch: torch.Tensor = field(repr=False)
    preprocess: Callable | None = field(default=None, repr=False)
    name: str = "concept"

    @classmethod
    def from_images(cls, model: nn.Module, positives, negatives, layer: str | None = None, *,
                    paired: bool | None = None, preprocess: Callable | None = None,
                    name: str = "concept", min_accuracy: float = MIN_ACCURACY,
                    seed: int = 0) -> Concept:
        """Learn the concept at ``layer`` (default: the last convolutional block,
        ``default_layer``).

        When the positives differ from the negatives at a fixed place (a tag, a watermark:
        ``region``), the direction is learned as ``from_region`` learns it, from the
        negatives with the positives' ``patch`` pasted in against the negatives as they are:
        whatever else differs between the two groups (digit shapes, backgrounds) stays out
        of it. ``paired=False`` learns from the two groups as given. Raises ``InputError`` for
        fewer than 5 images a side, images of another shape than the model takes, an unknown
        layer, or groups the layer cannot tell apart (held-out accuracy below
        ``min_accuracy``)."""
        adapter = ModelAdapter(model, preprocess=preprocess)
        positives, negatives = _images(adapter, positives, "positives"), _images(
            adapter, negatives, "negatives")
        if positives.shape[1:] != negatives.shape[1:]:
            raise InputError(f"positives are {tuple(positives.shape[1:])} images but negatives "
                             f"are {tuple(negatives.shape[1:])}: pass images of one size")
        layer = layer or default_layer(model)
        accuracy = separability(adapter, positives, negatives, layer, min_accuracy, seed)
        region, patch = localize(positives, negatives)
        if paired is None:
            paired = bool(region.any())
        if paired and not region.any():
            raise InputError("paired=True needs positives that differ from the negatives at "
                             "the same pixels (a tag, a watermark); none were found: pass "
                             "paired=False")
        if paired:
            positives = torch.where(region, patch, negatives)
        return cls._learn(adapter, positives, negatives, layer, accuracy, region, patch, name,
                          preprocess)

    @classmethod
    def from_region(cls, model: nn.Module, image, mask, others, layer: str | None = None, *,
                    preprocess: Callable | None = None, name: str = "concept",
                    min_accuracy: float = MIN_ACCURACY, seed: int = 0) -> Concept:
        """The concept of what ``image`` shows inside ``mask`` (H,W or C,H,W bool): pasted onto
        each of ``others`` for the positives (artifact insertion); ``others`` as they are
        are the negatives."""
        adapter = ModelAdapter(model, preprocess=preprocess)
        others = _images(adapter, others, "others")
        picture = _images(adapter, torch.as_tensor(np.asarray(image))[None]
                          if np.ndim(image) == 3 else image, "image")[0]
        region = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
        region = region.expand_as(picture) if region.ndim == 2 else region
        if region.shape != picture.shape:
            raise InputError(f"the mask is {tuple(region.shape)} but the image is "
                             f"{tuple(picture.shape)}: paint the mask on the image's pixels")
        if not region.any():
            raise InputError("the mask is empty: paint the region that shows the concept")
        positives = torch.where(region, picture, others)
        layer = layer or default_layer(model)
        accuracy = separability(adapter, positives, others, layer, min_accuracy, seed)
        patch = torch.where(region, picture, torch.zeros_like(picture))
        return cls._learn(adapter, positives, others, layer, accuracy, region, patch, name,
                          preprocess)

    @classmethod
    def _learn(cls, adapter: ModelAdapter, positives: torch.Tensor, negatives: torch.Tensor,
               layer: str, accuracy: float, region: torch.Tensor, patch: torch.Tensor,
               name: str, preprocess: Callable | None) -> Concept:
        clean_mean = activations(adapter, negatives, layer).mean(0)
        artifact_mean = activations(adapter, positives, layer).mean(0)
        direction = artifact_mean - clean_mean
        return cls(layer, direction / direction.norm().clamp_min(1e-12), clean_mean,
                   artifact_mean, accuracy, positives.cpu(), negatives.cpu(), region, patch,
                   preprocess, name)

    def relearn(self, model: nn.Module) -> Concept:
        """The same images, layer and region, learned on ``model`` (e.g. a corrected copy);
        ``accuracy`` is measured anew and not checked."""
        adapter = ModelAdapter(model, preprocess=self.preprocess)
        accuracy = separability(adapter, self.positives, self.negatives, self.layer, 0.0)
        return Concept._learn(adapter, self.positives, self.negatives, self.layer, accuracy,
                              self.region, self.patch, self.name, self.preprocess)

    def insert(self, images: torch.Tensor) -> torch.Tensor:
        """Copies of (N,C,H,W) ``images`` with the concept's patch pasted into its region."""
        if not self.region.any():
            raise InputError(f"the concept {self.name!r} has no fixed region in the image (its "
                             "positives do not differ from its negatives at the same pixels): "
                             "pass images that carry the artifact instead")
        images = torch.as_tensor(images).float()
        return torch.where(self.region.to(images.device), self.patch.to(images.device), images)

    def with_name(self, name: str) -> Concept:
        return replace(self, name=name)

    def tcav(self, model: nn.Module, images, target: int, **options) -> TCAVResult:
        """``tcav(model, images, self, target)``."""
        return tcav(model, images, self, target, **options)


def _images(adapter: ModelAdapter, images, what: str) -> torch.Tensor:
    try:
        batch = torch.as_tensor(np.asarray(images)) if not isinstance(
            images, torch.Tensor) else images
    except (TypeError, ValueError) as error:
        raise InputError(f"{what} must be an (N,C,H,W) array or tensor of images") from error
    if batch.ndim == 3:  # (N,H,W) grey images
        batch = batch[:, None]
    if batch.ndim != 4:
        raise InputError(f"{what} must be (N,C,H,W) images; got shape {tuple(batch.shape)}")
    if len(batch) < MIN_IMAGES and what != "image":
        raise InputError(f"a concept needs at least {MIN_IMAGES} {what}; got {len(batch)}: "
                         "select more images")
    batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
    expected = adapter.expected_channels
    if expected is not None and batch.shape[1] != expected:
        raise InputError(f"{what} have {batch.shape[1]} channel(s) but the model's first conv "
                         f"layer expects {expected}: pass (N,{expected},H,W) images")
    return batch


def default_layer(model: nn.Module) -> str:
    """The last convolutional block: the top-level child of ``model`` holding its last Conv2d
    (a ResNet's ``layer4``; a flat CNN's last Conv2d itself).

    >>> from xai_widgets.zoo import MnistCNN
    >>> default_layer(MnistCNN())
    'conv2'
    """
    holding = [name for name, child in model.named_children()
               if any(isinstance(m, nn.Conv2d) for m in child.modules())]
    if not holding:
        raise InputError("the model has no Conv2d layer, so there is no default concept layer: "
                         f"pass layer= one of {layer_names(model)[:12]}")
    return holding[-1]


def layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def layer_module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not name or name not in modules:
        near = [n for n in layer_names(model) if name and name.split(".")[-1] in n][:8]
        raise InputError(f"the model has no layer {name!r}; choose one of "
                         f"{near or layer_names(model)[:12]} (model.named_modules() lists all)")
    return modules[name]


def activations(adapter: ModelAdapter, images: torch.Tensor, layer: str,
                batch_size: int = 128) -> torch.Tensor:
    """(N, D) flattened outputs of ``layer`` for image-space ``images``, without gradients."""
    module, kept = layer_module(adapter.model, layer), []
    handle = module.register_forward_hook(lambda _m, _i, out: kept.append(out.flatten(1).cpu()))
    try:
        for chunk in images.split(batch_size):
            adapter.logits(chunk.to(adapter.device))
    finally:
        handle.remove()
    return torch.cat(kept).double()


def separability(adapter: ModelAdapter, positives: torch.Tensor, negatives: torch.Tensor,
                 layer: str, min_accuracy: float, seed: int = 0) -> float:
    """Held-out accuracy of telling the two groups apart at ``layer``; an ``InputError``
    below ``min_accuracy``."""
    accuracy = held_out_accuracy(activations(adapter, positives, layer),
                                 activations(adapter, negatives, layer), seed)
    if accuracy < min_accuracy:
        raise InputError(
            f"layer {layer!r} cannot tell the positives from the negatives: held-out "
            f"accuracy {accuracy:.0%} (50 % is chance). Choose images that differ more "
            "clearly in the concept, more images, or another layer (layer=...); "
            "min_accuracy=0 accepts it anyway")
    return accuracy


def held_out_accuracy(positives: torch.Tensor, negatives: torch.Tensor, seed: int = 0,
                      folds: int = 3) -> float:
    """Mean held-out accuracy of a logistic regression telling positives from negatives
    (stratified ``folds``-fold cross-validation on standardised activations)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = torch.cat([positives, negatives]).numpy()
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    folds = min(folds, len(positives), len(negatives))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(classifier, features, labels, cv=split).mean())


def localize(positives: torch.Tensor, negatives: torch.Tensor,
             share: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels where the positives' mean differs from the negatives' by more than ``share`` of
    the largest difference (and by at least 0.2), and the positives' mean there."""
    mean_pos, mean_neg = positives.mean(0), negatives.mean(0)
    difference = (mean_pos - mean_neg).abs()
    largest = float(difference.max())
    region = (difference > share * largest) & (difference >= 0.2)
    return region, torch.where(region, mean_pos, torch.zeros_like(mean_pos))


__all__ = ["Concept", "TCAVResult", "activations", "default_layer", "layer_module", "tcav"]
