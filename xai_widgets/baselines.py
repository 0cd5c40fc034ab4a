"""Baselines (reference images) for attribution methods, and blending toward the input.

>>> import torch
>>> from xai_widgets.baselines import make_baseline, blend
>>> x = torch.rand(1, 1, 28, 28)
>>> b = make_baseline("blur", x)
>>> torch.allclose(blend(b, x, 1.0), x)
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xai_widgets.errors import InputError

BASELINES = ("zero", "blur", "uniform", "mean", "max")
DESCRIPTIONS = {
    "zero": "all pixels 0 (black)",
    "blur": "the image under a strong Gaussian blur",
    "uniform": "uniform noise over the value range (seeded)",
    "mean": "the mean of the reference images (data=)",
    "max": "all pixels at the top of the value range (white)",
}


def value_range(x: torch.Tensor, data: torch.Tensor | None = None) -> tuple[float, float]:
    """The pixel value range: of the reference images if given, else at least 0..1."""
    ref = data if data is not None else x
    low, high = float(ref.min()), float(ref.max())
    return (min(0.0, low), max(1.0, high)) if data is None else (low, high)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    out = x
    for shape in ((1, 1, 1, -1), (1, 1, -1, 1)):
        weight = kernel.reshape(shape).repeat(channels, 1, 1, 1)
        pad = (radius, radius, 0, 0) if shape[-1] == -1 else (0, 0, radius, radius)
        out = F.conv2d(F.pad(out, pad, mode="replicate"), weight, groups=channels)
    return out


def make_baseline(kind, x: torch.Tensor, data: torch.Tensor | None = None,
                  seed: int = 0) -> torch.Tensor:
    """The baseline for image ``x`` (1,C,H,W) by name, or an array/tensor of x's shape."""
    if not isinstance(kind, str):
        from xai_widgets.adapter import to_chw

        tensor, _ = to_chw(kind, x.shape[1])
        if tuple(tensor.shape) != tuple(x.shape[1:]):
            raise InputError(f"the baseline array has shape {tuple(tensor.shape)} but the image "
                             f"has {tuple(x.shape[1:])}: pass a baseline of the image's shape")
        return tensor.unsqueeze(0).to(x.device)
    low, high = value_range(x, data)
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "max":
        return torch.full_like(x, high)
    if kind == "blur":
        return gaussian_blur(x, sigma=max(x.shape[-2:]) / 10)
    if kind == "uniform":
        generator = torch.Generator().manual_seed(seed)
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)
        return (low + (high - low) * noise).to(x.device)
    if kind == "mean":
        if data is None:
            raise InputError("the 'mean' baseline needs reference images: pass data=images "
                             "(or choose another baseline: zero, blur, uniform, max)")
        return data.mean(0, keepdim=True).to(x.device)
    raise InputError(f"unknown baseline {kind!r}: choose one of {', '.join(BASELINES)}, or pass "
                     "an array of the image's shape")


def blend(baseline: torch.Tensor, x: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 − alpha) · baseline + alpha · x: alpha 0 is the baseline, 1 the image itself."""
    return (1.0 - alpha) * baseline + alpha * x


def check_alpha(alpha) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"baseline_alpha must be a number in 0..1, got {alpha!r}") from None
    if not 0.0 <= value <= 1.0:
        raise InputError(f"baseline_alpha must be in 0..1 (0 = the baseline, 1 = the image), "
                         f"got {value}")
    return value
