"""What users' models return and what they bring with them, read without a wrapper.

``LogitsModule`` is the one module every method differentiates: it applies the preprocess
(a normalisation, a channels-last permute), casts the input to the model's dtype, calls the
model and turns what it returns (a tuple, a dict, a Hugging Face ``ModelOutput``, a single
binary logit) into a plain (N, C) tensor of class scores. What ``weights=`` brings (class
names, resize and crop, normalisation) is read in ``xai_widgets.presets``.

>>> import torch
>>> from torch import nn
>>> class Pair(nn.Module):
...     def forward(self, x):
...         return x.flatten(1)[:, :3], "features"
>>> module = LogitsModule(Pair(), None, strip_softmax=False)
>>> tuple(module(torch.zeros(2, 1, 2, 2)).shape), module.notes[0][:25]
((2, 3), 'the model returns a tuple')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from xai_widgets.errors import InputError

LAYOUTS = ("NCHW", "NHWC")
_LOW_PRECISION = (torch.float16, torch.bfloat16)


class LogitsModule(nn.Module):
    """``model(preprocess(x))`` as a plain (N, C) score tensor, as one module for hooks.

    A trailing Softmax is removed (scores are its logits); a trailing Sigmoid is removed when
    the model has one output (the binary logit). ``single_is_probability``: a single output
    is σ(z) already (``output="probabilities"``), not the logit z.
    """

    def __init__(self, model: nn.Module, preprocess: Callable | None, strip_softmax: bool,
                 single_is_probability: bool = False):
        super().__init__()
        self.sigmoid = None
        if strip_softmax:
            self.model = model[:-1]
        elif (not single_is_probability and isinstance(model, nn.Sequential) and len(model) > 1
              and isinstance(model[-1], nn.Sigmoid)):
            self.model, self.sigmoid = model[:-1], model[-1]
        else:
            self.model = model
        self.preprocess = preprocess
        self.single_is_probability = single_is_probability
        self.single_logit = False  # the model returned one logit z, read as scores (0, z)
        self.notes: list[str] = []  # what was read from the output, once each

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.preprocess is not None:
            x = self.preprocess(x)
        dtype = parameter_dtype(self.model)
        if dtype is not None and x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
        out, taken = scores_tensor(self.model(x))
        if taken:
            self._note(taken)
        single = is_single_score(out, n)
        if self.sigmoid is not None:
            if not single:
                out = self.sigmoid(out)  # multi-label scores: the model's own output
            else:
                self._note("the model ends in Sigmoid on one output: attributions are taken "
                           "on the logit before it")
        if single:
            out = self._two_classes(out.reshape(n, 1))
        return out.float() if out.dtype in _LOW_PRECISION else out

    def _two_classes(self, z: torch.Tensor) -> torch.Tensor:
        if self.single_is_probability:
            self._note("the model returns one probability p per image: read as two classes "
                       "[1 − p, p]; attributions explain those probabilities")
            return torch.cat([1 - z, z], dim=1)
        self.single_logit = True
        self._note("the model returns one score per image: read as a binary classifier's logit "
                   "z, class 1 with probability σ(z) and class 0 with 1 − σ(z); the two scores "
                   "attributed are (0, z), so class 0's map is empty and class 1's map shows "
                   "what pushes towards class 1")
        return torch.cat([torch.zeros_like(z), z], dim=1)

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


def parameter_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter (or buffer), if any."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    for tensor in model.buffers():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def is_single_score(out: torch.Tensor, n: int) -> bool:
    """One score per image: (N, 1), or (N,) when the model squeezed it."""
    return (out.ndim == 2 and out.shape == (n, 1)) or (out.ndim == 1 and out.shape[0] == n)


def scores_tensor(out: Any) -> tuple[torch.Tensor, str | None]:
    """The class-score tensor in what a model returned, and a note saying what was taken."""
    if isinstance(out, torch.Tensor):
        return out, None
    kind = type(out).__name__
    logits = getattr(out, "logits", None)  # ModelOutput, or a namedtuple with that field
    if isinstance(logits, torch.Tensor):
        return logits, f"the model returns a {kind}: its .logits are taken as the class scores"
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), torch.Tensor):
            return out["logits"], ("the model returns a dict: its 'logits' entry is taken as the "
                                   "class scores")
        tensors = [key for key, value in out.items() if isinstance(value, torch.Tensor)]
        if len(tensors) == 1:
            return out[tensors[0]], (f"the model returns a dict: its only tensor, {tensors[0]!r}, "
                                     "is taken as the class scores")
        raise InputError(
            f"the model returns a dict with keys {list(out)} and no 'logits' entry: return the "
            "class scores as a tensor, or wrap the model in a Module whose forward returns "
            "model(x)[key] for the key that holds them")
    if isinstance(out, (tuple, list)):
        if out and isinstance(out[0], torch.Tensor):
            return out[0], (f"the model returns a {'list' if isinstance(out, list) else 'tuple'}: "
                            "its first element is taken as the class scores")
        first = type(out[0]).__name__ if out else "nothing"
        raise InputError(f"the model returns a {kind} whose first element is {first}, not a "
                         "tensor: wrap it in a Module whose forward returns the (batch, n_classes) "
                         "scores")
    raise InputError(f"the model returned a {kind}; an image classifier must return a (batch, "
                     "n_classes) tensor (or a tuple, dict or ModelOutput whose logits are one)")


def check_single_input(model: nn.Module) -> None:
    """Raise when the model's forward needs more than one input (the image batch)."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # builtins, scripted modules: nothing to read
        return
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in signature.parameters.values()
             if p.kind in kinds and p.default is inspect.Parameter.empty]
    if len(names) > 1:
        extra = ", ".join(names[1:])
        raise InputError(
            f"the model's forward takes {len(names)} inputs ({', '.join(names)}): wrap it in a "
            "Module whose forward takes one image batch, e.g. class OneInput(nn.Module): "
            f"def forward(self, x): return model(x, {extra}) with {extra} fixed")


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) image batch → (N,H,W,C), for models declared ``layout="NHWC"``."""
    return x.permute(0, 2, 3, 1)


def check_layout(layout: Any) -> str:
    value = layout.upper() if isinstance(layout, str) else layout
    if value not in LAYOUTS:
        raise InputError(f"layout must be 'NCHW' (channels first, PyTorch's default) or 'NHWC' "
                         f"(the model takes (N,H,W,C) batches), got {layout!r}")
    return value


class Pipeline:
    """Callables applied in order (image space → model input)."""

    def __init__(self, steps: list[Callable]):
        self.steps = steps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(getattr(s, '__name__', repr(s)) for s in self.steps)})"


def compose(*steps: Callable | None) -> Callable | None:
    """One callable for the steps given (None when there are none; a single step as is)."""
    kept = [step for step in steps if step is not None]
    return None if not kept else kept[0] if len(kept) == 1 else Pipeline(kept)
