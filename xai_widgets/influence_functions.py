"""captum's influence functions for ``xai_widgets.influence.Influencer`` (``method="naive"``
or ``"arnoldi"``): Koh & Liang's ∇L(x)ᵀ H⁻¹ ∇L(z), gradients and Hessian taken over one
layer's parameters (the last linear layer by default) at one set of weights.

captum factors H⁻¹ ≈ R Rᵀ, so every training image gets an "influence embedding"
∇L(z)ᵀ R once, and a query is one gradient and a matrix product:

* ``NaiveInfluenceFunction`` forms the layer's Hessian over the training set explicitly and
  keeps all its eigenvalues above captum's tolerance (``projection_dim`` = the number of
  parameters): the exact influence function, for layers up to a few thousand parameters;
* ``ArnoldiInfluenceFunction`` finds the top 50 eigenpairs from at most 200 Hessian-vector
  products, each a pass over the training set: for larger layers, slower to prepare.

>>> import torch
>>> from xai_widgets.influence_functions import choose_method
>>> layer = torch.nn.Linear(50, 10)
>>> choose_method("auto", checkpoints=None, layer=layer), choose_method("auto", [{}], layer)
('naive', 'tracin')
>>> choose_method("auto", None, torch.nn.Linear(320, 50))  # 16050 parameters
'tracin'
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from xai_widgets.errors import InputError

METHODS = ("auto", "tracin", "naive", "arnoldi")
NAIVE_LIMIT = 4096  # "auto": naive up to this many layer parameters, TracIn above
NAIVE_MAX = 20_000  # naive refuses larger layers (an N×N Hessian and its eigenvectors)
ARNOLDI_DIM, PROJECTION_DIM = 200, 50  # captum's defaults for ArnoldiInfluenceFunction


def choose_method(method: str, checkpoints, layer: nn.Module) -> str:
    """The method ``method`` resolves to: "auto" is the naive influence function for a layer
    of ≤ ``NAIVE_LIMIT`` parameters without checkpoints, else TracIn (Arnoldi is never picked:
    on the Clever-Hans demo it ranks worse than both and prepares 20× slower)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    size = sum(parameter.numel() for parameter in layer.parameters())
    if method == "auto":
        return "naive" if checkpoints is None and size <= NAIVE_LIMIT else "tracin"
    if method == "naive" and size > NAIVE_MAX:
        raise InputError(f"method='naive' forms the layer's {size}×{size} Hessian: too large "
                         f"(limit {NAIVE_MAX} parameters); use method='arnoldi'")
    return method


def check_layer(method: str, name: str, layer: nn.Module) -> None:
    """TracInCPFast needs a linear layer; captum's per-example gradients (used by the
    influence functions) support linear and 2-D convolution layers."""
    kinds = (nn.Linear,) if method == "tracin" else (nn.Linear, nn.Conv2d)
    if not isinstance(layer, kinds) or not any(True for _ in layer.parameters()):
        allowed = " or nn.".join(kind.__name__ for kind in kinds)
        raise InputError(f"method={method!r} needs layer= to name an nn.{allowed} layer; "
                         f"{name!r} is a {type(layer).__name__}")


class _Ticking(DataLoader):
    """A DataLoader that calls ``tick()`` before handing out each batch (captum iterates it
    for the Hessian or for each Hessian-vector product)."""

    def __init__(self, dataset, batch_size: int, tick: Callable[[], None]):
        super().__init__(dataset, batch_size=batch_size, shuffle=False)
        self.tick = tick

    def __iter__(self):
        for batch in super().__iter__():
            self.tick()
            yield batch


def batches_per_pass(method: str, layer: nn.Module, batches: int) -> int:
    """An upper bound on the batches preparation processes (for ``progress``)."""
    size = sum(parameter.numel() for parameter in layer.parameters())
    passes = 1 if method == "naive" else min(ARNOLDI_DIM, size)
    return (passes + 1) * batches


def prepare(method: str, model: nn.Module, layer: str, images: torch.Tensor,
            labels: torch.Tensor, load: Callable[[nn.Module, int], float], batch_size: int,
            tick: Callable[[], None]):
    """captum's influence function on ``model`` at checkpoint 0 (``load(model, 0)``) and
    the training images' influence embeddings (N, d); ``tick()`` is called per batch."""
    with torch.random.fork_rng(devices=[]):  # captum seeds the global generator
        return _prepare(method, model, layer, images, labels, load, batch_size, tick)


def _prepare(method, model, layer, images, labels, load, batch_size, tick):
    from captum.influence import NaiveInfluenceFunction
    from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction

    dataset = TensorDataset(images, labels)
    size = sum(p.numel() for p in dict(model.named_modules())[layer].parameters())
    options = dict(
        model=model, train_dataset=DataLoader(dataset, batch_size=batch_size, shuffle=False),
        checkpoint=0, checkpoints_load_func=load, layers=[layer],
        loss_fn=nn.CrossEntropyLoss(reduction="sum"), sample_wise_grads_per_batch=True,
        hessian_dataset=_Ticking(dataset, batch_size, tick), batch_size=batch_size)
    try:
        if method == "naive":
            explainer = NaiveInfluenceFunction(**options, projection_dim=size)
        else:
            dim = min(ARNOLDI_DIM, size)
            explainer = ArnoldiInfluenceFunction(
                **options, arnoldi_dim=dim, projection_dim=min(PROJECTION_DIM, dim))
    except Exception as error:  # captum raises bare Exceptions for these
        if "no positive eigenvalues" not in str(error) and "basis is empty" not in str(error):
            raise
        raise InputError(f"method={method!r}: the layer's Hessian over the training set is "
                         "~0 (no positive eigenvalues); use method='tracin'") from None
    parts = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        tick()
        parts.append(embed(explainer, *batch, test=False))
    return explainer, torch.cat(parts)


def embed(explainer, images: torch.Tensor, targets: torch.Tensor, test: bool = True):
    """Influence embeddings ∇L(x)ᵀ R of ``images`` for ``targets`` (B, d)."""
    with torch.random.fork_rng(devices=[]):  # each DataLoader draws a seed
        return explainer.compute_intermediate_quantities((images, targets), test=test).detach()


__all__ = ["METHODS", "NAIVE_LIMIT", "batches_per_pass", "choose_method", "prepare"]
