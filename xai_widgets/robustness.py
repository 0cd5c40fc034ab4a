"""How fragile is an explanation? Max-sensitivity and the interpretation attack.

``sensitivity`` is captum's ``sensitivity_max`` computed through ``explain()`` (so every
registered method works): the largest ||map(x + δ) − map(x)|| / ||map(x)|| (Frobenius norms of
the method's raw (C,H,W) map) over ``n`` uniform draws δ from the L∞ ball of radius
``epsilon``, for the predicted class unless ``target`` is given. The draws are captum's own
(one ``uniform_`` over (n,C,H,W) after seeding torch and numpy), so the value equals
``sensitivity_max(attr.attribute, x, perturb_radius=epsilon, n_perturb_samples=n)``; like
captum, the perturbed images are not clipped to 0..1. Stochastic methods (SmoothGrad through
``smoothing=``) draw the same noise for every perturbed image (``explain()``'s ``seed``).

``attack_map`` is the top-k interpretation attack of Ghorbani et al. (2019): projected
signed-gradient steps of ``step_size`` (default epsilon/10; L∞ ≤ ``epsilon``, image kept in
0..1) that lower the loss (mass of the map on the original top-k pixels − mass of the k
largest pixels outside them) / total mass, all on the absolute (H,W) map: it pushes the original
top-k pixels below their strongest rivals. Its gradient needs second derivatives, which are zero
through ReLUs, so it is taken on a copy with every ``nn.ReLU`` replaced by ``Softplus(β)``
(Dombrowski et al. 2019) and every plain ``nn.MaxPool2d`` by a softmax(β)-weighted mean of its
window (a hard max-pool hides which input of a window is about to win). β goes geometrically
from ``beta`` (3: smooth, long-range gradients) to ``beta_end`` (100: close to the real
network) over the steps. Each iterate is judged on the real model, and the best one that keeps
the predicted class, with its probability within ``tolerance`` (absolute), is returned
(``kept_class`` is then True; if no iterate qualifies, the image itself is returned with
intersection 1). Top-k ranks the absolute (H,W) map. The reported maps are ``explain()``'s on
the real model; inside the attack, integrated gradients uses ``ig_steps`` midpoint steps from a
zero baseline and SmoothGrad one fixed draw of ``nt_samples`` noisy copies. On the demo MNIST
CNN (50 digits, ε = 8/255, 100 steps) the median top-50 intersection falls to about 0.45 for
saliency (0.65 with a constant β = 10, ReLU-only surrogate and the plain top-k-share loss).

>>> from xai_widgets import robustness
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> a = robustness.attack_map(model, images[0], method="saliency", epsilon=0.1, steps=5)
>>> a.image.shape, a.kept_class, 0.0 <= a.topk_intersection <= 1.0
((1, 28, 28), True, True)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from xai_widgets import methods
from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.explain import explain
from xai_widgets.methods.gradients import seeded

ATTACK_METHODS = ("saliency", "integrated_gradients", "smoothgrad")


@dataclass(frozen=True)
class Sensitivity:
    """Max-sensitivity of ``method``'s map for ``target`` within the ``epsilon`` L∞ ball."""

    value: float
    epsilon: float
    n: int
    method: str
    target: int

    def __str__(self) -> str:
        return (f"max-sensitivity of {self.method} (class {self.target}) = {self.value:.4f} "
                f"over {self.n} uniform perturbations with L∞ ≤ {self.epsilon:.4g}")


@dataclass(frozen=True)
class AttackResult:
    """An interpretation attack: ``image`` (C,H,W) the perturbed image, ``map_before`` and
    ``map_after`` (H,W) the real model's maps, ``topk_intersection`` the share of the original
    top-k pixels still in the top k (1 = the attack failed), ``probability_change`` the
    predicted class's probability after minus before."""

    image: np.ndarray
    map_before: np.ndarray
    map_after: np.ndarray
    topk_intersection: float
    probability_change: float
    kept_class: bool
    steps_run: int
    target: int
    method: str
    epsilon: float
    top_k: int
    linf: float

    def __str__(self) -> str:
        return (f"{self.method} attack (L∞ {self.linf:.4g} ≤ {self.epsilon:.4g}, {self.steps_run} "
                f"steps): top-{self.top_k} intersection {self.topk_intersection:.2f}, class "
                f"{self.target} {'kept' if self.kept_class else 'lost'}, probability "
                f"{self.probability_change:+.3f}")


def _check(epsilon: float, n: int = 1, method: str | None = None) -> None:
    if not 0.0 < float(epsilon) <= 1.0:
        raise InputError(f"epsilon must be in (0, 1] (pixel units of a 0..1 image), got {epsilon}")
    if int(n) < 1:
        raise InputError(f"n (and steps) must be at least 1, got {n}")
    if method is not None and method not in ATTACK_METHODS:
        raise InputError(f"unknown attack method {method!r}: choose one of {ATTACK_METHODS}")


def _setup(model, x, preprocess, target) -> tuple[ModelAdapter, torch.Tensor, int, torch.Tensor]:
    adapter = ModelAdapter(model, preprocess=preprocess)
    image, _ = adapter.image(x)
    probs = adapter.logits(image).softmax(1)[0]
    if target is None:
        target = int(probs.argmax())
    if not 0 <= int(target) < probs.numel():
        raise InputError(f"target must be a class index in 0..{probs.numel() - 1}, got {target}")
    return adapter, image, int(target), probs


def sensitivity(model, x, method: str = "integrated_gradients", epsilon: float = 0.02,
                n: int = 10, seed: int = 0, target: int | None = None,
                preprocess: Callable | None = None,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None, **params) -> Sensitivity:
    """captum's ``sensitivity_max`` of ``method``'s map at ``x`` (see the module docstring);
    ``params`` go to ``explain()``. ``progress(done, n + 1)`` is called after each map;
    ``cancelled()`` returning True raises ``errors.Cancelled``."""
    _check(epsilon, n)
    if method not in methods.names():
        raise InputError(f"unknown method {method!r}: choose one of {methods.names()}")
    _, image, target, _ = _setup(model, x, preprocess, target)

    done = 0

    def raw(img: torch.Tensor) -> torch.Tensor:
        nonlocal done
        if cancelled is not None and cancelled():
            raise Cancelled("sensitivity cancelled")
        e = explain(model, img[0], method=method, targets=[target], preprocess=preprocess,
                    max_seconds=None, **params)
        done += 1
        if progress is not None:
            progress(done, n + 1)
        return torch.from_numpy(np.array(e.raw[0]))

    base = raw(image)
    with seeded(seed, image.device):  # captum: FloatTensor(size).uniform_(-r, r).to(device)
        deltas = torch.FloatTensor(torch.Size((n, *image.shape[1:]))).uniform_(-epsilon, epsilon)
    norm = float(torch.linalg.vector_norm(base.flatten())) or 1.0
    worst = max(float(torch.linalg.vector_norm((base - raw(image + d.to(image.device))).flatten()))
                for d in deltas)
    return Sensitivity(worst / norm, float(epsilon), int(n), method, target)


class _SoftMaxPool2d(nn.Module):
    """Max-pooling as a softmax(β·x)-weighted mean of each window (→ max as β → ∞)."""

    def __init__(self, pool: nn.MaxPool2d, beta: float):
        super().__init__()
        self.kernel, self.stride = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (n, c, h, w), (kh, kw), (sh, sw) = x.shape, self.kernel, self.stride
        ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
        if (kh, kw) == (sh, sw):  # non-overlapping windows: a reshape (im2col is slow on CPU)
            cols = x[:, :, :ho * kh, :wo * kw].reshape(n, c, ho, kh, wo, kw)
            cols = cols.permute(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, kh * kw)
            return (torch.softmax(self.beta * cols, -1) * cols).sum(-1)
        cols = F.unfold(x.reshape(n * c, 1, h, w), self.kernel, stride=self.stride)
        return (torch.softmax(self.beta * cols, 1) * cols).sum(1).reshape(n, c, ho, wo)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _smooth_copy(adapter: ModelAdapter, beta: float) -> nn.Module:
    """The logits module with every ReLU replaced by Softplus(beta) and every plain 2-D
    max-pool by a soft one of the same beta, frozen, in eval mode."""
    with adapter.eval_mode():
        twin = copy.deepcopy(adapter.forward_module)
    for module in list(twin.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Softplus(beta=beta))
            elif (isinstance(child, nn.MaxPool2d) and not child.ceil_mode
                  and not child.return_indices and _pair(child.padding) == (0, 0)
                  and _pair(child.dilation) == (1, 1)):
                setattr(module, child_name, _SoftMaxPool2d(child, beta))
    twin.eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def _set_beta(twin: nn.Module, beta: float) -> None:
    for module in twin.modules():
        if isinstance(module, (nn.Softplus, _SoftMaxPool2d)):
            module.beta = beta


def _map(net: nn.Module, x: torch.Tensor, target: int, method: str, noise: torch.Tensor,
         ig_steps: int, create_graph: bool) -> torch.Tensor:
    """The (H,W) absolute map of ``x`` (1,C,H,W), differentiable in x when ``create_graph``."""
    if method == "integrated_gradients":
        alphas = (torch.arange(ig_steps, dtype=x.dtype, device=x.device) + 0.5) / ig_steps
        points = alphas.view(-1, 1, 1, 1) * x  # zero baseline, midpoint Riemann sum
    elif method == "smoothgrad":
        points = x + noise
    else:
        points = x
    if not create_graph:
        points = points.detach().requires_grad_(True)
    score = net(points)[:, target].sum()
    grads = torch.autograd.grad(score, points, create_graph=create_graph)[0]
    if method == "integrated_gradients":
        return (x * grads.mean(0, keepdim=True))[0].sum(0).abs()
    return grads.abs().mean(0).sum(0)


def _topk(m: torch.Tensor, k: int) -> torch.Tensor:
    return m.flatten().topk(k).indices


def _intersection(a: np.ndarray, b: np.ndarray, k: int) -> float:
    ia = set(np.argsort(-np.abs(a).ravel(), kind="stable")[:k].tolist())
    ib = set(np.argsort(-np.abs(b).ravel(), kind="stable")[:k].tolist())
    return len(ia & ib) / k


def attack_map(model, x, method: str = "saliency", epsilon: float = 8 / 255, top_k: int = 50,
               steps: int = 100, *, step_size: float | None = None, tolerance: float = 0.1,
               beta: float = 3.0, beta_end: float | None = 100.0, ig_steps: int = 8,
               nt_samples: int = 10, nt_stdev: float = 0.15, seed: int = 0,
               target: int | None = None,
               preprocess: Callable | None = None,
               progress: Callable[[int, int], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> AttackResult:
    """Ghorbani et al.'s top-k attack on ``method``'s map of ``x`` (see the module docstring).

    ``step_size`` defaults to epsilon/10; the surrogate's beta goes geometrically from ``beta``
    to ``beta_end`` over the steps (constant when ``beta_end`` is None); ``ig_steps`` are the
    path steps of integrated gradients inside the attack; ``nt_samples``/``nt_stdev``/``seed`` the
    SmoothGrad noise. ``progress(step, steps)`` is called after each step; ``cancelled()``
    returning True raises ``errors.Cancelled``. The user's model is not modified.
    """
    _check(epsilon, steps, method)
    adapter, image, target, probs = _setup(model, x, preprocess, target)
    pixels = image.shape[2] * image.shape[3]
    if not 1 <= int(top_k) <= pixels:
        raise InputError(f"top_k must be in 1..{pixels} (the image's pixels), got {top_k}")
    if not 0.0 <= tolerance <= 1.0:
        raise InputError(f"tolerance must be a probability change in 0..1, got {tolerance}")
    if beta <= 0 or (beta_end is not None and beta_end <= 0):
        raise InputError(f"beta and beta_end must be positive, got {beta} and {beta_end}")
    step_size = epsilon / 10 if step_size is None else float(step_size)
    twin = _smooth_copy(adapter, beta)
    ratio = 1.0 if beta_end is None else beta_end / beta
    with seeded(seed, image.device):
        noise = (torch.randn((nt_samples, *image.shape[1:]), device=image.device) * nt_stdev
                 if method == "smoothgrad" else torch.zeros(1, device=image.device))
    p0 = float(probs[target])

    def real_map(img: torch.Tensor) -> torch.Tensor:
        with adapter.eval_mode():
            return _map(adapter.forward_module, img, target, method, noise, ig_steps, False)

    keep = _topk(real_map(image), top_k)
    outside = torch.ones(pixels, dtype=torch.bool, device=image.device)
    outside[keep] = False
    best, best_score, x_adv, run = image.clone(), 1.0, image.clone(), 0
    for step in range(1, steps + 1):
        if cancelled is not None and cancelled():
            raise Cancelled("attack_map cancelled")
        _set_beta(twin, beta * ratio ** ((step - 1) / max(steps - 1, 1)))
        x_adv.requires_grad_(True)
        with sdpa_kernel(SDPBackend.MATH):  # fused attention kernels have no double backward
            m = _map(twin, x_adv, target, method, noise, ig_steps, True).flatten()
            rivals = m[outside].topk(min(top_k, pixels - top_k)).values.sum()
            loss = (m[keep].sum() - rivals) / m.sum().clamp_min(1e-12)
            grad = torch.autograd.grad(loss, x_adv)[0]
        with torch.no_grad():
            x_adv = x_adv - step_size * grad.sign()
            x_adv = (image + (x_adv - image).clamp(-epsilon, epsilon)).clamp(0.0, 1.0)
            p = adapter.logits(x_adv).softmax(1)[0]
        run = step
        if int(p.argmax()) == target and abs(float(p[target]) - p0) <= tolerance:
            now = _topk(real_map(x_adv), top_k)
            score = float(np.isin(now.cpu().numpy(), keep.cpu().numpy()).mean())
            if score < best_score:
                best, best_score = x_adv.clone(), score
        if progress is not None:
            progress(step, steps)
        if best_score == 0.0:  # no original top-k pixel is left: nothing more to gain
            break
    explain_method, params = method, {}
    if method == "smoothgrad":
        explain_method = "saliency"
        params = dict(smoothing="smoothgrad", nt_samples=nt_samples, nt_stdev=nt_stdev, seed=seed)
    before = explain(model, image[0], method=explain_method, targets=[target],
                     preprocess=preprocess, max_seconds=None, **params)
    after = explain(model, best[0], method=explain_method, targets=[target],
                    preprocess=preprocess, max_seconds=None, **params)
    p_after = after.probabilities
    return AttackResult(
        image=best[0].detach().cpu().numpy(), map_before=before.map(target),
        map_after=after.map(target),
        topk_intersection=_intersection(before.map(target), after.map(target), top_k),
        probability_change=float(p_after[target]) - p0,
        kept_class=int(np.argmax(p_after)) == target, steps_run=run, target=target,
        method=method, epsilon=float(epsilon), top_k=int(top_k),
        linf=float((best - image).abs().max()))

