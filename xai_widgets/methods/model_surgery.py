"""The copies hook-based methods work on (the user's model is never modified).

``prepared_copy`` returns a full copy with compiled modules unwrapped, activations out of
place, each layer called several times per pass split into one copy per call (``PerUse``),
and on request every layer's output cloned (``CloneOutput``, for shap's full backward
hooks) and overlapping max-pools made non-overlapping (``WindowTiles``, for the DeepLift
max-pool rule). What needs changing is read from ``model_trace.trace``.

>>> import torch
>>> from torch import nn
>>> from xai_widgets.adapter import ModelAdapter
>>> model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(36, 2))
>>> prepared = prepared_copy(ModelAdapter(model), torch.rand(1, 1, 8, 8))
>>> prepared.model[1].inplace, model[1].inplace       # the user's model keeps its own
(False, True)
"""


from __future__ import annotations

import copy

import torch
from torch import nn

# -- tensor operations, by how a propagation rule sees them ---------------------------------
from xai_widgets.methods.model_trace import plain_copy, trace


class PerUse(nn.Module):
    """A layer called several times per forward pass, split into one copy per call: the k-th
    call of a pass runs ``copies[k]``, so each copy sees one input and one output, as
    DeepLift's and LRP's hooks require. The root's pre-hook resets the count each pass."""

    def __init__(self, module: nn.Module, uses: int):
        super().__init__()
        self.copies = nn.ModuleList([module] + [copy.deepcopy(module) for _ in range(uses - 1)])
        self.calls = 0

    def forward(self, *args, **kwargs):
        module = self.copies[self.calls % len(self.copies)]
        self.calls += 1
        return module(*args, **kwargs)


class CloneOutput(nn.Module):
    """A layer whose output is cloned: shap's full backward hooks hand out views that the
    model's own in-place operations (``out += identity``) may not modify."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        out = self.module(*args, **kwargs)
        return out.clone() if isinstance(out, torch.Tensor) else out


class WindowTiles(nn.Module):
    """The k×k windows of an overlapping max-pool laid side by side (a copy: linear), so
    that a max-pool with stride k over the tiles computes the same maxima without overlap.
    Padding takes the dtype's lowest finite value (a max-pool pads with −inf, which would
    make the rules' input differences NaN)."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        pair = nn.modules.utils._pair
        self.kernel, self.stride, self.padding = (pair(pool.kernel_size), pair(pool.stride),
                                                  pair(pool.padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        x = nn.functional.pad(x, (pw, pw, ph, ph), value=torch.finfo(x.dtype).min)
        tiles = x.unfold(2, kh, sh).unfold(3, kw, sw)  # (N, C, Ho, Wo, kh, kw)
        n, c, ho, wo = tiles.shape[:4]
        return tiles.permute(0, 1, 2, 4, 3, 5).reshape(n, c, ho * kh, wo * kw)


def split_overlapping_pools(model: nn.Module) -> None:
    """Replace each max-pool whose windows overlap (stride < kernel, as in ResNet's stem) by
    ``WindowTiles`` then a non-overlapping max-pool. The DeepLift max-pool rule scatters each
    output's share back with ``max_unpool``, which overwrites rather than adds when one input
    is the maximum of two windows; without overlap the rule is exact."""
    pair = nn.modules.utils._pair
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if not isinstance(child, nn.MaxPool2d) or child.ceil_mode or child.return_indices:
                continue
            kernel, stride = pair(child.kernel_size), pair(child.stride or child.kernel_size)
            if pair(child.dilation) != (1, 1) or all(
                    s >= k for s, k in zip(stride, kernel, strict=True)):
                continue
            parent._modules[name] = nn.Sequential(WindowTiles(child),
                                                  nn.MaxPool2d(kernel, stride=kernel))


def _reset_calls(model: nn.Module, args) -> None:
    for module in model.modules():
        if isinstance(module, PerUse):
            module.calls = 0


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Point every reference to ``old`` inside ``model`` at ``new``."""
    for parent in list(model.modules()):
        if parent is new:
            continue
        for name, child in list(parent._modules.items()):
            if child is old:
                parent._modules[name] = new


class TargetSelect(nn.Module):
    """The model's scores for the requested targets only (shap explains every output)."""

    def __init__(self, model: nn.Module, targets: list[int]):
        super().__init__()
        self.model = model
        self.targets = list(targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.targets]


def prepared_copy(adapter, image: torch.Tensor | None, clone_outputs: bool = False,
                  split_pools: bool = False, keep: bool = True) -> nn.Module:
    """A copy of the logits module for hooks: compiled modules unwrapped, eval mode,
    activations out of place, each layer called k > 1 times per pass split into k copies
    (``PerUse``); with ``clone_outputs`` every layer's output cloned and with
    ``split_pools`` overlapping max-pools made non-overlapping (for shap).

    With ``keep`` the last copy is kept on the adapter for the same model version, image
    shape and options, so a new target or parameter does not copy and trace the model
    again; a method that changes its copy (LRP sets rules) passes ``keep=False``."""
    if not keep:
        return _prepare(adapter, image, clone_outputs, split_pools)
    key = (adapter.version(), None if image is None else tuple(image.shape), clone_outputs,
           split_pools)
    kept = getattr(adapter, "_prepared", None)
    if kept is not None and kept[0] == key:
        return kept[1]
    adapter._prepared = None  # the old copy goes before the new one is made
    model = _prepare(adapter, image, clone_outputs, split_pools)
    adapter._prepared = (key, model)
    return model


def forget_prepared(adapter) -> None:
    """Drop the kept copy (after a failure that may have left hooks on it)."""
    adapter._prepared = None


def _prepare(adapter, image, clone_outputs: bool, split_pools: bool) -> nn.Module:
    model = plain_copy(adapter)
    for module in model.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    found = trace(adapter, image)
    if found is not None:
        modules = dict(model.named_modules(remove_duplicate=False))
        for name, uses in found.uses.items():
            module = modules.get(name)
            if uses > 1 and module is not None and not isinstance(module, PerUse):
                _replace(model, module, PerUse(module, uses))
        model.register_forward_pre_hook(_reset_calls)
    if split_pools:
        split_overlapping_pools(model)
    if clone_outputs:
        for parent in list(model.modules()):
            for name, child in list(parent._modules.items()):
                if child is not None and not list(child.children()) and not isinstance(
                        parent, CloneOutput):
                    parent._modules[name] = CloneOutput(child)
    return model


# -- reasons --------------------------------------------------------------------------------
