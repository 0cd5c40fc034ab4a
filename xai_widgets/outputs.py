"""What users' models return and what they bring with them, read without a wrapper.

``LogitsModule`` is the one module every method differentiates: it applies the preprocess
(a normalisation, a channels-last permute), casts the input to the model's dtype, calls the
model and turns what it returns (a tuple, a dict, a Hugging Face ``ModelOutput``, a single
binary logit) into a plain (N, C) tensor of class scores. ``Preset`` reads a torchvision
``WeightsEnum`` member: its class names, its resize and centre crop (applied once to the
image) and its normalisation (composed into the differentiated path).

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
from collections.abc import Mapping
from typing import Any, Callable

import torch
import torch.nn.functional as F
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
            return out["logits"], "the model returns a dict: its 'logits' entry is taken as the class scores"
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


class Normalise:
    """(x − mean) / std per channel, in the input's dtype and on its device."""

    def __init__(self, mean: list[float], std: list[float]):
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalise(mean={self.mean}, std={self.std})"


_MODES = {"nearest": "nearest", "nearest-exact": "nearest-exact", "bilinear": "bilinear",
          "bicubic": "bicubic"}


class Preset:
    """A torchvision ``WeightsEnum`` member read by duck typing: ``meta["categories"]``, and
    ``transforms()`` with ``resize_size``, ``crop_size``, ``mean``, ``std`` and
    ``interpolation`` (torchvision's ``ImageClassification``)."""

    def __init__(self, weights: Any):
        meta = getattr(weights, "meta", None)
        make = getattr(weights, "transforms", None)
        if not isinstance(meta, Mapping) or "categories" not in meta or not callable(make):
            raise InputError(f"weights must be a torchvision weights member such as "
                             f"ResNet18_Weights.DEFAULT (with .meta['categories'] and "
                             f".transforms()), got {type(weights).__name__}")
        transform = make()
        missing = [a for a in ("resize_size", "crop_size", "mean", "std") if not hasattr(transform, a)]
        if missing:
            raise InputError(f"weights.transforms() is a {type(transform).__name__} without "
                             f"{', '.join(missing)}: pass preprocess= and classes= instead of "
                             "weights= and resize the image yourself")
        self.classes = [str(c) for c in meta["categories"]]
        self.resize_size = _size(transform.resize_size)
        self.crop_size = _size(transform.crop_size)
        mode = getattr(transform, "interpolation", "bilinear")
        mode = str(getattr(mode, "value", mode)).lower()
        if mode not in _MODES:
            raise InputError(f"the weights resize with {mode!r} interpolation, which is not "
                             f"supported ({', '.join(_MODES)}): resize the image yourself and pass "
                             "preprocess= instead of weights=")
        self.mode = _MODES[mode]
        self.antialias = bool(getattr(transform, "antialias", True)) and self.mode in ("bilinear", "bicubic")
        self.normalise = Normalise(list(transform.mean), list(transform.std))
        if len(self.crop_size) == 1:
            self.crop_size = self.crop_size * 2

    def geometry(self, batch: torch.Tensor) -> tuple[torch.Tensor, str | None]:
        """Resize and centre-crop (N,C,H,W) as ``transforms()`` does; an image already of the
        crop size is kept as it is (so that the shown image is never processed twice)."""
        height, width = batch.shape[-2:]
        crop_h, crop_w = self.crop_size
        if (height, width) == (crop_h, crop_w):
            return batch, (f"the image is already {crop_h}×{crop_w} (the weights' crop size): it "
                           "is explained as it is, without the weights' resize and crop")
        size = self.resized(height, width)
        if size != [height, width]:
            align = False if self.mode in ("bilinear", "bicubic") else None
            batch = F.interpolate(batch, size=size, mode=self.mode, align_corners=align,
                                  antialias=self.antialias)
        batch = center_crop(batch, crop_h, crop_w)
        return batch, (f"the image ({height}×{width}) is resized to {size[0]}×{size[1]} and "
                       f"centre-cropped to {crop_h}×{crop_w}, as the weights' transforms() do; "
                       "their normalisation is part of the explained model")

    def resized(self, height: int, width: int) -> list[int]:
        """torchvision's output size: one number sets the shorter side, two set (h, w)."""
        if len(self.resize_size) == 2:
            return list(self.resize_size)
        short, long = sorted((height, width))
        new_short, new_long = self.resize_size[0], int(self.resize_size[0] * long / short)
        return [new_short, new_long] if height <= width else [new_long, new_short]


def _size(value: Any) -> list[int]:
    values = [int(value)] if isinstance(value, (int, float)) else [int(v) for v in value]
    if len(values) not in (1, 2) or min(values) < 1:
        raise InputError(f"the weights' transforms() have an unusable size {value!r}: pass "
                         "preprocess= instead of weights= and resize the image yourself")
    return values


def center_crop(batch: torch.Tensor, crop_h: int, crop_w: int) -> torch.Tensor:
    """torchvision's centre crop: zero padding where the image is smaller than the crop."""
    height, width = batch.shape[-2:]
    if crop_h > height or crop_w > width:
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        batch = F.pad(batch, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2])
        height, width = batch.shape[-2:]
    top = round((height - crop_h) / 2.0)
    left = round((width - crop_w) / 2.0)
    return batch[..., top:top + crop_h, left:left + crop_w].contiguous()
