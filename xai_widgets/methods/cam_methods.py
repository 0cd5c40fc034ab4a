"""Grad-CAM: the last conv layer's activations weighted by their mean gradient (captum's
``LayerGradCam``), and for vision transformers the tokens entering the last attention layer,
weighted the same way, with the class (and distillation) tokens dropped and the patch tokens
reshaped to their grid.

After the last attention layer only the class token reaches the head, so the patch tokens'
gradients vanish there: the tokens *entering* that layer are the last place where every
patch still matters (as pytorch-grad-cam does with ``blocks[-1].norm1``). Works for
torchvision's ``VisionTransformer`` (``nn.MultiheadAttention``) and Hugging Face ViTs (a
module whose class name ends in ``Attention``).

>>> from xai_widgets.zoo.nets import TinyViT
>>> last_attention(TinyViT())[0]
'attention'
>>> token_grid(17)
(1, 4)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from xai_widgets.errors import InputError
from xai_widgets.methods.model_trace import hookable, unwrap
from xai_widgets.methods.registry import MethodSpec, Param, Task, register


def last_attention(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The name and module of the model's last attention layer, or None (a CNN)."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention"):
            found = (name, module)
    return found


def token_grid(n_tokens: int) -> tuple[int, int] | None:
    """(extra tokens in front, grid side) when ``n_tokens`` is 0–2 extra tokens plus a
    square grid of patches; None otherwise."""
    for extra in (0, 1, 2):
        side = math.isqrt(max(n_tokens - extra, 0))
        if side >= 2 and side * side == n_tokens - extra:
            return extra, side
    return None


def _tokens(args: tuple, kwargs: dict) -> torch.Tensor | None:
    for value in (*args, kwargs.get("hidden_states"), kwargs.get("query")):
        if isinstance(value, torch.Tensor) and value.ndim == 3:
            return value
    return None


def token_grad_cam(model: nn.Module, attention: nn.Module, batch: torch.Tensor,
                   targets: list[int], relu: bool, upsample: str) -> torch.Tensor:
    """(N, 1, H, W) Grad-CAM maps, one per row of ``batch`` and its target."""
    seen: list[torch.Tensor] = []

    def keep(module, args, kwargs):
        tokens = _tokens(args, kwargs)
        if tokens is not None:
            seen.append(tokens)

    handle = attention.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        inputs = batch.detach().requires_grad_(True)  # the tokens depend on it: a graph
        scores = model(inputs)
    finally:
        handle.remove()
    if not seen:
        raise InputError(f"Grad-CAM found no token input of {type(attention).__name__}: pass "
                         "layer= a Conv2d layer, or use integrated_gradients")
    raw = seen[-1]
    batch_first = raw.shape[0] == batch.shape[0]  # else (T, N, D): batch_first=False
    tokens = raw if batch_first else raw.transpose(0, 1)
    grid = token_grid(tokens.shape[1])
    if grid is None:
        raise InputError(f"Grad-CAM cannot lay {tokens.shape[1]} tokens out on a square patch "
                         "grid: pass layer= a Conv2d layer, or use integrated_gradients")
    extra, side = grid
    rows = torch.arange(len(targets), device=scores.device)
    target = torch.as_tensor(targets, device=scores.device)
    gradients = torch.autograd.grad(scores[rows, target].sum(), raw)[0]
    gradients = gradients if batch_first else gradients.transpose(0, 1)
    patches, weights = tokens[:, extra:], gradients[:, extra:].mean(dim=1, keepdim=True)
    cam = (weights * patches).sum(-1).detach()
    cam = F.relu(cam) if relu else cam
    cam = cam.reshape(-1, 1, side, side)
    kwargs = {"align_corners": False} if upsample == "bilinear" else {}
    return F.interpolate(cam, size=tuple(batch.shape[-2:]), mode=upsample, **kwargs)


def needs_conv_layer(adapter) -> str | None:
    if not adapter.conv_layers() and last_attention(adapter.model) is None:
        return "Grad-CAM needs a Conv2d layer or an attention layer and the model has neither"
    return None


def conv_layer(task: Task) -> nn.Module:
    layers = task.adapter.conv_layers()
    name = task.params["layer"]
    if name == "auto":
        return list(layers.values())[-1]
    inner = {n: m for n, m in unwrap(task.adapter.model).named_modules()
             if isinstance(m, nn.Conv2d)}  # a compiled model's layers, without '_orig_mod.'
    if name not in layers and name in inner:
        return inner[name]
    if name not in layers:
        raise InputError(f"layer {name!r} is not a Conv2d layer of the model; choose one of "
                         f"{list(layers)} or 'auto' (the last one)")
    return layers[name]


def grad_cam(task: Task) -> torch.Tensor:
    """The last conv layer's Grad-CAM; for a vision transformer (layer "auto"), the tokens
    entering its last attention layer (``token_grad_cam``)."""
    p = task.params
    model = hookable(task.adapter)  # a compiled model's own layers, which hooks reach
    attention = last_attention(model) if p["layer"] == "auto" else None
    if attention is not None:
        cam = token_grad_cam(model, attention[1], task.batch, task.targets, p["relu"],
                             p["upsample"])
        return no_positive_evidence(task, cam).expand(-1, task.image.shape[1], -1, -1).contiguous()
    cam = LayerGradCam(model, conv_layer(task)).attribute(
        task.batch, target=task.targets, relu_attributions=p["relu"])
    cam = LayerAttribution.interpolate(cam, tuple(task.image.shape[-2:]), p["upsample"])
    return no_positive_evidence(task, cam).expand(-1, task.image.shape[1], -1, -1).contiguous()


def no_positive_evidence(task: Task, cam: torch.Tensor) -> torch.Tensor:
    """Say so when the ReLU leaves a map empty: every region speaks against the target."""
    if task.params["relu"] and bool((cam.flatten(1).amax(1) <= 0).any()):
        task.notes.append("Grad-CAM found no positive evidence for some targets (every region "
                          "speaks against them): turn the ReLU off to see the negative map")
    return cam


register(MethodSpec(
    "grad_cam", "Grad-CAM", "captum",
    "last conv layer's activations weighted by their mean gradient, upsampled (vision "
    "transformers: the patch tokens entering the last attention layer)", grad_cam,
    params=(Param("layer", "str", "auto", help="name of a Conv2d layer; 'auto' = the last one"),
            Param("relu", "bool", True, label="ReLU (positive evidence only)"),
            Param("upsample", "choice", "bilinear", choices=("bilinear", "nearest"))),
    spatial=True, available=needs_conv_layer))
