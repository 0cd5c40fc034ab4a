"""Attention rollout (Abnar & Zuidema 2020) and attention relevance (Chefer, Gur & Wolf 2021)
for vision transformers: torchvision's ``VisionTransformer`` (``nn.MultiheadAttention``) and
Hugging Face ViTs (``ViTForImageClassification``).

Both read each block's per-head attention probabilities A (batch, heads, T, T) on a copy of
the model (``Probe``): torchvision's attention layers are called with ``need_weights=False``,
so the copy's ``nn.MultiheadAttention`` layers compute the same attention by hand and keep
A; a Hugging Face copy switches to its eager attention, which returns A. The copy shares
the user's weights; nothing of the user's model (weights, flags, ``.grad``, hooks) changes.

- rollout: per block the heads fused (mean, max or min), the residual added as the
  identity, rows renormalised, multiplied through the blocks. Class-independent.
- relevance: per block Ā = mean over heads of (∇A ⊙ A)⁺, ∇A the gradient of the target's
  score; R = I, then R ← R + Ā·R through the blocks. One backward pass for all targets.

The map is the class token's row over the patch tokens (a model without a class token: the
mean row), laid out on the patch grid (``cam_methods.token_grid``) and upsampled.

>>> import torch
>>> from torch import nn
>>> from xai_widgets import explain, methods
>>> from xai_widgets.zoo.nets import TinyViT
>>> e = explain(TinyViT(), torch.rand(3, 16, 16), "attention_rollout", targets=[0, 2])
>>> e.attributions.shape
(2, 16, 16)
>>> methods.available(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()))["attention_rollout"][:44]
'attention_rollout needs a vision transformer'
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from xai_widgets.errors import InputError
from xai_widgets.methods.cam_methods import last_attention, token_grid
from xai_widgets.methods.model_trace import display_name, hookable, shallow_copy, unwrap_children
from xai_widgets.methods.registry import MethodSpec, Param, Task, register

SUPPORTED = ("a vision transformer (torchvision's VisionTransformer or another model built on "
             "nn.MultiheadAttention, or a Hugging Face ViT such as ViTForImageClassification)")
FUSIONS = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}


def _is_hf(module: nn.Module) -> bool:
    return type(module).__module__.startswith("transformers.") and hasattr(module, "config")


def _hf_attentions(model: nn.Module) -> list[nn.Module]:
    """Hugging Face attention layers (class name ending in ``Attention``) of ``model``."""
    return [m for m in model.modules() if _is_hf(m) and type(m).__name__.endswith("Attention")]


def transformer_support(name: str):
    """``available``: None for a model with attention whose probabilities can be read."""
    def check(adapter) -> str | None:
        model = hookable(adapter)
        if any(isinstance(m, nn.MultiheadAttention) for m in model.modules()) or \
                _hf_attentions(model):
            return None
        found = last_attention(model)
        if found is None:
            return f"{name} needs {SUPPORTED}; this model has no attention layers"
        return (f"{name} needs {SUPPORTED}; this model's attention layer "
                f"{display_name(found[0])} ({type(found[1]).__name__}) is neither, so its "
                "attention probabilities cannot be read: use grad_cam or integrated_gradients")
    return check


def _mha_forward(self: nn.MultiheadAttention, query, key, value, key_padding_mask=None,
                 need_weights=True, attn_mask=None, average_attn_weights=True, is_causal=False,
                 *, keep):
    """``nn.MultiheadAttention.forward`` (no masks, no bias_k/v, no zero attention, eval)
    written out, handing the per-head probabilities (N, heads, Tq, Tk) to ``keep``."""
    if key_padding_mask is not None or attn_mask is not None or is_causal or \
            self.bias_k is not None or self.add_zero_attn:
        raise InputError("attention masks, bias_k/bias_v and add_zero_attn are not supported "
                         "by the attention methods: use grad_cam or integrated_gradients")
    unbatched = query.dim() == 2
    if unbatched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    if self.batch_first and not unbatched:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    # now (T, N, E), as torch's own implementation has it
    if self._qkv_same_embed_dim:
        weights = self.in_proj_weight.chunk(3)
    else:
        weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
    biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
    heads, size = self.num_heads, self.head_dim

    def split(x, w, b):  # (T, N, E) -> (N, heads, T, head_dim)
        return F.linear(x, w, b).reshape(x.shape[0], x.shape[1], heads, size).permute(1, 2, 0, 3)

    q, k, v = (split(x, w, b) for x, w, b in zip((query, key, value), weights, biases, strict=True))
    probs = torch.softmax(q @ k.transpose(-2, -1) * size ** -0.5, dim=-1)
    keep(probs)
    out = (probs @ v).permute(2, 0, 1, 3).reshape(query.shape[0], query.shape[1], self.embed_dim)
    out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
    if unbatched:
        out = out.squeeze(1)
    elif self.batch_first:
        out = out.transpose(0, 1)
    if not need_weights:
        return out, None
    shown = probs.mean(1) if average_attn_weights else probs
    return out, shown.squeeze(0) if unbatched else shown


class Probe:
    """A copy of the logits module (preprocessing included, compiled parts unwrapped, eval
    mode; weights shared, not copied) whose attention layers keep their probabilities."""

    def __init__(self, adapter):
        self.model = unwrap_children(shallow_copy(hookable(adapter))).eval()
        self.probs: list[torch.Tensor] = []
        for module in self.model.modules():
            if isinstance(module, nn.MultiheadAttention):
                module.forward = types.MethodType(
                    lambda mha, *a, **k: _mha_forward(mha, *a, keep=self._keep, **k), module)
            if _is_hf(module) and hasattr(module, "set_attn_implementation"):
                module.set_attn_implementation("eager")
        for module in self.model.modules():
            if _is_hf(module) and getattr(module.config, "_attn_implementation", None) != "eager":
                module.config._attn_implementation = "eager"  # older transformers
            if _is_hf(module) and hasattr(module.config, "output_attentions"):
                module.config.output_attentions = True  # older ones return A only then
        for module in _hf_attentions(self.model):
            module.register_forward_hook(self._hf_output)

    def _keep(self, probs: torch.Tensor) -> None:
        if not any(probs is seen for seen in self.probs):  # nested layers return the same A
            self.probs.append(probs)

    def _hf_output(self, module, args, output) -> None:
        for item in output if isinstance(output, (tuple, list)) else ():
            if isinstance(item, torch.Tensor) and item.ndim == 4 and \
                    item.shape[-1] == item.shape[-2]:
                self._keep(item)

    def run(self, batch: torch.Tensor, grad: bool) -> tuple[torch.Tensor, list, tuple]:
        """Scores, each block's (N, heads, T, T) probabilities, and (extra tokens, grid side)."""
        self.probs = []
        with torch.set_grad_enabled(grad):
            scores = self.model(batch.detach().requires_grad_(grad))
        probs, self.probs = self.probs, []
        if not probs:
            raise InputError("no attention probabilities were seen in the forward pass: this "
                             "model's attention layers are not called; use grad_cam")
        shapes = {tuple(p.shape[-2:]) for p in probs}
        if len(shapes) > 1 or any(p.shape[0] != batch.shape[0] for p in probs):
            shown = sorted({tuple(p.shape) for p in probs})
            raise InputError(f"the attention maps have shapes {shown}: the attention methods "
                             "need global attention over the same tokens in every block (not "
                             "windows or pooled tokens, as in Swin); use grad_cam")
        grid = token_grid(probs[0].shape[-1])
        if grid is None:
            raise InputError(f"cannot lay {probs[0].shape[-1]} tokens out on a square patch grid "
                             "(a square image is needed): use grad_cam or integrated_gradients")
        return scores, probs, grid


def _class_row(r: torch.Tensor, extra: int) -> torch.Tensor:
    """The class token's row over the patches; without a class token the mean row."""
    return (r[:, 0] if extra else r.mean(1))[:, extra:]


def to_maps(task: Task, rows: torch.Tensor, side: int) -> torch.Tensor:
    """(N, side²) patch values as (N, C, H, W) maps, upsampled, repeated over channels."""
    mode = task.params["upsample"]
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    maps = F.interpolate(rows.reshape(-1, 1, side, side).float(),
                         size=tuple(task.image.shape[-2:]), mode=mode, **kwargs)
    return maps.expand(-1, task.image.shape[1], -1, -1).contiguous().detach()


def rollout(probs: list[torch.Tensor], fusion: str = "mean", discard_ratio: float = 0.0,
            check=lambda: None, report=lambda done, total: None) -> torch.Tensor:
    """(N, T, T) rollout: per block fused heads, lowest ``discard_ratio`` of the entries set to
    0, plus the identity, rows renormalised; multiplied through the blocks."""
    n, t = probs[0].shape[0], probs[0].shape[-1]
    eye = torch.eye(t, dtype=probs[0].dtype, device=probs[0].device)
    result = eye.expand(n, t, t)
    for done, a in enumerate(probs, 1):
        check()
        fused = FUSIONS[fusion](a)
        drop = int(discard_ratio * t * t)
        if drop:
            flat = fused.flatten(1)
            flat = flat.scatter(1, flat.topk(drop, dim=1, largest=False).indices, 0.0)
            fused = flat.view_as(fused)
        a = fused + eye
        result = (a / a.sum(-1, keepdim=True)) @ result
        report(done, len(probs))
    return result


def relevance(probs: list[torch.Tensor], grads: list[torch.Tensor], check=lambda: None,
              report=lambda done, total: None) -> torch.Tensor:
    """(N, T, T) relevance: R = I, then R ← R + mean_heads((∇A ⊙ A)⁺)·R per block."""
    n, t = probs[0].shape[0], probs[0].shape[-1]
    result = torch.eye(t, dtype=probs[0].dtype, device=probs[0].device).expand(n, t, t)
    for done, (a, g) in enumerate(zip(probs, grads, strict=True), 1):
        check()
        result = result + (g * a).clamp(min=0).mean(1) @ result
        report(done, len(probs))
    return result


def attention_rollout(task: Task) -> torch.Tensor:
    """One forward pass; the same map for every target."""
    task.check()
    _, probs, (extra, side) = Probe(task.adapter).run(task.image, grad=False)
    r = rollout([p.detach() for p in probs], task.params["head_fusion"],
                task.params["discard_ratio"], task.check, task.report)
    maps = to_maps(task, _class_row(r, extra), side)
    return maps.expand(len(task.targets), -1, -1, -1).contiguous()


def attention_relevance(task: Task) -> torch.Tensor:
    """One forward and one backward pass over the image repeated once per target."""
    task.check()
    scores, probs, (extra, side) = Probe(task.adapter).run(task.batch, grad=True)
    rows = torch.arange(len(task.targets), device=scores.device)
    selected = scores[rows, task.target_tensor.to(scores.device)].sum()
    grads = torch.autograd.grad(selected, probs)  # no parameter .grad is touched
    r = relevance([p.detach() for p in probs], [g.detach() for g in grads], task.check,
                  task.report)
    return to_maps(task, _class_row(r, extra), side)


UPSAMPLE = Param("upsample", "choice", "bilinear", choices=("bilinear", "nearest"),
                 help="how the patch grid is enlarged to the image: bilinear (smooth) or "
                      "nearest (one constant square per patch)")

register(MethodSpec(
    "attention_rollout", "Attention rollout", "torch",
    "vision transformers: each block's attention (heads fused) plus the residual identity, "
    "multiplied through the blocks; the class token's attention to each patch. "
    "Class-independent: every target gets the same map", attention_rollout,
    params=(Param("head_fusion", "choice", "mean", choices=tuple(FUSIONS), label="head fusion",
                  help="how each block's heads are combined: their mean, max or min"),
            Param("discard_ratio", "float", 0.0, 0.0, 0.99, 0.05, label="discard ratio",
                  help="fraction of each block's lowest attention weights set to 0 before "
                       "the rollout (0 = keep all; 0.9 keeps only the strongest links)"),
            UPSAMPLE),
    spatial=True, shares_passes=True, available=transformer_support("attention_rollout")))
register(MethodSpec(
    "attention_relevance", "Attention relevance (Chefer)", "torch",
    "vision transformers: each block's attention weighted by its gradient for the target "
    "(positive part, mean over heads), accumulated through the blocks (Chefer et al. 2021); "
    "the class token's relevance to each patch. Class-specific", attention_relevance,
    params=(UPSAMPLE,), spatial=True, available=transformer_support("attention_relevance")))
