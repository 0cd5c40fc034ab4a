"""Remove a shortcut a model learned: project the concept out (P-ClArC, no training), or
fine-tune a copy so it stops using it (A-ClArC, Right-for-the-Right-Reasons). The user's
model is never changed; every function returns a new module.

>>> from xai_widgets import concepts, correct
>>> from xai_widgets.zoo import load_clever_hans, load_demo
>>> demo = load_clever_hans()
>>> _, clean, labels, _ = load_demo()
>>> tag = concepts.Concept.from_region(demo.model, demo.images[demo.masks.flatten(1).any(1)][0],
...                                    demo.masks[demo.masks.flatten(1).any(1)][0], clean[:60])
>>> fixed = correct.project_out(demo.model, tag, strength=1.0)
>>> others = tag.insert(clean[labels != 7][:200])
>>> before = (demo.model(others).argmax(1) == 7).float().mean().item()
>>> after = (fixed(others).argmax(1) == 7).float().mean().item()
>>> before > 0.1, after < 0.03
(True, True)
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xai_widgets.adapter import ModelAdapter
from xai_widgets.concepts import Concept, _images, layer_module
from xai_widgets.correction_report import CorrectionReport, report
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.methods.gradients import seeded

METHODS = ("a_clarc", "rrr")


class ConceptEdit(nn.Module):
    """``layer`` followed by an edit of its output along a concept's unit ``cav``.

    ``mode="project"`` (P-ClArC): h − s·((h − clean_mean)·v)·v, the concept's component moved
    to where clean images have it. ``mode="shuffle"`` (A-ClArC's training step): each image's
    component set to clean + u·(artifact − clean) with u drawn uniformly from
    [−``spread``, 1 + ``spread``], so it tells nothing about the class and varies far more
    than the artifact makes it vary; the output is detached, so the layer and what only feeds
    it are not trained (a residual path around it still is). ``strength`` may be changed after
    construction.
    """

    def __init__(self, layer: nn.Module, concept: Concept, mode: str = "project",
                 strength: float = 1.0, spread: float = 3.0):
        super().__init__()
        self.layer, self.mode = layer, mode
        self.strength, self.spread = float(strength), float(spread)
        parameter = next(iter(layer.parameters()), None)
        dtype = parameter.dtype if parameter is not None else torch.float32
        self.register_buffer("cav", concept.cav.to(dtype))
        self.register_buffer("clean", concept.clean_mean.to(dtype))
        self.register_buffer("artifact", concept.artifact_mean.to(dtype))

    def forward(self, *args, **kwargs):
        out = self.layer(*args, **kwargs)
        flat = out.flatten(1)
        if self.mode == "shuffle":
            return self._shuffled(flat.detach()).view_as(out)
        # linear in the activations (a matrix product and a product with a constant), so
        # DeepLift and the model checks treat it as the linear map it is
        along = torch.matmul(flat - self.clean, self.cav)
        return (flat - self.strength * torch.outer(along, self.cav)).view_as(out)

    def _shuffled(self, flat: torch.Tensor) -> torch.Tensor:
        level = torch.rand(len(flat), 1, device=flat.device, dtype=flat.dtype)
        level = (1 + 2 * self.spread) * level - self.spread
        anchor = self.clean + level * (self.artifact - self.clean)
        along = ((flat - anchor) * self.cav).sum(1, keepdim=True)
        return flat - along * self.cav


def project_out(model: nn.Module, concept: Concept, strength: float = 1.0) -> nn.Module:
    """P-ClArC (Anders et al. 2022): a copy of ``model`` whose concept layer's output has
    ``strength`` (0 = unchanged, 1 = fully) of its component along the concept removed,
    relative to the clean images' mean. The copy's edit is ``edit_of(copy)``; changing its
    ``strength`` changes the copy's behaviour at once."""
    if not 0.0 <= float(strength) <= 2.0:
        raise InputError(f"strength must be in 0..2 (1 removes the concept); got {strength}")
    fixed = copy.deepcopy(model)
    _replace(fixed, concept.layer, ConceptEdit(layer_module(fixed, concept.layer), concept,
                                               "project", strength))
    return fixed


def edit_of(model: nn.Module) -> ConceptEdit | None:
    """The concept edit inside a model ``project_out`` returned (None for other models)."""
    return next((m for m in model.modules() if isinstance(m, ConceptEdit)), None)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(layer_module(model, parent_name) if parent_name else model, child, module)


LEARNING_RATES = {"a_clarc": 1e-2, "rrr": 5e-3}


def finetune(model: nn.Module, images, labels, *, concept: Concept | None = None,
             mask=None, method: str = "a_clarc", epochs: int = 10, lr: float | None = None,
             penalty: float = 0.03, spread: float = 3.0, batch_size: int = 32, seed: int = 0,
             preprocess: Callable | None = None,
             progress: Callable[[int, int], None] | str | None = "bar",
             cancelled: Callable[[], bool] | None = None) -> nn.Module:
    """A copy of ``model`` fine-tuned on (N,C,H,W) ``images`` and their ``labels`` to stop
    using a shortcut: Adam for ``epochs`` with its step decaying linearly from ``lr`` (default
    ``LEARNING_RATES[method]``) to 0, batches of ``batch_size`` drawn with ``seed`` (the same
    seed gives the same model). Batch-norm statistics and dropout stay as in evaluation, so a
    few hundred images cannot disturb them.

    ``method="a_clarc"`` (after Anders et al. 2022) needs ``concept``: during training each
    image's component along the concept at its layer is drawn at random, uniformly from
    ``spread`` artifact-gaps below the clean images' level to ``spread`` gaps above the
    artifact's (``ConceptEdit``'s shuffle), so it tells nothing about the class, and only the
    layers after the concept's are trained (on biased data, training earlier ones re-learns
    the shortcut outside the concept's direction). The wide draw matters: between the two
    levels only (``spread=0``) the copy learns to tolerate the artifact, not to ignore it (on
    the Clever-Hans demo a third of the relevance stays on the tag, against 4-13 % with 3).
    What the concept's direction misses of the artifact stays.

    ``method="rrr"`` (Right for the Right Reasons, Ross et al. 2017) needs ``mask`` (H,W,
    C,H,W or N,C,H,W bool; default: the concept's region) and trains every layer: cross-entropy
    plus ``penalty`` × the squared input gradient of the summed log-probabilities inside the
    mask (summed over pixels, averaged over images). That term is large (tens per image for a
    shortcut the model uses) while cross-entropy is small, so ``penalty`` is small: once the
    penalty dominates, Adam (scale-invariant) only minimises it and accuracy collapses
    (on the Clever-Hans demo: 0.01 to 0.1 work alike, 1 costs a point, 10 about 30 points).

    ``progress``: ``"bar"`` (a tqdm bar), None, or a callable ``(step, steps)``; ``cancelled``:
    a callable checked every step that stops training with ``Cancelled``.
    """
    if method not in METHODS:
        raise InputError(f"unknown correction method {method!r}: choose one of "
                         f"{', '.join(METHODS)} (or correct.project_out, which needs no training)")
    if preprocess is None and concept is not None:
        preprocess = concept.preprocess
    adapter = ModelAdapter(model, preprocess=preprocess)
    images = _images(adapter, images, "images")
    labels = torch.as_tensor(np.asarray(labels)).long()
    if len(labels) != len(images):
        raise InputError(f"{len(images)} images but {len(labels)} labels: pass one label each")
    if method == "a_clarc" and concept is None:
        raise InputError("a_clarc needs concept=: the Concept of the artifact")
    masks = _masks(mask, concept, images) if method == "rrr" else None
    fixed = copy.deepcopy(model).eval()
    if method == "a_clarc":
        layer = layer_module(fixed, concept.layer)
        _replace(fixed, concept.layer, ConceptEdit(layer, concept, "shuffle", spread=spread))
    step_fn = _rrr_loss if method == "rrr" else _plain_loss
    forward = ModelAdapter(fixed, preprocess=adapter.preprocess).forward_module
    device = adapter.device
    steps = epochs * -(-len(images) // batch_size)
    report_step = _progress(progress, steps)
    lr = LEARNING_RATES[method] if lr is None else lr
    with seeded(seed, device), torch.enable_grad():
        optimiser = torch.optim.Adam(
            [p for p in fixed.parameters() if p.requires_grad], lr=lr)
        step = 0
        for _ in range(epochs):
            order = torch.randperm(len(images))
            for chunk in order.split(batch_size):
                if cancelled is not None and cancelled():
                    raise Cancelled()
                x, y = images[chunk].to(device), labels[chunk].to(device)
                m = masks[chunk].to(device) if masks is not None else None
                loss = step_fn(forward, x, y, m, penalty)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                for group in optimiser.param_groups:
                    group["lr"] = lr * (1 - step / steps)
                optimiser.step()
                step += 1
                report_step(step)
    if method == "a_clarc":
        _replace(fixed, concept.layer, layer)
    for parameter in fixed.parameters():
        parameter.grad = None
    return fixed


def _plain_loss(forward, x, y, _mask, _penalty) -> torch.Tensor:
    return F.cross_entropy(forward(x), y)


def _rrr_loss(forward, x, y, mask, penalty) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    logits = forward(x)
    log_probabilities = F.log_softmax(logits, dim=1).sum()
    (gradient,) = torch.autograd.grad(log_probabilities, x, create_graph=True)
    return F.cross_entropy(logits, y) + penalty * (gradient * mask).pow(2).sum() / len(x)


def _masks(mask, concept: Concept | None, images: torch.Tensor) -> torch.Tensor:
    if mask is None:
        if concept is None or not concept.region.any():
            raise InputError("rrr needs mask= (bool, H,W or N,C,H,W) marking the artifact's "
                             "pixels, or a concept with a fixed region")
        mask = concept.region
    mask = torch.as_tensor(np.asarray(mask)).bool()
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim == 3:
        mask = mask[None]
    try:
        return mask.expand_as(images).float()
    except RuntimeError as error:
        raise InputError(f"the mask is {tuple(mask.shape)} but the images are "
                         f"{tuple(images.shape)}: pass a mask of the images' size") from error


def _progress(progress, steps: int) -> Callable[[int], None]:
    if callable(progress):
        return lambda step: progress(step, steps)
    if progress == "bar":
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="fine-tuning", leave=False)

        def advance(step: int) -> None:
            bar.update(1)
            if step == steps:
                bar.close()
        return advance
    return lambda step: None


__all__ = ["LEARNING_RATES", "METHODS", "ConceptEdit", "CorrectionReport", "edit_of", "finetune",
           "project_out", "report"]
