"""LRP (captum's rules) on a prepared copy of the model, checked for relevance conservation.

A rule composite is data: layer types → rule (epsilon everywhere; gamma on conv layers;
alpha1beta0 on conv and linear layers). Layers captum has no rule for, and residual
additions, are refused by ``available`` with the layer named; a map whose relevance is not
conserved is an error, never a silently wrong picture.

>>> from xai_widgets import explain
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> explain(model, images[0], method="lrp", targets=[4]).attributions.shape
(1, 28, 28)
"""

from __future__ import annotations

import torch
from captum.attr import LRP
from captum.attr._utils import lrp_rules
from torch import nn

from xai_widgets.methods.captum_methods import all_of, check_finite, check_sums
from xai_widgets.methods.model_checks import available_check, lrp_problem, require
from xai_widgets.methods.model_surgery import prepared_copy
from xai_widgets.methods.model_trace import display_name, hookable
from xai_widgets.methods.registry import MethodSpec, Param, Task, register

# Identity in eval mode: in the LRP copy they become nn.Dropout, which captum passes through.
LRP_IDENTITY_LAYERS = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
LRP_RULE_LAYERS = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                   nn.BatchNorm2d)
LRP_PASS_LAYERS = (nn.ReLU, nn.Dropout, nn.Tanh, nn.Flatten)


class LrpFlatten(nn.Module):
    """nn.Flatten for the LRP copy: the reshape happens outside any hooked leaf layer."""

    def __init__(self, flatten: nn.Flatten):
        super().__init__()
        self.start_dim, self.end_dim = flatten.start_dim, flatten.end_dim
        self.passthrough = nn.Dropout()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.passthrough(torch.flatten(x, self.start_dim, self.end_dim))


def lrp_support(adapter) -> str | None:
    leaves = [(n, m) for n, m in hookable(adapter).named_modules() if not list(m.children())]
    allowed = LRP_RULE_LAYERS + LRP_PASS_LAYERS + LRP_IDENTITY_LAYERS
    bad = [f"{display_name(name)} ({type(m).__name__})" for name, m in leaves
           if not isinstance(m, allowed)]
    if bad:
        return ("captum's LRP supports Conv2d, Linear, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, "
                "BatchNorm2d, ReLU, Tanh, Dropout and Flatten; this model also has "
                + ", ".join(bad[:4]) + (" ..." if len(bad) > 4 else ""))
    return None


LRP_COMPOSITES = {
    "epsilon": lambda p: {LRP_RULE_LAYERS: lambda: lrp_rules.EpsilonRule(epsilon=p["epsilon"])},
    "gamma": lambda p: {(nn.Conv2d,): lambda: lrp_rules.GammaRule(gamma=p["gamma"]),
                        LRP_RULE_LAYERS: lambda: lrp_rules.EpsilonRule(epsilon=p["epsilon"])},
    "alpha1beta0": lambda p: {(nn.Conv2d, nn.Linear): lrp_rules.Alpha1_Beta0_Rule,
                              LRP_RULE_LAYERS: lambda: lrp_rules.EpsilonRule(epsilon=p["epsilon"])},
}


def lrp_model(adapter, params: dict, image: torch.Tensor | None = None) -> nn.Module:
    """A prepared copy of the model (activations out of place, one module per call, traced
    on ``image`` or a guessed input) with one LRP rule per layer; the user's model is never
    touched."""
    model = prepared_copy(adapter, image, keep=False)  # the rules below change the copy
    composite = LRP_COMPOSITES[params["rule"]](params)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, LRP_IDENTITY_LAYERS):
                setattr(parent, name, nn.Dropout())
            elif isinstance(child, nn.Flatten):
                setattr(parent, name, LrpFlatten(child))
    model.eval()
    for module in model.modules():
        if list(module.children()):
            continue
        for layer_types, make_rule in composite.items():
            if isinstance(module, layer_types):
                module.rule = make_rule()
                break
    return model


def lrp(task: Task) -> torch.Tensor:
    """captum's LRP, checked for relevance conservation. Without biases the map must sum to
    the target's score within half of the largest logit; biases (and batch norm) absorb
    relevance, on small random nets more than the score itself, so with them only an
    explosion is refused: a sum off by more than 10 × the largest logit (ResNet's residual
    additions, were they missed, give 10¹¹). alpha1beta0 propagates positive evidence
    only, so it is checked on targets with a positive score."""
    require(task, "lrp", lrp_problem)
    model = lrp_model(task.adapter, task.params, task.image)
    biased = any(isinstance(getattr(m, "bias", None), torch.Tensor) and bool(m.bias.any())
                 for m in model.modules())
    maps = LRP(model).attribute(task.batch, target=task.targets)
    scores = task.adapter.logits(task.image)[0]
    target_scores = scores[task.target_tensor]
    checked = (target_scores > 0 if task.params["rule"] == "alpha1beta0"
               else torch.ones_like(target_scores, dtype=torch.bool))
    cause = ("an operation or layer LRP has no rule for, through which captum passed the raw "
             "gradient, or an epsilon too small for near-zero activations (relevance not "
             "conserved)")
    check_finite("lrp", maps, cause)
    if checked.any():
        # relative to the largest logit: biases and epsilon absorb a share of every score
        check_sums("lrp", maps[checked], target_scores[checked], float(scores.abs().max()),
                   "the target's score", cause, gross=10.0 if biased else 0.5)
    return maps


register(MethodSpec(
    "lrp", "LRP", "captum", "layer-wise relevance propagation with a rule composite", lrp,
    params=(Param("rule", "choice", "epsilon", choices=tuple(LRP_COMPOSITES),
                  help="epsilon everywhere; gamma on conv layers; alpha1beta0 on conv and linear"),
            Param("epsilon", "float", 1e-9, 0.0, 10.0, 0.01),
            Param("gamma", "float", 0.25, 0.0, 10.0, 0.05)),
    available=all_of(lrp_support, available_check(lrp_problem))))
