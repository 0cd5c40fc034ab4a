"""SHAP backend: DeepExplainer, GradientExplainer, and KernelSHAP over superpixels.

``deep_shap`` and ``gradient_explainer`` call shap's own explainers with the reference
images (``data=``) as background; without them the background is the chosen baseline
image, and the notes say so. ``kernel_shap`` computes the numbers of captum's
``KernelShap`` (its sampler, its 10⁶ weights on the all-kept and all-hidden samples, a
weighted least-squares fit) for every class from one set of perturbed images; captum's own
loop costs one pass over the samples per class and shap's ``KernelExplainer`` spends more
time in Python than in the model (see benchmarks/bench_superpixels.py).

>>> from xai_widgets import explain
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> e = explain(model, images[0], method="deep_shap", data=images[100:140])
>>> e.attributions.shape
(10, 28, 28)
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.distributions import Categorical

from xai_widgets.methods.captum_methods import check_sums
from xai_widgets.methods.gradients import seeded
from xai_widgets.methods.lime_methods import SAMPLING_PARAMS, fitted_in_rounds
from xai_widgets.methods.model_checks import available_check, deep_shap_problem, require
from xai_widgets.methods.model_surgery import TargetSelect, prepared_copy
from xai_widgets.methods.model_trace import plain_copy
from xai_widgets.methods.registry import MethodSpec, Param, Task, register
from xai_widgets.methods.surrogate import weighted_linear_fit
from xai_widgets.superpixels import SEGMENTATION_PARAMS

ENDPOINT_WEIGHT = 1e6  # captum's stand-in for the infinite Shapley weight of the endpoints
BACKGROUND = Param("background_size", "int", 100, 1, 2000, 1, label="background size",
                   help="reference images (from data=) used as the background")


def background(task: Task) -> torch.Tensor:
    """A seeded subset of the reference images, or the baseline image when there are none."""
    if task.data is None:
        task.notes.append("no reference images were given (data=images): the background is "
                          "the chosen baseline image alone")
        return task.baseline
    size = min(task.params["background_size"], len(task.data))
    generator = torch.Generator().manual_seed(task.params.get("seed", 0))
    order = torch.randperm(len(task.data), generator=generator)[:size]
    return task.data[order.to(task.data.device)]


def per_target(values, task: Task) -> torch.Tensor:
    """shap's (1, C, H, W, T) values, one output per requested target (the model shap sees
    is ``TargetSelect``), as (T, C, H, W)."""
    array = np.asarray(values)[0]
    if array.ndim == task.image.ndim - 1:  # a single output without its axis
        array = array[..., None]
    return torch.from_numpy(np.moveaxis(array, -1, 0).astype(np.float32)).to(task.image.device)


def deep_shap(task: Task) -> torch.Tensor:
    """shap's DeepExplainer on a prepared copy: activations out of place, one module per
    call, every layer's output cloned (shap's full backward hooks hand out views the model
    may modify in place, as in ``out += identity``), overlapping max-pools split into
    windows and a non-overlapping pool (shap's rule is exact only without overlap), and the
    requested targets as the only outputs (shap explains every output, one backward pass
    each: 1000 classes took 45 s on ResNet-18). The values must sum to
    f(x) − E[f(background)]: a gross miss is refused, a small one noted."""
    import shap

    require(task, "deep_shap", deep_shap_problem)
    model = TargetSelect(prepared_copy(task.adapter, task.image, clone_outputs=True,
                                       split_pools=True), task.targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "unrecognized nn.Module" for linear layers
        explainer = shap.DeepExplainer(model, background(task))
        maps = per_target(explainer.shap_values(task.image, check_additivity=False), task)
        with torch.no_grad():
            scores = model(task.image)[0].double()
    gap = scores - torch.as_tensor(np.asarray(explainer.expected_value).reshape(-1),
                                   dtype=torch.float64, device=scores.device)
    error = check_sums("deep_shap", maps, gap, max(float(gap.abs().max()),
                                                    0.01 * float(scores.abs().max())),
                       "f(x) − E[f(background)]", "an operation DeepSHAP has no rule for")
    if error > 0.01:
        task.notes.append(f"the DeepSHAP values sum to f(x) − E[f(background)] only within "
                          f"{100 * error:.1f} % of the largest gap")
    return maps


def gradient_explainer(task: Task) -> torch.Tensor:
    """shap's GradientExplainer on a copy whose outputs are the requested targets only."""
    import shap

    p = task.params
    model = TargetSelect(plain_copy(task.adapter), task.targets)
    with seeded(p["seed"], task.image.device), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # shap's default batch of 50 samples held 3.3 GiB on a ResNet-50 at 224 px
        batch = min(50, task.per_pass or 50)
        explainer = shap.GradientExplainer(model, background(task), batch_size=batch)
        values = explainer.shap_values(task.image, nsamples=p["n_samples"], rseed=p["seed"])
    return per_target(values, task)


def kernel_shap_samples(n_samples: int, n_segments: int, seed: int) -> np.ndarray:
    """captum's KernelShap draw: all kept, all hidden, then k ~ Shapley kernel, k random."""
    counts = torch.arange(n_segments, dtype=torch.float)
    probabilities = torch.tensor(n_segments - 1) / (counts * (n_segments - counts))
    probabilities[0] = 0.0
    choose = Categorical(probabilities)
    rows = [np.ones(n_segments, dtype=np.int64), np.zeros(n_segments, dtype=np.int64)]
    with seeded(seed, torch.device("cpu")):
        while len(rows) < n_samples:
            k = choose.sample()
            values = torch.randn(1, n_segments)
            threshold = torch.kthvalue(values, n_segments - k).values.item()
            rows.append((values > threshold).long()[0].numpy())
    return np.stack(rows[:n_samples])


def kernel_shap(task: Task) -> torch.Tensor:
    def fit(keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        weights = torch.ones(len(keep), dtype=torch.float64)
        weights[:2] = ENDPOINT_WEIGHT
        return weighted_linear_fit(keep, scores, weights)[0]

    return fitted_in_rounds(task, kernel_shap_samples, fit)


register(MethodSpec(
    "deep_shap", "DeepSHAP", "shap",
    "shap.DeepExplainer: DeepLift-style contributions averaged over background images; "
    "sums to f(x) − E[f(background)]", deep_shap,
    params=(BACKGROUND, Param("seed", "int", 0, 0, 2**31 - 1, 1, help="background subset")),
    needs_baseline=True, uses_data=True, available=available_check(deep_shap_problem)))
register(MethodSpec(
    "gradient_explainer", "SHAP GradientExplainer", "shap",
    "shap.GradientExplainer: expected gradients against background images", gradient_explainer,
    params=(BACKGROUND, Param("n_samples", "int", 200, 1, 5000, 1, label="samples"),
            Param("seed", "int", 0, 0, 2**31 - 1, 1)),
    needs_baseline=True, uses_data=True, stochastic=True))
register(MethodSpec(
    "kernel_shap", "KernelSHAP (superpixels)", "shap",
    "Shapley values of superpixels for the class probability: hidden segments take the "
    "baseline; sums to f(x) − f(baseline)", kernel_shap,
    params=SEGMENTATION_PARAMS + SAMPLING_PARAMS,
    needs_baseline=True, stochastic=True, spatial=True, superpixels=True,
    shares_passes=True))
