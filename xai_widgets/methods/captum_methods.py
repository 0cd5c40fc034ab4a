"""Captum backend: gradient, perturbation and propagation methods, all targets batched.

Every method explains all requested targets in one batched call: the image is repeated
once per target and captum receives the list of targets, so ten classes cost one backward
pass (or one batch of ``n_steps`` passes for integrated gradients), never a Python loop of
captum calls. Occlusion is evaluated natively: each occluded image is scored once and every
class's score is read from that one forward pass; the numbers equal captum's ``Occlusion``.

>>> from xai_widgets import explain
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> explain(model, images[0], method="grad_cam").attributions.shape
(10, 28, 28)
"""

from __future__ import annotations

import functools

import torch
from captum.attr import (
    DeepLift,
    GuidedBackprop,
    IntegratedGradients,
    NoiseTunnel,
)
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn

from xai_widgets.errors import InputError
from xai_widgets.methods.gradients import (
    expected_gradients,
    in_passes,
    input_gradients,
    internal_batch_size,
    noise_tunnel,
    seeded,
)
from xai_widgets.methods.model_checks import (
    available_check,
    deeplift_problem,
    guided_problem,
    require,
)
from xai_widgets.methods.model_surgery import prepared_copy
from xai_widgets.methods.model_trace import display_name
from xai_widgets.methods.progressive import node_rounds
from xai_widgets.methods.registry import MethodSpec, Param, Task, register

SMOOTHING = (
    Param("smoothing", "choice", "none", choices=("none", "smoothgrad", "smoothgrad_sq", "vargrad"),
          label="noise tunnel", help="average the map over noisy copies of the image (SmoothGrad)"),
    Param("nt_samples", "int", 10, 1, 200, 1, label="noise samples",
          hidden_when=("smoothing", "none")),
    Param("nt_stdev", "float", 0.15, 0.0, 2.0, 0.01, label="noise std",
          help="standard deviation of the added Gaussian noise, in pixel units",
          hidden_when=("smoothing", "none")),
    Param("seed", "int", 0, 0, 2**31 - 1, 1, help="random seed of the noise",
          hidden_when=("smoothing", "none")),
)
ACTIVATIONS = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus)
UNHOOKED_ACTIVATIONS = (nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.PReLU,
                        nn.SELU, nn.CELU, nn.ReLU6)
def smoothed(attribution, task: Task, **kwargs) -> torch.Tensor:
    """Run a captum method on all targets at once, through a NoiseTunnel when asked."""
    p = task.params
    if p.get("smoothing", "none") == "none":
        return attribution.attribute(task.batch, target=task.targets, **kwargs)
    with seeded(p["seed"], task.image.device):
        return NoiseTunnel(attribution).attribute(
            task.batch, nt_type=p["smoothing"], nt_samples=p["nt_samples"],
            stdevs=p["nt_stdev"], target=task.targets, **kwargs)


def unhooked_activations(adapter) -> str | None:
    """DeepLift and guided backprop hook activation modules; unknown ones would be skipped."""
    unknown = sorted({type(m).__name__ for m in adapter.model.modules()
                      if isinstance(m, UNHOOKED_ACTIVATIONS)})
    if unknown:
        return (f"it has no rule for {', '.join(unknown)} (supported: ReLU, ELU, LeakyReLU, "
                "Sigmoid, Tanh, Softplus); use integrated_gradients instead")
    return None


def has_activation_modules(adapter) -> str | None:
    if not any(isinstance(m, ACTIVATIONS) for m in adapter.model.modules()):
        return ("the model has no activation modules (nn.ReLU, ...); this method hooks them, so "
                "write activations as modules instead of torch.relu calls in forward")
    return None


def needs_activation_modules(adapter) -> str | None:
    return unhooked_activations(adapter) or has_activation_modules(adapter)


def all_of(*checks):
    """``available`` from several checks: the first reason found, cheapest checks first."""
    def check(adapter) -> str | None:
        for one in checks:
            reason = one(adapter)
            if reason:
                return reason
        return None
    return check


def per_target_rows(task: Task, attribute) -> torch.Tensor:
    """``attribute(inputs, targets)`` of the image for every target, in passes within the
    memory budget (SmoothGrad through ``noise_tunnel``)."""
    if task.params["smoothing"] != "none":
        return noise_tunnel(task, attribute)
    out = torch.empty_like(task.batch)
    targets = task.target_tensor

    def evaluate(rows: torch.Tensor) -> torch.Tensor:
        return attribute(task.image.expand(len(rows), *task.image.shape[1:]).contiguous(),
                         targets[rows])

    def store(rows: torch.Tensor, maps: torch.Tensor) -> None:
        out[rows] = maps

    in_passes(task, torch.arange(len(targets), device=targets.device), evaluate, store)
    return out


def saliency(task: Task) -> torch.Tensor:
    def gradients(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        grads = input_gradients(task.adapter.forward_module, inputs, targets)
        return grads.abs() if task.params["absolute"] else grads

    return per_target_rows(task, gradients)


def input_x_gradient(task: Task) -> torch.Tensor:
    def times_gradient(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return inputs * input_gradients(task.adapter.forward_module, inputs, targets)

    return per_target_rows(task, times_gradient)


def guided_backprop(task: Task) -> torch.Tensor:
    require(task, "guided_backprop", guided_problem)
    return smoothed(GuidedBackprop(prepared_copy(task.adapter, task.image)), task)


@functools.lru_cache(maxsize=64)
def path_weights(integration: str, n_steps: int) -> tuple[list[float], list[float]]:
    """captum's own step sizes and alphas (Gauss-Legendre nodes cost ms to compute: cached)."""
    step_sizes, alphas = approximation_parameters(integration)
    return step_sizes(n_steps), alphas(n_steps)


def integrated_gradients(task: Task) -> torch.Tensor:
    p = task.params
    if p["smoothing"] != "none":
        return smoothed(IntegratedGradients(task.adapter.forward_module), task,
                        baselines=task.baseline_batch, n_steps=p["n_steps"],
                        method=p["integration"],
                        internal_batch_size=internal_batch_size(task,
                                                                p["n_steps"] * p["nt_samples"]))
    step_sizes, alphas = path_weights(p["integration"], p["n_steps"])
    x, b = task.image, task.baseline
    alpha = torch.tensor(alphas, dtype=x.dtype, device=x.device)
    weight = torch.tensor(step_sizes, dtype=x.dtype, device=x.device)
    n_targets, n_nodes = len(task.targets), len(alphas)
    targets = task.target_tensor
    total = torch.zeros_like(task.batch)
    model = task.adapter.forward_module

    def evaluate(rows: torch.Tensor) -> torch.Tensor:  # row = node · n_targets + target
        nodes = rows // n_targets
        points = b + alpha[nodes].view(-1, 1, 1, 1) * (x - b)
        return input_gradients(model, points, targets[rows % n_targets])

    def accumulate(rows: torch.Tensor, grads: torch.Tensor) -> None:
        total.index_add_(0, rows % n_targets, grads * weight[rows // n_targets].view(-1, 1, 1, 1))

    done, weight_done = 0, 0.0
    for nodes in (node_rounds(n_nodes) if task.progressive else [list(range(n_nodes))]):
        chosen = torch.tensor(nodes, device=x.device)
        rows = (chosen[:, None] * n_targets + torch.arange(n_targets, device=x.device)).reshape(-1)
        done = in_passes(task, rows, evaluate, accumulate, done, n_nodes * n_targets)
        weight_done += float(weight[chosen].sum())
        # an interim round: the nodes so far, re-weighted to the whole path
        task.deliver(total * (float(weight.sum()) / weight_done) * (x - b),
                     done // n_targets, n_nodes, "steps")
    return total * (x - b)


def deeplift(task: Task) -> torch.Tensor:
    """captum's DeepLift on a prepared copy (activations out of place, one module per call,
    overlapping max-pools made non-overlapping: captum's rule loses shares where windows
    overlap, 77 % of f(x) − f(baseline) on ResNet-18 with a uniform baseline), checked for
    completeness: a map that misses f(x) − f(baseline) by more than half is refused."""
    require(task, "deeplift", deeplift_problem)
    model = prepared_copy(task.adapter, task.image, split_pools=True)
    maps = DeepLift(model).attribute(task.batch, baselines=task.baseline_batch,
                                     target=task.targets)
    scores = [task.adapter.image_scores(x)[0] for x in (task.image, task.baseline)]
    gap = (scores[0] - scores[1])[task.targets]
    # relative to the largest gap, floored at 1 % of the largest logit (a tiny gap is no scale)
    scale = max(float(gap.abs().max()), 0.01 * float(scores[0].abs().max()))
    pools = [display_name(name) for name, m in model.named_modules()
             if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d))]
    cause = (f"captum's max-pool rule ({', '.join(pools[:2])}), which is approximate when a "
             "ReLU feeds the pool directly and the pooled maxima of the image and the baseline "
             "sit at different places (a far baseline such as uniform noise): try the zero or "
             "blur baseline" if pools else
             "an operation DeepLift has no rule for (a non-linear function outside torch's "
             "function API, or a layer reused differently)")
    check_sums("deeplift", maps, gap, scale, "f(x) − f(baseline)", cause)
    return maps


def check_finite(method: str, maps: torch.Tensor, cause: str) -> None:
    if not torch.isfinite(maps).all():
        raise InputError(f"{method} returned NaN or infinite values on this model, likely "
                         f"because of {cause}; use integrated_gradients or occlusion")


def check_sums(method: str, maps: torch.Tensor, expected: torch.Tensor, scale: float,
               what: str, cause: str, gross: float = 0.5) -> float:
    """A hook-based method's own cheap check: its maps must be finite and sum to
    ``expected`` per target within ``gross`` × ``scale``. Returns the largest relative
    error; raises InputError beyond ``gross``."""
    check_finite(method, maps, cause)
    sums = maps.detach().flatten(1).sum(1).double()
    expected = expected.detach().double()
    scale = max(scale, 1e-12)
    errors = (sums - expected).abs() / scale
    worst = int(errors.argmax())
    if float(errors[worst]) > gross:
        raise InputError(
            f"{method}'s map sums to {float(sums[worst]):.4g} but {what} is "
            f"{float(expected[worst]):.4g} (off by {100 * float(errors[worst]):.3g} % of the "
            f"largest): the result is wrong, likely because of {cause}; use "
            "integrated_gradients or occlusion")
    return float(errors.max())


def gradient_shap(task: Task) -> torch.Tensor:
    """Expected gradients: baselines drawn from the reference images, else the baseline."""
    if task.data is not None:
        baselines = task.data
    else:
        baselines = task.baseline
        task.notes.append("gradient_shap drew its baselines from the chosen baseline only; pass "
                          "data=images to draw them from reference images (expected gradients)")
    return expected_gradients(task, baselines)


register(MethodSpec(
    "integrated_gradients", "Integrated gradients", "captum",
    "gradients averaged along the straight path from the baseline to the image; the map "
    "sums to f(image) − f(baseline)", integrated_gradients,
    params=(Param("n_steps", "int", 64, 1, 1000, 1, label="steps",
                  help="path steps; more steps make the map sum closer to f(x) − f(baseline)"),
            Param("integration", "choice", "gausslegendre",
                  choices=("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
                           "riemann_middle"))) + SMOOTHING,
    needs_baseline=True, complete=True, streams=lambda p: p.get("smoothing", "none") == "none"))
register(MethodSpec("saliency", "Saliency (gradient)", "captum",
                    "gradient of the target score with respect to each pixel", saliency,
                    params=(Param("absolute", "bool", True, label="absolute gradient"),)
                    + SMOOTHING, streams=True))
register(MethodSpec("input_x_gradient", "Input × gradient", "captum",
                    "pixel value times its gradient", input_x_gradient, params=SMOOTHING,
                    streams=True))
register(MethodSpec("deeplift", "DeepLift", "captum",
                    "rescale rule: contributions relative to the baseline; sums to "
                    "f(image) − f(baseline)", deeplift, needs_baseline=True, complete=True,
                    available=all_of(unhooked_activations, available_check(deeplift_problem),
                                     has_activation_modules)))
register(MethodSpec(
    "gradient_shap", "GradientSHAP (expected gradients)", "captum",
    "gradients at random points between the image and baselines drawn from data=", gradient_shap,
    params=(Param("n_samples", "int", 20, 1, 500, 1, label="samples"),
            Param("stdev", "float", 0.0, 0.0, 2.0, 0.01, label="noise std"),
            Param("seed", "int", 0, 0, 2**31 - 1, 1)),
    needs_baseline=True, uses_data=True, stochastic=True, streams=True))
register(MethodSpec("guided_backprop", "Guided backprop", "captum",
                    "gradients with negative signals stopped at every ReLU", guided_backprop,
                    params=SMOOTHING,
                    available=all_of(unhooked_activations, available_check(guided_problem),
                                     has_activation_modules)))
