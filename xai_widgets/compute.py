"""One attribution computation: normalised inputs in, an ``Explanation`` out.

``explain()`` and the widget's engine both call ``compute``; it validates the request
against the method's spec, makes the baseline, runs the backend in eval mode and packs the
result.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from xai_widgets import methods
from xai_widgets.baselines import blend, check_alpha, make_baseline
from xai_widgets.budget import run_in_chunks
from xai_widgets.errors import InputError
from xai_widgets.explanation import Explanation

MAX_SECONDS = 600.0  # longer work is refused with an estimate and what to pass instead


def compute(adapter, image: torch.Tensor, method: str, targets: Any = "all",
            params: dict | None = None, baseline: Any = "zero", baseline_alpha: float = 0.0,
            data: torch.Tensor | None = None, notes: list[str] | None = None,
            progress: Callable[[int, int], None] | None = None,
            cancelled: Callable[[], bool] | None = None, memory_budget: int | None = None,
            max_seconds: float | None = MAX_SECONDS,
            on_round: Callable[[Explanation], None] | None = None) -> Explanation:
    """Explain ``image`` (1,C,H,W, on the model's device) with ``method`` for ``targets``.

    Targets are computed in chunks that fit ``memory_budget`` bytes of activations (default:
    ``budget.default_budget``); work estimated above ``max_seconds`` is refused up front.
    With ``on_round``, slow methods (integrated gradients, SmoothGrad, GradientSHAP,
    occlusion, LIME, KernelSHAP) refine in rounds and each interim ``Explanation`` (its
    ``refining`` says how far) goes to ``on_round``; the returned one is final and equals
    the computation without ``on_round``."""
    start = time.perf_counter()
    if not isinstance(method, str):
        raise InputError(f"method must be a name such as 'integrated_gradients', got {method!r}")
    spec = methods.spec(method)
    reason = spec.available(adapter)
    if reason:
        raise InputError(f"{method} cannot explain this model: {reason}")
    resolved = spec.resolve(dict(params or {}), tuple(image.shape[-2:]))
    alpha = check_alpha(baseline_alpha)
    scores = adapter.image_scores(image)[0]
    if not torch.isfinite(scores).all():
        shown = (", ".join(f"{v:.3g}" for v in scores[:6].tolist())
                 + (" …" if len(scores) > 6 else ""))
        raise InputError(f"the model returned NaN or infinite scores for this image: [{shown}]; "
                         "check its weights (a diverged training run, a bad checkpoint) and that "
                         "the image is scaled and normalised as the model expects (preprocess=)")
    probabilities = adapter.to_probabilities(scores[None])[0]
    target_list = adapter.check_targets(targets, probabilities.shape[0])
    baseline_image = None
    if spec.needs_baseline:
        baseline_image = baseline_for(adapter, image, baseline, alpha, data,
                                      seed=resolved.get("seed", 0))
    task = methods.Task(adapter, image, target_list, resolved, baseline_image, data,
                        progress=progress, cancelled=cancelled, notes=list(notes or []))

    def pack(raw: torch.Tensor, refining: str = "", completeness_error=None) -> Explanation:
        attributions = raw[:, 0] if spec.spatial else raw.sum(dim=1)
        return Explanation(
            attributions=attributions.float().cpu().numpy(), raw=raw.float().cpu().numpy(),
            targets=target_list, probabilities=probabilities.float().cpu().numpy(),
            method=method, params=resolved,
            baseline=baseline if isinstance(baseline, str) else "array", baseline_alpha=alpha,
            seconds=time.perf_counter() - start, image=image[0].detach().float().cpu().numpy(),
            baseline_image=(None if baseline_image is None
                            else baseline_image[0].float().cpu().numpy()),
            classes=adapter.classes, notes=tuple(adapter.notes) + tuple(task.notes),
            completeness_error=completeness_error, refining=refining)

    if on_round is not None:
        rounds = []

        def deliver(raw: torch.Tensor, done: int, total: int, unit: str) -> None:
            rounds.append(done)
            on_round(pack(raw, f"round {len(rounds)}: {done} of {total} {unit}"))

        task.on_round = deliver
    with torch.enable_grad(), adapter.eval_mode(), warnings.catch_warnings():
        # captum warns about hooks it sets and removes and about inputs it marks for grads
        warnings.filterwarnings("ignore", category=UserWarning, module="captum")
        if no_difference(image, baseline_image):
            raw = image.new_zeros(len(target_list), *image.shape[1:])
            task.notes.append("the baseline equals the image (baseline α = 1): there is no "
                              "difference to attribute, so the map is zero; lower baseline α")
        else:
            raw = run_in_chunks(spec, task, memory_budget, max_seconds).detach()
    attributions = raw[:, 0] if spec.spatial else raw.sum(dim=1)
    completeness_error = None
    if spec.complete and task.params.get("smoothing", "none") == "none" and raw.any():
        completeness_error = relative_gap(adapter, attributions, image, baseline_image, target_list)
        if completeness_error > 0.01:
            fix = ("raise n_steps" if "n_steps" in resolved else
                   "captum's DeepLift is exact only when each ReLU comes before its max-pool")
            task.notes.append(f"the maps sum to f(x) − f(baseline) only within "
                              f"{100 * completeness_error:.1f} % of the largest gap: {fix}")
    if not torch.isfinite(raw).all():
        task.notes.append("the backend returned NaN or infinite attributions (a dead or saturated "
                          "model region?); try another method or baseline")
    return pack(raw, completeness_error=completeness_error)


def baseline_for(adapter, image: torch.Tensor, baseline: Any, alpha: float = 0.0,
                 data: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """The (1,C,H,W) baseline a computation uses: a named baseline, an array of the image's
    shape or ``counterfactual:B``, blended toward the image by ``alpha``. Explanations,
    superpixel masks and the diagnostics all take their baseline from here."""
    if isinstance(baseline, str) and baseline.startswith("counterfactual"):
        reference = counterfactual_baseline(adapter, image, baseline, data)
    else:
        reference = make_baseline(baseline, image, data, seed=seed)
    return blend(reference, image, check_alpha(alpha))


def counterfactual_baseline(adapter, image: torch.Tensor, name: str, data) -> torch.Tensor:
    """``counterfactual:B`` (or ``counterfactual:B:method``): x′ near x that the model assigns
    to class B, as the baseline of a "why A, not B?" explanation (one-vs-one attribution).
    The default search is ``prototype`` with reference images, else ``wachter``; cached."""
    parts = name.split(":")
    if len(parts) not in (2, 3) or not parts[1].lstrip("-").isdigit():
        raise InputError(f"baseline {name!r}: write 'counterfactual:B' for class B, or "
                         "'counterfactual:B:wachter' (prototype, adversarial) for a method")
    method = parts[2] if len(parts) == 3 else ("prototype" if data is not None else "wachter")
    cf = find_counterfactual(adapter, image, int(parts[1]), method, data)
    if not cf.success:
        raise InputError(f"no counterfactual baseline for class {parts[1]}: {cf.message}")
    return torch.from_numpy(np.array(cf.image))[None].to(image.device)


def _search_key(adapter, image: torch.Tensor, target: int, method: str) -> tuple:
    return (adapter.version(), image.data_ptr(), image._version, int(target), method)


def cached_counterfactual(adapter, image: torch.Tensor, target: int, method: str):
    """The counterfactual already found for this model, image, class and method, or None."""
    return adapter.counterfactuals.get(_search_key(adapter, image, target, method))


def find_counterfactual(adapter, image: torch.Tensor, target: int, method: str, data=None,
                        progress=None, cancelled=None):
    """One counterfactual search per model, image, class and method: the baselines of
    "why not B?" and the counterfactual panel share the result."""
    from xai_widgets.methods.counterfactuals import search_counterfactual

    key = _search_key(adapter, image, target, method)
    if key not in adapter.counterfactuals:
        adapter.counterfactuals[key] = search_counterfactual(
            adapter, image, int(target), method, {}, data, progress=progress, cancelled=cancelled)
    return adapter.counterfactuals[key]


def counterfactuals_to_every_class(adapter, image: torch.Tensor, method: str = "cfrl") -> dict:
    """{class: Counterfactual} of ``image`` toward every class but the predicted one, in one
    batched pass of a one-pass method (``cfrl``); each is cached as a single search would
    be, so picking any of those classes afterwards makes no model call."""
    from xai_widgets.methods.counterfactuals import batched_counterfactuals

    with torch.no_grad():
        probabilities = adapter.probabilities(image)
    prediction = int(probabilities[0].argmax())
    targets = [c for c in range(probabilities.shape[1]) if c != prediction]
    found = batched_counterfactuals(adapter, image, targets, method, probabilities)
    for target, cf in zip(targets, found, strict=True):
        adapter.counterfactuals[_search_key(adapter, image, target, method)] = cf
    return dict(zip(targets, found, strict=True))


def no_difference(image: torch.Tensor, baseline: torch.Tensor | None) -> bool:
    """Whether a baseline method has nothing to explain: the baseline is the image (up to
    float rounding of the α blend)."""
    if baseline is None:
        return False
    scale = float(image.abs().max().clamp_min(1.0))
    return float((image - baseline).abs().max()) <= 1e-6 * scale


def relative_gap(adapter, attributions: torch.Tensor, image: torch.Tensor,
                 baseline: torch.Tensor, targets: list[int]) -> float:
    """max over targets |Σ map − (f_t(x) − f_t(b))|, relative to the largest |f_t(x) − f_t(b)|."""
    gap = (adapter.image_scores(image)[0, targets]
           - adapter.image_scores(baseline)[0, targets]).double()
    error = (attributions.flatten(1).sum(1).double() - gap).abs().max()
    return float(error / gap.abs().max().clamp_min(1e-12))
