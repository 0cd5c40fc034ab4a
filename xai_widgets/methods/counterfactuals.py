"""Counterfactual search in torch: Wachter, prototype-guided, adversarial.

"How do the pixels need to change to obtain the desired class?"

- ``wachter`` (Wachter et al.): minimise (f_t(x′) − p*)² + λ‖x′ − x‖₁, halving λ while the
  class has not flipped; sparse changes. f_t is the log-probability (and p* its log): the
  squared loss on probabilities has no gradient while p_t ≈ 0, as it is for most targets.
- ``prototype`` (Van Looveren & Klaise): a margin loss on the logits, elastic-net distance
  β‖δ‖₁ + ‖δ‖₂², γ‖AE(x′) − x′‖² and θ‖enc(x′) − proto_t‖² toward the target class's
  prototype in the latent space of an autoencoder of the reference images: fast,
  in-distribution.
- ``adversarial``: signed gradient steps toward the class until it flips; the degenerate
  case: the noise is small and the class changes.
- ``cfrl`` (Samoilescu et al.): no search: one forward pass of an actor trained once per
  model (``xai_widgets.methods.cfrl``); the MNIST demo CNN's actor is shipped.

Every pixel stays in the valid range (projected steps). A target the model already predicts
returns x itself; a search that runs out of budget returns ``success=False`` with a
message, never an exception.

>>> from xai_widgets import counterfactual
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> cf = counterfactual(model, images[0], target=9, method="wachter")
>>> cf.success, cf.path.shape[1:], cf.path_probabilities.shape[1]
(True, (1, 28, 28), 10)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xai_widgets.baselines import value_range
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.methods import cfrl
from xai_widgets.methods.registry import Param

PATH_STEPS = 21
CHANGED = 1e-2  # a pixel counts as changed (L0) when it moves by more than 1 % of the range


@dataclass(frozen=True)
class Counterfactual:
    """A counterfactual x′ for ``target`` and the straight morph x → x′.

    ``image`` (C,H,W) is in the input's value range; ``path`` (n_steps,C,H,W) goes from x to
    x′ and ``path_probabilities`` (n_steps, n_classes) gives every class along it. ``l1`` is
    Σ|x′ − x|, ``l0`` the number of pixels changed by more than 1 % of the value range.
    """

    image: np.ndarray
    original: np.ndarray
    target: int
    method: str
    success: bool
    message: str
    path: np.ndarray
    path_probabilities: np.ndarray
    l1: float
    l0: int
    seconds: float
    params: dict = field(default_factory=dict)
    reconstruction_error: float | None = None

    def __post_init__(self) -> None:
        for name in ("image", "original", "path", "path_probabilities"):
            array = np.array(getattr(self, name), copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def step(self, morph: float) -> int:
        """The path index nearest to ``morph`` in 0..1 (0 = x, 1 = x′)."""
        return round(float(np.clip(morph, 0.0, 1.0)) * (len(self.path) - 1))

    def __repr__(self) -> str:
        return (f"Counterfactual(method={self.method!r}, target={self.target}, "
                f"success={self.success}, l1={self.l1:.2f}, l0={self.l0}, "
                f"seconds={self.seconds:.2f})")


COMMON = (Param("max_steps", "int", 300, 1, 5000, 1, label="max steps",
                help="optimisation budget"),
          Param("learning_rate", "float", 0.05, 0.001, 1.0, 0.001, label="learning rate"))
PARAMS = {
    "wachter": COMMON + (
        Param("target_probability", "float", 0.6, 0.1, 0.99, 0.01, label="p*",
              help="the target class probability to reach"),
        Param("lam", "float", 10.0, 0.0, 1000.0, 0.1, label="λ (sparsity)",
              help="weight of the mean |x′ − x|; halved while the class has not flipped")),
    "prototype": COMMON + (
        Param("beta", "float", 0.1, 0.0, 10.0, 0.01, label="β (L1)"),
        Param("gamma", "float", 10.0, 0.0, 1000.0, 0.1, label="γ (autoencoder)",
              help="weight of the reconstruction error: keeps x′ in distribution"),
        Param("theta", "float", 0.5, 0.0, 100.0, 0.01, label="θ (prototype)"),
        Param("kappa", "float", 1.0, 0.0, 20.0, 0.1, label="κ (margin)"),
        Param("k_nearest", "int", 10, 1, 500, 1, label="prototype of k nearest")),
    "adversarial": (
        Param("max_steps", "int", 200, 1, 5000, 1, label="max steps"),
        Param("step_size", "float", 0.005, 0.0001, 0.5, 0.0001, label="step size")),
    "cfrl": cfrl.PARAMS,
}
METHODS = tuple(PARAMS)


@dataclass
class Search:
    """What one search needs; ``check()`` raises Cancelled once superseded."""

    adapter: Any
    image: torch.Tensor
    target: int
    params: dict
    low: float
    high: float
    data: torch.Tensor | None = None
    autoencoder: Any = None
    progress: Callable[[int, int], None] | None = None
    cancelled: Callable[[], bool] | None = None

    def check(self, step: int) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled()
        if self.progress is not None and step % 10 == 0:
            self.progress(step, self.params["max_steps"])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter.forward_module(x)

    def flipped(self, logits: torch.Tensor) -> bool:
        return int(logits.argmax(1)[0]) == self.target


def wachter(search: Search) -> tuple[torch.Tensor, int]:
    p = search.params
    x = search.image
    delta = torch.zeros_like(x, requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=p["learning_rate"])
    lam, best, best_l1, steps, flipped_at = p["lam"], None, float("inf"), 0, 0
    for steps in range(1, p["max_steps"] + 1):
        search.check(steps)
        candidate = (x + delta).clamp(search.low, search.high)
        logits = search.logits(candidate)
        log_probability = torch.log_softmax(logits, 1)[0, search.target]
        distance = (candidate - x).abs().mean()
        loss = (log_probability - np.log(p["target_probability"])) ** 2 + lam * distance
        # a gradient for delta only: backward() would leave .grad on the user's weights
        delta.grad, = torch.autograd.grad(loss, delta)
        optimiser.step()
        if search.flipped(logits):
            l1 = float((candidate - x).detach().abs().sum())
            if l1 < best_l1:
                best, best_l1, flipped_at = candidate.detach(), l1, steps
            elif steps - flipped_at >= 100:
                break  # 100 steps after the flip: the sparsity term has pulled back toward x
        elif steps % 25 == 0:
            lam /= 2  # Wachter: relax the distance term until the class flips
    if best is None:
        best = (x + delta).clamp(search.low, search.high).detach()
    return best, steps


def class_prototype(search: Search, encode) -> torch.Tensor:
    """Mean encoding of the k reference images nearest to x (in the latent space) that the
    model assigns to the target class."""
    if search.data is None:
        raise InputError("the prototype method needs reference images: pass data=images "
                         "(their encodings of the target class define the prototype)")
    with torch.no_grad():
        predicted = search.adapter.logits(search.data).argmax(1)
        members = search.data[predicted == search.target]
        if len(members) == 0:
            raise InputError(f"no reference image is predicted as class {search.target}: "
                             "pass more or other data=images")
        codes = encode(members)
        distances = (codes - encode(search.image)).pow(2).sum(1)
        nearest = distances.argsort()[: search.params["k_nearest"]]
        return codes[nearest].mean(0, keepdim=True)


def prototype(search: Search) -> tuple[torch.Tensor, int]:
    p = search.params
    x = search.image
    encoder = search.autoencoder.to(x.device).eval()
    proto = class_prototype(search, encoder.encode)
    delta = torch.zeros_like(x, requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=p["learning_rate"])
    best, best_l1, steps = None, float("inf"), 0
    mask = F.one_hot(torch.tensor([search.target], device=x.device),
                     num_classes=search.adapter.n_classes).bool()
    for steps in range(1, p["max_steps"] + 1):
        search.check(steps)
        candidate = (x + delta).clamp(search.low, search.high)
        logits = search.logits(candidate)
        other = logits.masked_fill(mask, float("-inf")).max(1).values
        margin = torch.relu(other - logits[:, search.target] + p["kappa"]).sum()
        change = candidate - x
        loss = (margin + p["beta"] * change.abs().sum() + change.pow(2).sum()
                + p["gamma"] * (encoder(candidate) - candidate).pow(2).sum()
                + p["theta"] * (encoder.encode(candidate) - proto).pow(2).sum())
        # a gradient for delta only: backward() would leave .grad on the user's weights
        delta.grad, = torch.autograd.grad(loss, delta)
        optimiser.step()
        if search.flipped(logits):
            l1 = float(change.abs().sum())
            if l1 < best_l1:
                best, best_l1 = candidate.detach(), l1
            elif steps % 25 == 0:
                break  # no longer getting sparser
    if best is None:
        best = (x + delta).clamp(search.low, search.high).detach()
    return best, steps


def adversarial(search: Search) -> tuple[torch.Tensor, int]:
    p = search.params
    candidate = search.image.clone()
    target = torch.tensor([search.target], device=candidate.device)
    steps = 0
    for steps in range(1, p["max_steps"] + 1):
        search.check(steps)
        candidate.requires_grad_(True)
        logits = search.logits(candidate)
        if search.flipped(logits):
            break
        grad, = torch.autograd.grad(F.cross_entropy(logits, target), candidate)
        step = p["step_size"] * grad.sign()
        candidate = (candidate.detach() - step).clamp(search.low, search.high)
    return candidate.detach(), steps


SEARCHES = {"wachter": wachter, "prototype": prototype, "adversarial": adversarial}


def resolve(method: str, params: dict) -> dict:
    if method not in PARAMS:
        raise InputError(f"unknown counterfactual method {method!r}: choose one of "
                         f"{', '.join(METHODS)}")
    out = {p.name: p.default for p in PARAMS[method]}
    names = {p.name: p for p in PARAMS[method]}
    for name, value in params.items():
        if name not in names:
            raise InputError(f"{method} has no parameter {name!r}; its parameters: {list(names)}")
        out[name] = names[name].validate(value)
    return out


def search_counterfactual(adapter, image: torch.Tensor, target: Any, method: str = "wachter",
                          params: dict | None = None, data: torch.Tensor | None = None,
                          autoencoder=None, progress=None, cancelled=None,
                          actor=None) -> Counterfactual:
    """The counterfactual of ``image`` (1,C,H,W on the model's device) for ``target``;
    ``actor`` (a ``CFRLActor``) only for ``method="cfrl"``."""
    start = time.perf_counter()
    resolved = resolve(method, dict(params or {}))
    with torch.no_grad():
        original = adapter.probabilities(image)[0]
    (target,) = (adapter.check_targets(target, original.shape[0]) if np.ndim(target) == 0
                 else (None,))
    if target is None:
        raise InputError("target must be one class index")
    if method == "cfrl":
        with adapter.eval_mode():
            actor = actor if actor is not None else getattr(adapter, "cfrl_actor", None)
            return cfrl.cfrl_counterfactuals(adapter, image, [target], actor, resolved,
                                             original[None])[0]
    low, high = value_range(image, data)
    if method == "prototype" and autoencoder is None:
        autoencoder = default_autoencoder(image, data)
    search = Search(adapter, image, target, resolved, low, high, data, autoencoder, progress,
                    cancelled)
    prediction = int(original.argmax())
    with torch.enable_grad(), adapter.eval_mode():
        if prediction == target:
            result, steps = image, 0
        else:
            result, steps = SEARCHES[method](search)
    path = morph_path(image, result)
    with torch.no_grad():
        path_probabilities = adapter.probabilities(path)
    success = int(path_probabilities[-1].argmax()) == target
    if prediction == target:
        message = f"the model already assigns class {target} to x: the counterfactual is x itself"
    elif success:
        message = f"class {prediction} → {target} in {steps} steps"
    else:
        message = (f"no counterfactual for class {target} within {resolved['max_steps']} steps "
                   f"(the model still says {int(path_probabilities[-1].argmax())}): raise "
                   "max_steps or the learning rate")
    change = (result - image)[0]
    reconstruction = None
    if autoencoder is not None:
        with torch.no_grad():
            reconstruction = float(F.mse_loss(autoencoder(result), result))
    return Counterfactual(
        image=result[0].detach().cpu().numpy(), original=image[0].cpu().numpy(), target=target,
        method=method, success=success, message=message, path=path.detach().cpu().numpy(),
        path_probabilities=path_probabilities.cpu().numpy(), l1=float(change.abs().sum()),
        l0=int((change.abs().amax(0) > CHANGED * (high - low)).sum()),
        seconds=time.perf_counter() - start, params=resolved, reconstruction_error=reconstruction)


def morph_path(image: torch.Tensor, result: torch.Tensor, steps: int = PATH_STEPS) -> torch.Tensor:
    """x + s·(x′ − x) for s in 0..1: the frames of the morph slider."""
    s = torch.linspace(0, 1, steps, device=image.device, dtype=image.dtype).view(-1, 1, 1, 1)
    return image + s * (result.detach() - image)


_AUTOENCODERS: dict = {}


def default_autoencoder(image: torch.Tensor, data: torch.Tensor | None):
    """The shipped MNIST autoencoder for 1×28×28 images; else one trained on ``data`` once
    (cached by the data's identity)."""
    from xai_widgets.zoo import load_autoencoder
    from xai_widgets.zoo.autoencoder import train_autoencoder

    if tuple(image.shape[1:]) == (1, 28, 28):
        return load_autoencoder("mnist").to(image.device)
    if data is None:
        raise InputError("the prototype method needs reference images: pass data=images")
    key = (id(data), tuple(data.shape))
    if key not in _AUTOENCODERS:
        _AUTOENCODERS[key] = train_autoencoder(data.detach().cpu()).to(image.device)
    return _AUTOENCODERS[key]


ONE_PASS = ("cfrl",)  # methods that find x′ for many classes in one batched pass


def batched_counterfactuals(adapter, image: torch.Tensor, targets, method: str = "cfrl",
                            probabilities: torch.Tensor | None = None, actor=None) -> list:
    """Counterfactuals of ``image`` (1,C,H,W) toward each of ``targets`` in one batched
    pass: a one-pass method only (``ONE_PASS``); searches run one target at a time."""
    if method not in ONE_PASS:
        raise InputError(f"{method!r} searches one class at a time; the counterfactuals to "
                         f"every class at once need a one-pass method: {', '.join(ONE_PASS)}")
    actor = actor if actor is not None else getattr(adapter, "cfrl_actor", None)
    with adapter.eval_mode():
        return cfrl.cfrl_counterfactuals(adapter, image, list(targets), actor, {}, probabilities)
