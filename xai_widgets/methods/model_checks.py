"""Whether a hook-based method can explain a traced model, and if not, exactly why.

Each ``*_problem`` reads a ``model_trace.Trace`` and returns None or a reason that names the
operation and where it runs; ``available_check`` turns one into a spec's ``available``
and ``require`` re-checks on the real image before a method runs.

>>> import torch
>>> from torch import nn
>>> from xai_widgets.adapter import ModelAdapter
>>> from xai_widgets.methods.model_trace import trace
>>> class Block(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.conv, self.relu = nn.Conv2d(1, 1, 3, padding=1), nn.ReLU()
...     def forward(self, x):
...         return self.relu(self.conv(x)) + x
>>> adapter = ModelAdapter(nn.Sequential(Block(), nn.Flatten(), nn.Linear(64, 2)))
>>> print(lrp_problem(trace(adapter, torch.rand(1, 1, 8, 8))))  # doctest: +ELLIPSIS
LRP here has no rule for the residual addition in 0 (Block): ...
"""

from __future__ import annotations

from collections.abc import Callable

from xai_widgets.errors import InputError
from xai_widgets.methods.model_trace import (
    ACTIVATION_OPS,
    PRODUCT_OPS,
    SHAP_NONLINEAR,
    SHAPE_OPS,
    Op,
    Trace,
    trace,
)


def _listing(ops: list[Op], limit: int = 3) -> str:
    """'X in a (A) and 7 more places; Y in b (B)': grouped by what, first place named."""
    groups: dict[str, list[Op]] = {}
    for op in ops:
        groups.setdefault(op.what(), []).append(op)
    parts = []
    for what, members in list(groups.items())[:limit]:
        places = list(dict.fromkeys(op.where() for op in members))
        more = f" and {len(places) - 1} more place{'s' if len(places) > 2 else ''}" if len(
            places) > 1 else ""
        parts.append(f"{what} in {places[0]}{more}")
    if len(groups) > limit:
        parts.append(f"{len(groups) - limit} more kind(s) of operation")
    return "; ".join(parts)


def nonlinear_outside(found: Trace, supported: Callable[[type], bool]) -> list[Op]:
    """Non-linear operations not inside a layer that the method has a rule for."""
    return [op for op in found.ops
            if not op.linear and not (op.leaf and supported(op.module_type))]


def deeplift_problem(found: Trace | None) -> str | None:
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    if found is None:
        return None
    bad = nonlinear_outside(found, lambda t: t in SUPPORTED_NON_LINEAR)
    if not bad:
        return None
    return (f"DeepLift has no rule for {_listing(bad)}: captum would treat it as linear and "
            "the map would not sum to f(x) − f(baseline); use integrated_gradients (exact "
            "for any differentiable model) or occlusion")


def deep_shap_problem(found: Trace | None) -> str | None:
    if found is None:
        return None
    bad = nonlinear_outside(found, lambda t: t.__name__ in SHAP_NONLINEAR)
    if not bad:
        return None
    return (f"shap's DeepExplainer has no rule for {_listing(bad)} (it has rules for "
            "ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, Softmax, SELU, GELU and max-pool "
            "layers): the values would not sum to f(x) − E[f(background)]; use "
            "gradient_explainer or gradient_shap instead")


def guided_problem(found: Trace | None) -> str | None:
    from xai_widgets.methods.captum_methods import ACTIVATIONS

    if found is None:
        return None
    # a softmax (a probability head, attention) only rescales: captum passes it plainly too
    bad = [op for op in found.ops if op.name in ACTIVATION_OPS - {"softmax", "log_softmax"}
           and not (op.leaf and issubclass(op.module_type, ACTIVATIONS))]
    if not bad:
        return None
    return (f"guided backprop guides only nn.ReLU layers and this model also applies "
            f"{_listing(bad)}, whose gradients would pass unguided or unhooked; write "
            "activations as nn.ReLU modules, or use saliency / integrated_gradients")


def lrp_problem(found: Trace | None) -> str | None:
    if found is None:
        return None
    bad = [op for op in found.ops if not op.leaf and op.name not in SHAPE_OPS and not (
        op.linear and op.derived == 1 and op.name not in PRODUCT_OPS - {"mul", "multiply"})]
    if not bad:
        return None
    return (f"LRP here has no rule for {_listing(bad)}: captum's LRP propagates relevance "
            "only through layers (Conv2d, Linear, BatchNorm2d, pooling) and would pass "
            "the raw gradient through this operation, so relevance would not be conserved "
            "and the map would be wrong; use integrated_gradients, deeplift or occlusion")


def available_check(problem: Callable[[Trace | None], str | None]) -> Callable:
    """``MethodSpec.available`` from a problem function: traced on a guessed input shape;
    None when no shape is found (the method re-checks on the real image)."""

    def check(adapter) -> str | None:
        try:
            return problem(trace(adapter))
        except Exception:  # noqa: BLE001 - available() must answer, never raise
            return None

    return check


def require(task, method: str, problem: Callable[[Trace | None], str | None]) -> None:
    """Raise the reason ``method`` cannot explain this model, traced on the task's image."""
    reason = problem(trace(task.adapter, task.image))
    if reason:
        raise InputError(f"{method} cannot explain this model: {reason}")

