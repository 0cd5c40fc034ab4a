"""Which training images made the model decide this? Influence on top of captum.influence.

``proponents(model, x, train_images, train_labels, k)`` ranks the training set by its
influence on the model's prediction for ``x`` (its predicted class unless ``target=``):
``proponents`` are the ``k`` training images that most helped that prediction,
``opponents`` the ``k`` that most hurt it, ``scores`` the influence of all N. Gradients are
taken with respect to one layer's parameters, the last ``nn.Linear`` unless ``layer=``.

``method=``:

* ``"tracin"``: captum's ``TracInCPFast``, Σ_checkpoints lr · ∇L(x)·∇L(z). Last-layer
  gradients factor into (loss gradient at the logits) × (the layer's input), so
  ``Influencer`` caches two small matrices per checkpoint; a query is one forward pass and
  a matrix product per checkpoint. Without checkpoints the current weights are the only one.
* ``"naive"``: captum's ``NaiveInfluenceFunction`` (Koh & Liang), ∇L(x)ᵀ H⁻¹ ∇L(z) with the
  layer's exact Hessian over the training set (refused above 20 000 parameters);
* ``"arnoldi"``: captum's ``ArnoldiInfluenceFunction``, H⁻¹ from its top 50 eigenpairs
  found by 200 Hessian-vector products: larger layers, slower preparation;
* ``"auto"`` (default): ``"naive"`` when no ``checkpoints`` are given and the layer has
  ≤ 4096 parameters (or TracIn if its Hessian is ~0), else ``"tracin"``.

``normalize=True`` (the default) renormalises each training image's score (Hammoudeh &
Lowd 2022; Barshan et al. 2020), so that images rank by how *aligned* they are with the
query, not by how large their gradient is: TracIn divides each checkpoint's term by the
training image's gradient norm; the influence functions divide by the square root of its
self-influence ∇L(z)ᵀH⁻¹∇L(z) (RelatIF's θ-relative influence). ``normalize=False`` gives
captum's own scores exactly.

Measured on the shipped Clever-Hans demo (``benchmarks/bench_influence.py``; 4000 training
images, fc2 = 510 parameters; 100 tagged held-out non-7s the shortcut model calls 7; share
of the top-10 proponents that are tagged training 7s, base rate 0.091, goal ≥ 0.8; times
on 1 thread of a busy 2-core machine, where 2 threads ran 2-5× slower):

=======================  ============  =====  ==================  ==========  =======
method (weights)         renormalised  raw    twin (renorm, raw)  prepare     query
=======================  ============  =====  ==================  ==========  =======
tracin (final weights)   0.868         0.216  0.009, 0.008 [#]_   0.2 s       1 ms
naive (final)            0.882         0.148  0.012, 0.103        2-3 s       3 ms
arnoldi (final)          0.806         0.145  0.009, 0.024        47-49 s     2 ms
arnoldi, layer="fc1"     0.644         0.060  -                   ~140 s      16 ms
=======================  ============  =====  ==================  ==========  =======

.. [#] TracIn on the twin uses its 4 checkpoints. The twin calls most of these digits by
   their own class, so few of its proponents are 7s: below the base rate.

Raw influence functions, like raw TracIn, favour training images with large gradients
(the ones the model still gets wrong) and miss the shortcut; renormalised, the naive
influence function reaches the goal, level with TracIn, and Arnoldi just reaches it on the
same layer, 20× slower to prepare, and falls to 0.644 on the larger fc1. So "auto" picks
the naive influence function when there are no checkpoints and the layer is small (as on
the demo), and TracIn otherwise: with checkpoints, because it uses the training
trajectory; for larger layers (a ResNet-18's 513k-parameter fc), because Arnoldi measured
worse and costs 200 passes over the training set. Arnoldi stays available by name. The
user's model is never modified (work happens on a deep copy; captum's seeding of the global
random generator is undone).

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

from xai_widgets import influence_functions as functions
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


def read_checkpoint(checkpoint, index: int, model: nn.Module | None = None) -> dict:
    """The checkpoint (a state_dict or a path to one) as a state_dict; with ``model``, its
    keys and shapes checked against the model's (an InputError names what differs)."""
    if isinstance(checkpoint, (str, Path)):
        if not Path(checkpoint).is_file():
            raise InputError(f"checkpoint {index}: no file {str(checkpoint)!r}")
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise InputError(f"checkpoint {index} is a {type(checkpoint).__name__}: pass "
                         "state_dicts (model.state_dict()) or paths to saved state_dicts")
    if model is not None:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        given = {k: tuple(getattr(v, "shape", ())) for k, v in checkpoint.items()}
        problems = [f"missing {k}" for k in expected if k not in given]
        problems += [f"unexpected {k}" for k in given if k not in expected]
        problems += [f"{k} is {given[k]}, the model's is {expected[k]}"
                     for k in expected if k in given and given[k] != expected[k]]
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise InputError(f"checkpoint {index} does not fit the model: "
                             f"{'; '.join(problems[:3])}{more}. Pass state_dicts saved from "
                             "this architecture during training")
    return checkpoint


def _load_checkpoint(model: nn.Module, checkpoint, index: int) -> dict:
    """The checkpoint as a state_dict, after checking that it loads into ``model``."""
    checkpoint = read_checkpoint(checkpoint, index, model)
    try:
        model.load_state_dict(checkpoint)
    except RuntimeError as error:
        problem = " ".join(str(error).split())
        raise InputError(f"checkpoint {index} does not fit the model: {problem}") from None
    return {key: value.detach().clone() for key, value in checkpoint.items()}


def _layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    """The layer named ``layer``, or the model's last nn.Linear; with its name."""
    modules = dict(model.named_modules())
    if layer is not None:
        if layer not in modules:
            raise InputError(f"no layer {layer!r} in the model")
        return layer, modules[layer]
    linears = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
    if not linears:
        raise InputError("influence needs the model to end in an nn.Linear layer (pass layer=)")
    return linears[-1], modules[linears[-1]]


class _Steps:
    """``progress(done, total)`` and ``cancelled()`` over the preparation's batches."""

    def __init__(self, total: int, progress, cancelled):
        self.done, self.total, self.progress, self.cancelled = 0, total, progress, cancelled

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled("influence preparation cancelled")

    def step(self, done: int | None = None) -> None:
        self.done = min(self.total, self.done + 1 if done is None else done)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def tick(self) -> None:
        self.check()
        self.step()


class Influencer:
    """The training set prepared once for many influence queries.

    ``Influencer(model, train_images, train_labels, checkpoints=None, method="auto")``
    does the per-training-image work once (``progress(done, total)`` is called per batch,
    and ``cancelled()`` returning True raises ``Cancelled``): for TracIn, per checkpoint,
    the loss gradient at the logits and the input of the last linear layer; for the
    influence functions, the layer's Hessian and every image's influence embedding.
    ``.query(x, k)`` then costs one forward (and backward) pass per checkpoint and a
    matrix product. ``.method`` is the method used ("auto" resolved), ``.captum`` the
    captum object (``TracInCPFast``, ``NaiveInfluenceFunction`` or
    ``ArnoldiInfluenceFunction``).
    """

    def __init__(self, model: nn.Module, train_images, train_labels,
                 checkpoints: Sequence | None = None, *, method: str = "auto",
                 layer: str | None = None, learning_rates: Sequence[float] | None = None,
                 normalize: bool = True, batch_size: int = 256,
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None):
        images = _as_tensor(train_images, "train_images")
        labels = _as_tensor(train_labels, "train_labels")
        if images.ndim != 4 or not images.is_floating_point():
            raise InputError(f"train_images must be a float (N,C,H,W) batch; got "
                             f"{tuple(images.shape)} of {images.dtype}")
        if labels.ndim != 1 or len(labels) != len(images) or labels.is_floating_point():
            raise InputError(f"train_labels must be N={len(images)} integer labels, one per "
                             f"training image; got {tuple(labels.shape)} of {labels.dtype}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.images, self.labels = images.detach().float(), labels.long()
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.grad = None
        name, module = _layer(self.model, layer)
        self.method = functions.choose_method(method, checkpoints, module)
        functions.check_layer(self.method, name, module)
        self.current = {key: value.detach().clone() for key, value in model.state_dict().items()}
        if checkpoints is None:
            checkpoints = [self.current]
        elif isinstance(checkpoints, (str, Path, dict)) or len(checkpoints) == 0:
            raise InputError("checkpoints must be a non-empty list of state_dicts or paths")
        if self.method != "tracin" and (len(checkpoints) > 1 or learning_rates is not None):
            raise InputError(f"method={self.method!r} (an influence function) uses one set of "
                             "weights: pass at most one checkpoint and no learning_rates, or "
                             "use method='tracin'")
        self.checkpoints = [_load_checkpoint(self.model, c, i) for i, c in enumerate(checkpoints)]
        rates = [1.0] * len(self.checkpoints) if learning_rates is None else list(learning_rates)
        if len(rates) != len(self.checkpoints):
            raise InputError(f"{len(rates)} learning rates for {len(self.checkpoints)} checkpoints")
        self.learning_rates, self.normalize = rates, bool(normalize)
        batches = list(torch.arange(len(labels)).split(batch_size))
        try:
            if self.method != "tracin":
                try:
                    self._prepare_function(name, module, batches, batch_size, progress,
                                           cancelled)
                except InputError:  # the layer's Hessian is ~0
                    if method != "auto":
                        raise
                    self.method = "tracin"
            if self.method == "tracin":
                self._prepare_tracin(module, batches, batch_size, progress, cancelled)
        finally:
            self.model.load_state_dict(self.current)
            self.model.zero_grad(set_to_none=True)

    def _prepare_function(self, name: str, module: nn.Module, batches, batch_size: int,
                          progress, cancelled) -> None:
        steps = _Steps(functions.batches_per_pass(self.method, module, len(batches)),
                       progress, cancelled)
        self.tracin = None
        self.captum, self.embeddings = functions.prepare(
            self.method, self.model, name, self.images, self.labels, self._load, batch_size,
            steps.tick)
        self.norms = self.embeddings.norm(dim=1).clamp_min(1e-12)
        if steps.done < steps.total:  # Arnoldi may stop early
            steps.step(steps.total)

    def _prepare_tracin(self, module: nn.Module, batches, batch_size: int, progress,
                        cancelled) -> None:
        from captum.influence import TracInCPFast

        self.tracin = self.captum = TracInCPFast(
            model=self.model,
            train_dataset=torch.utils.data.TensorDataset(self.images, self.labels),
            checkpoints=list(range(len(self.checkpoints))), checkpoints_load_func=self._load,
            final_fc_layer=module, loss_fn=nn.CrossEntropyLoss(reduction="sum"),
            batch_size=batch_size)
        steps = _Steps(len(batches) * len(self.checkpoints), progress, cancelled)
        self.cache = []  # per checkpoint: (loss gradients at the logits, last-layer inputs)
        for index in range(len(self.checkpoints)):
            self._load(self.model, index)
            parts = []
            for batch in batches:
                steps.check()
                parts.append(self._factors(self.images[batch], self.labels[batch]))
                steps.step()
            self.cache.append(tuple(torch.cat(p) for p in zip(*parts, strict=True)))

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
            if self.method != "tracin":
                self._load(self.model, 0)
                total = (functions.embed(self.captum, x, targets) @ self.embeddings.T)[0]
                # RelatIF: over sqrt(self-influence) = the training embedding's norm
                total = total / self.norms if self.normalize else total
                return total, int(target)
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
