"""Which training images made the model decide this? TracIn influence on top of captum.

``proponents(model, x, train_images, train_labels, k)`` ranks the training set by its
influence on the model's prediction for ``x`` (its predicted class unless ``target=``):
``proponents`` are the ``k`` training images whose gradient steps most helped that
prediction, ``opponents`` the ``k`` that most hurt it, ``scores`` the influence of all N.

The method is captum's ``TracInCPFast`` (TracIn restricted to the last linear layer): the
score of training image z on x is Σ_checkpoints lr · ∇L(x)·∇L(z), the gradients taken with
respect to the last layer's weights, which factor into (loss gradient at the logits) ×
(the layer's input). That lets ``Influencer`` cache two small matrices per checkpoint for
the whole training set once; every query is then one forward pass and a matrix product,
whereas full-model TracIn would have to store N × (all parameters) per checkpoint.

``normalize=True`` (the default) divides each training image's term by the norm of its
gradient: a renormalised influence (Hammoudeh & Lowd 2022; RelatIF, Barshan et al. 2020)
that ranks training images by how *aligned* their gradient is with the query's, not by how
large it is. Raw TracIn favours the training images the model still gets wrong (large
gradients); on the Clever-Hans demo 0.21 of the raw top-10 proponents of a tagged digit
called 7 are tagged training 7s, 0.85 of the renormalised ones. ``normalize=False`` gives
captum's scores exactly.

``checkpoints``: state_dicts (or paths to them) saved during training; without them the
current weights are the single checkpoint, and the score is plain gradient similarity
(TracIn at the end of training only). The user's model is never modified: checkpoints load
into a deep copy.

>>> import torch
>>> from xai_widgets.influence import proponents
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
>>> images, labels = torch.rand(20, 1, 2, 2), torch.arange(20) % 2
>>> result = proponents(model, images[0], images, labels, k=3)
>>> result.proponents.shape, result.scores.shape
(torch.Size([3]), torch.Size([20]))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from xai_widgets.errors import Cancelled, InputError


class Influence(NamedTuple):
    """``proponents``/``opponents``: indices into the training set, strongest first;
    ``scores``: the influence of every training image (N,); ``target``: the class explained."""

    proponents: torch.Tensor
    opponents: torch.Tensor
    scores: torch.Tensor
    target: int


def _as_tensor(value, name: str) -> torch.Tensor:
    if value is None:
        raise InputError(f"{name} is missing: pass one label per training image")
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _load_checkpoint(model: nn.Module, checkpoint, index: int) -> dict:
    """The checkpoint as a state_dict, after checking that it loads into ``model``."""
    if isinstance(checkpoint, (str, Path)):
        if not Path(checkpoint).is_file():
            raise InputError(f"checkpoint {index}: no file {str(checkpoint)!r}")
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise InputError(f"checkpoint {index} is a {type(checkpoint).__name__}: pass "
                         "state_dicts (model.state_dict()) or paths to saved state_dicts")
    try:
        model.load_state_dict(checkpoint)
    except RuntimeError as error:
        problem = " ".join(str(error).split())
        raise InputError(f"checkpoint {index} does not fit the model: {problem}") from None
    return {key: value.detach().clone() for key, value in checkpoint.items()}


def _last_linear(model: nn.Module, layer: str | None) -> nn.Module:
    if layer is not None:
        modules = dict(model.named_modules())
        if layer not in modules:
            raise InputError(f"no layer {layer!r} in the model")
        return modules[layer]
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise InputError("TracIn needs the model to end in an nn.Linear layer (pass layer=)")
    return linears[-1]


class Influencer:
    """The training set prepared once for many influence queries.

    ``Influencer(model, train_images, train_labels, checkpoints=None)`` computes, per
    checkpoint and for every training image, the loss gradient at the logits and the input
    of the last linear layer (``progress(done, total)`` is called per batch, and
    ``cancelled()`` returning True raises ``Cancelled``); ``.query(x, k)`` then costs one
    forward pass per checkpoint and a matrix product.
    """

    def __init__(self, model: nn.Module, train_images, train_labels,
                 checkpoints: Sequence | None = None, *, layer: str | None = None,
                 learning_rates: Sequence[float] | None = None, normalize: bool = True,
                 batch_size: int = 256,
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None):
        from captum.influence import TracInCPFast

        images = _as_tensor(train_images, "train_images")
        labels = _as_tensor(train_labels, "train_labels")
        if images.ndim != 4 or not images.is_floating_point():
            raise InputError(f"train_images must be a float (N,C,H,W) batch; got "
                             f"{tuple(images.shape)} of {images.dtype}")
        if labels.ndim != 1 or len(labels) != len(images) or labels.is_floating_point():
            raise InputError(f"train_labels must be N={len(images)} integer labels, one per "
                             f"training image; got {tuple(labels.shape)} of {labels.dtype}")
        self.images, self.labels = images.detach().float(), labels.long()
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.grad = None
        self.current = {key: value.detach().clone() for key, value in model.state_dict().items()}
        if checkpoints is None:
            checkpoints = [self.current]
        elif isinstance(checkpoints, (str, Path, dict)) or len(checkpoints) == 0:
            raise InputError("checkpoints must be a non-empty list of state_dicts or paths")
        self.checkpoints = [_load_checkpoint(self.model, c, i) for i, c in enumerate(checkpoints)]
        rates = [1.0] * len(self.checkpoints) if learning_rates is None else list(learning_rates)
        if len(rates) != len(self.checkpoints):
            raise InputError(f"{len(rates)} learning rates for {len(self.checkpoints)} checkpoints")
        self.learning_rates, self.normalize = rates, bool(normalize)
        self._step = iter(())
        self.tracin = TracInCPFast(
            model=self.model,
            train_dataset=torch.utils.data.TensorDataset(self.images, self.labels),
            checkpoints=list(range(len(self.checkpoints))), checkpoints_load_func=self._load,
            final_fc_layer=_last_linear(self.model, layer),
            loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=batch_size)
        batches = list(torch.arange(len(labels)).split(batch_size))
        total, done = len(batches) * len(self.checkpoints), 0
        self.cache = []  # per checkpoint: (loss gradients at the logits, last-layer inputs)
        for index in range(len(self.checkpoints)):
            self._load(self.model, index)
            parts = []
            for batch in batches:
                if cancelled is not None and cancelled():
                    raise Cancelled("influence preparation cancelled")
                parts.append(self._factors(self.images[batch], self.labels[batch]))
                done += 1
                if progress is not None:
                    progress(done, total)
            self.cache.append(tuple(torch.cat(p) for p in zip(*parts, strict=True)))
        self.model.load_state_dict(self.current)

    def _load(self, model: nn.Module, index: int) -> float:
        """captum's ``checkpoints_load_func``: load checkpoint ``index``, return its lr."""
        model.load_state_dict(self.checkpoints[index])
        return self.learning_rates[index]

    def _factors(self, images: torch.Tensor, targets: torch.Tensor):
        from captum.influence._core.tracincp_fast_rand_proj import (
            _basic_computation_tracincp_fast,
        )

        grads, inputs = _basic_computation_tracincp_fast(
            self.tracin, (images,), targets, self.tracin.loss_fn, self.tracin.reduction_type)
        return grads.detach(), inputs.detach().flatten(1)

    def _check_query(self, x) -> torch.Tensor:
        x = _as_tensor(x, "x").float()
        x = x[None] if x.ndim == 3 else x
        if x.ndim != 4 or len(x) != 1 or x.shape[1:] != self.images.shape[1:]:
            raise InputError(f"x must be one image shaped like the training images "
                             f"{tuple(self.images.shape[1:])}; got {tuple(x.shape)}")
        return x

    def scores(self, x, target: int | None = None) -> tuple[torch.Tensor, int]:
        """The influence of every training image on ``x`` (N,), and the target class used."""
        x = self._check_query(x)
        try:
            if target is None:
                self.model.load_state_dict(self.current)
                with torch.no_grad():
                    target = int(self.model(x).argmax(1))
            targets = torch.tensor([int(target)])
            total = torch.zeros(len(self.labels))
            for index, (grads, inputs) in enumerate(self.cache):
                rate = self._load(self.model, index)
                test_grads, test_inputs = self._factors(x, targets)
                term = ((test_grads @ grads.T) * (test_inputs @ inputs.T) * rate)[0]
                if self.normalize:  # |∇W| of a last-layer gradient = |grad| · |input|
                    term = term / (grads.norm(dim=1) * inputs.norm(dim=1)).clamp_min(1e-12)
                total += term
        finally:
            self.model.load_state_dict(self.current)
            self.model.zero_grad(set_to_none=True)
        return total, int(target)

    def query(self, x, k: int = 10, target: int | None = None) -> Influence:
        """The ``k`` strongest proponents and opponents of the prediction for ``x``."""
        if not 1 <= int(k) <= len(self.labels):
            raise InputError(f"k must be in 1..{len(self.labels)}, got {k}")
        scores, target = self.scores(x, target)
        order = torch.argsort(scores, descending=True, stable=True)
        return Influence(order[:k], order.flip(0)[:k], scores, target)


def proponents(model: nn.Module, x, train_images, train_labels, k: int = 10,
               checkpoints: Sequence | None = None, target: int | None = None,
               **options) -> Influence:
    """One-off query: ``Influencer(model, train_images, train_labels, checkpoints,
    **options).query(x, k, target)``. Use ``Influencer`` to ask about several images."""
    return Influencer(model, train_images, train_labels, checkpoints, **options).query(
        x, k, target)


__all__ = ["Influence", "Influencer", "proponents"]
