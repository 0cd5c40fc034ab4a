"""Class visualisation (activation maximisation): the image a model finds most typical of a
class, or that most excites one unit of a layer.

The image is optimised with Adam in image space 0..1 (a sigmoid of the parameter), through
the model's ``preprocess``, under four regularisers: L2 (dark, small images), total
variation (smooth ones), jitter (a random shift each step, so no single pixel pattern
carries the score) and a Gaussian blur every few steps. ``parameterization="fourier"``
optimises a 1/f-scaled spectrum instead (with decorrelated colours for RGB, as Lucid does);
``generator=`` optimises the latent of a decoder, so the image stays on the data's manifold.

A latent prior hides what the data never shows: the Clever-Hans model's corner tag shows in
its class-7 pixel and Fourier images, but in the autoencoder's only with ``latent_l2=0``.

>>> from xai_widgets import global_views
>>> from xai_widgets.zoo import load_demo
>>> model = load_demo()[0]
>>> v = global_views.visualize_class(model, target=3, steps=32)   # p(3) of the image
>>> v.image.shape, bool(v.probabilities[3] > 0.99), v.history[-1] > v.history[0]
((1, 28, 28), True, True)
>>> global_views.visualize_class(model, layer="fc1", unit=5, steps=32).layer
'fc1'
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xai_widgets.adapter import ModelAdapter, to_nchw
from xai_widgets.concepts import layer_module
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.methods.gradients import seeded

PARAMETERIZATIONS = ("pixel", "fourier")
# name: (default, lowest, highest, what it does); weights outside the range are refused
REGULARISERS = {
    "l2": (0.5, 0.0, 10.0, "pulls pixels towards 0 (dark background)"),
    "tv": (0.1, 0.0, 10.0, "total variation: smooths the image"),
    "jitter": (2, 0, 16, "random shift of up to this many pixels each step"),
    "blur_every": (8, 0, 1000, "blur the image every this many steps (0: never)"),
    "blur_sigma": (0.5, 0.0, 5.0, "standard deviation of that blur, in pixels"),
    "latent_l2": (0.1, 0.0, 10.0, "generator only: keeps the latent near the data's latents"),
    "lr": (0.2, 1e-5, 10.0, "Adam's step size"),
}
_PROBE_SIZES = (28, 32, 64, 96, 128, 224)
# Lucid's colour correlation (ImageNet), square root of its covariance, columns unit norm
_COLOURS = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOURS = _COLOURS / _COLOURS.norm(dim=0).max()


@dataclass(frozen=True, repr=False, eq=False)
class Visualization:
    """What ``visualize_class`` found: ``image`` (C,H,W) in 0..1; ``probabilities`` of every
    class for that image; ``history``: p(target) (or the unit's mean activation) at each step
    as the optimiser saw it (jittered); ``score``: the same for the final image; ``latent``:
    the generator's optimised latent; ``settings``: the regulariser weights used."""

    image: np.ndarray
    probabilities: np.ndarray
    history: tuple
    target: int | None
    layer: str | None
    unit: int | None
    steps: int
    seed: int
    score: float
    parameterization: str
    latent: np.ndarray | None = None
    settings: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        what = f"target={self.target}" if self.layer is None else f"{self.layer}[{self.unit}]"
        shape = "×".join(map(str, self.image.shape))
        return (f"Visualization({what}, score={self.score:.3g}, steps={self.steps}, "
                f"{self.parameterization}, {shape})")


def visualize_class(model: nn.Module, target: int | None = None, *, layer: str | None = None,
                    unit: int | None = None, steps: int = 256, seed: int = 0,
                    parameterization: str = "pixel", generator: Any = None,
                    latent_shape: Sequence[int] | None = None, data: Any = None,
                    image_shape: Sequence[int] | None = None, preprocess: Callable | None = None,
                    on_step: Callable | None = None, report_every: int = 8,
                    cancelled: Callable[[], bool] | None = None,
                    **weights: float) -> Visualization:
    """Optimise an image that the model gives class ``target`` with high probability (the
    objective is log p(target)), or that maximises the mean activation of channel ``unit``
    of ``layer`` (a feature of linear layers, the last axis of (N, tokens, D) outputs). The
    model, its training flags and the random state are left as they were; the same seed
    gives the same image.

    Regulariser keywords (defaults work on the demo CNN; values outside the range are an
    ``InputError``): ``l2`` 0..10 (0.5), ``tv`` 0..10 (0.1), ``jitter`` 0..16 pixels (2),
    ``blur_every`` steps 0..1000 (8, 0 is off), ``blur_sigma`` 0..5 pixels (0.5),
    ``latent_l2`` 0..10 (0.1), ``lr`` 1e-5..10 (0.2). A term that turns NaN or infinite
    while optimising is an ``InputError`` naming it.

    ``image_shape`` (C,H,W) is taken from ``data=`` images or the generator's output, else
    from the first Conv2d's in_channels and the one square size the model accepts; pass it
    when the model takes any size. ``generator``: a module mapping an (N,*latent_shape)
    latent to (N,C,H,W) images in 0..1, or an autoencoder with ``.decoder`` (and
    ``.encoder``); ``latent_shape`` is read from the argument, a ``latent_shape`` attribute or
    the encoder's output. The latent starts at the mean encoding of ``data`` (when there is an
    encoder) plus seeded noise, and ``latent_l2`` keeps it within their spread (without
    ``data`` and an encoder: seeded noise, no latent prior). Blur applies to images only.
    ``on_step(step, steps, image, score)`` runs every ``report_every`` steps and at the end;
    ``cancelled()`` is checked every step and raises ``Cancelled``.
    """
    settings = _check_arguments(weights, steps, report_every, parameterization, seed, target,
                                layer, unit, generator)
    adapter = ModelAdapter(model, preprocess=preprocess)
    device = adapter.device
    module = layer_module(model, layer) if layer is not None else None
    image_shape = _check_shape(image_shape)
    images = to_nchw(data, _channels(model, image_shape) or 1) if data is not None else None
    with seeded(seed, device), adapter.eval_mode(), _eval(generator):
        render, params, prior, blur = _parameterise(
            adapter, generator, latent_shape, images, image_shape, parameterization, device)
        kept: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda _m, _i, out: kept.append(out)) if (
            module is not None) else None
        try:
            start = render()
            scores = adapter.logits(start.detach())
            if layer is None:
                target = adapter.check_targets(target, scores.shape[1])[0]
            else:
                unit = _check_unit(kept, layer, int(unit))
            history = _optimise(adapter, render, params, prior, blur, settings, target, unit,
                                kept, steps, on_step, report_every, cancelled)
            kept.clear()
            image = render().detach()
            probabilities = adapter.probabilities(image)[0]
            score = float(probabilities[target]) if layer is None else _activation(kept, unit)
        finally:
            if handle is not None:
                handle.remove()
    latent = params[0].detach().cpu().numpy().copy() if generator is not None else None
    return Visualization(image[0].cpu().numpy(), probabilities.cpu().numpy(), tuple(history),
                         target, layer, None if layer is None else int(unit), steps, seed, score,
                         "generator" if generator is not None else parameterization, latent,
                         settings)


@contextlib.contextmanager
def _eval(module: Any) -> Iterator[None]:
    """The generator in eval mode (no dropout, no batch-norm updates), flags restored."""
    flags = [(m, m.training) for m in module.modules()] if isinstance(module, nn.Module) else []
    try:
        yield [m.train(False) for m, _ in flags]
    finally:
        for m, flag in flags:
            m.training = flag


def _check_arguments(weights: dict, steps, report_every, parameterization, seed, target, layer,
                     unit, generator) -> dict:
    """The regulariser settings, after every argument that needs no model is checked."""
    if (layer is None) == (target is None):
        raise InputError("pass target= (a class index) or layer= and unit= (a channel of "
                         "that layer), not both and not neither")
    if layer is None and unit is not None:
        raise InputError("unit= needs layer=: pass the layer whose channel to maximise")
    for name, value in (("target", target), ("unit", unit)):
        if (name == "target") == (layer is None) and (
                isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise InputError(f"{name} must be one index (an int), got {value!r}"
                             + (f": pass a channel of layer {layer!r}" if layer else ""))
    if generator is not None and parameterization != "pixel":
        raise InputError("parameterization applies to images; with generator= the latent is "
                         "optimised: drop parameterization or generator")
    unknown = sorted(set(weights) - set(REGULARISERS))
    if unknown:
        raise InputError(f"unknown argument(s) {unknown}: the regularisers are "
                         f"{', '.join(REGULARISERS)}")
    for name, value, low in (("steps", steps, 1), ("report_every", report_every, 1),
                             ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an int ≥ {low}, got {value!r}")
    if parameterization not in PARAMETERIZATIONS:
        raise InputError(f"parameterization must be one of {PARAMETERIZATIONS}, "
                         f"got {parameterization!r}")
    settings = {}
    for name, (default, low, high, meaning) in REGULARISERS.items():
        value = weights.get(name, default)
        ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        if not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:
            raise InputError(f"{name}={value!r} is outside {low}..{high} ({meaning}); pass a "
                             f"finite number in that range, e.g. the default {name}={default}")
        settings[name] = int(value) if isinstance(default, int) else float(value)
    return settings


def _check_shape(image_shape) -> tuple[int, int, int] | None:
    if image_shape is None:
        return None
    try:
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"image_shape must be (C, H, W), got {image_shape!r}")
    return shape


def _channels(model: nn.Module, image_shape) -> int | None:
    if image_shape is not None:
        return int(image_shape[0])
    return next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def _image_shape(adapter: ModelAdapter, image_shape, images, device) -> tuple[int, int, int]:
    """(C,H,W): as given, of the data, or the one square size the model accepts."""
    if image_shape is not None:
        return image_shape
    if images is not None:
        return tuple(images.shape[1:])
    channels = _channels(adapter.model, None)
    fits = []
    for size in _PROBE_SIZES if channels else ():
        try:
            adapter.logits(torch.zeros(1, channels, size, size, device=device))
            fits.append(size)
        except Exception:  # noqa: BLE001 - a size the model refuses, whatever it raises
            continue
    if len(fits) != 1:
        raise InputError("cannot tell the image size the model takes: pass image_shape=(C, H, W)"
                         + (f" (it accepts {fits[:3]}… pixels)" if fits else ""))
    return channels, fits[0], fits[0]


def _parameterise(adapter, generator, latent_shape, images, image_shape, kind, device):
    """``render()`` → (1,C,H,W) image, the parameters, the latent prior and the blur step."""
    if generator is not None:
        return _latent(adapter, generator, latent_shape, images, image_shape, device)
    c, h, w = _image_shape(adapter, image_shape, images, device)
    if kind == "pixel":
        pixels = (0.01 * torch.randn(1, c, h, w, device=device)).requires_grad_(True)
        return (lambda: torch.sigmoid(pixels)), [pixels], None, (
            lambda sigma: pixels.copy_(_blur(pixels, sigma)))
    frequencies = torch.sqrt(torch.fft.fftfreq(h, device=device)[:, None] ** 2
                             + torch.fft.rfftfreq(w, device=device)[None] ** 2)
    scale = math.sqrt(h * w) / frequencies.clamp(min=1.0 / max(h, w))
    spectrum = (0.01 * torch.randn(2, 1, c, *frequencies.shape, device=device)).requires_grad_()
    colours = _COLOURS.to(device) if c == 3 else None

    def render() -> torch.Tensor:
        image = torch.fft.irfft2(torch.complex(spectrum[0], spectrum[1]) * scale, s=(h, w)) / 4
        if colours is not None:
            image = torch.einsum("nchw,dc->ndhw", image, colours)
        return torch.sigmoid(image)

    def blur(sigma: float) -> None:  # a Gaussian's transfer function
        spectrum.mul_(torch.exp(-2 * math.pi**2 * sigma**2 * frequencies**2))

    return render, [spectrum], None, blur


def _latent(adapter, generator, latent_shape, images, image_shape, device):
    decoder = getattr(generator, "decoder", generator)
    encoder = getattr(generator, "encoder", None)
    if not isinstance(decoder, nn.Module):
        raise InputError("generator must be a torch.nn.Module mapping a latent to images, or an "
                         f"autoencoder with a .decoder; got {type(generator).__name__}")
    shape = latent_shape or getattr(generator, "latent_shape", None)
    if shape is None and encoder is None:
        raise InputError("cannot tell the generator's latent shape: pass latent_shape= (e.g. "
                         "(8, 7, 7) for the shipped autoencoder's decoder) or the autoencoder")
    home = next(decoder.parameters(), torch.empty(0, device=device)).device
    prior = None
    if encoder is not None and (images is not None or shape is None):
        with torch.no_grad():
            codes = encoder((images[:256] if images is not None else torch.zeros(
                1, *_image_shape(adapter, image_shape, images, device))).to(home))
        if images is not None:
            prior = codes.mean(0, keepdim=True), codes.std(0, keepdim=True).clamp(min=1e-3)
    shape = tuple(int(s) for s in (shape or codes.shape[1:]))
    start = prior[0] if prior is not None else torch.zeros(1, *shape, device=home)
    if tuple(start.shape[1:]) != shape:
        raise InputError(f"latent_shape {shape} differs from the encoder's output "
                         f"{tuple(start.shape[1:])}: drop latent_shape")
    latent = start + 0.1 * (prior[1] if prior is not None else 1.0) * torch.randn_like(start)
    latent.requires_grad_(True)
    want = image_shape or (tuple(images.shape[1:]) if images is not None else None)

    def render() -> torch.Tensor:
        out = decoder(latent)
        if out.ndim != 4 or (want is not None and (
                out.shape[1] != want[0] or out.shape[2] < want[1] or out.shape[3] < want[2])):
            raise InputError(f"the generator makes {tuple(out.shape)} from a latent; the model "
                             f"takes (N, {want or 'C, H, W'}) images: pass a matching generator")
        return (out[..., : want[1], : want[2]] if want else out).clamp(0.0, 1.0).to(device)

    return render, [latent], prior, None


def _check_unit(kept: list, layer: str, unit: int) -> int:
    if not kept or not isinstance(kept[-1], torch.Tensor) or kept[-1].ndim < 2:
        raise InputError(f"layer {layer!r} gave no (N, channels, …) tensor in the forward pass: "
                         "pick a layer whose output is one tensor (a conv or linear layer)")
    size = kept[-1].shape[-1 if kept[-1].ndim == 3 else 1]
    kept.clear()
    if not 0 <= unit < size:
        raise InputError(f"unit {unit} is out of range: layer {layer!r} has {size} channels, so "
                         f"unit must be in 0..{size - 1}")
    return unit


def _activation(kept: list, unit: int, keep_graph: bool = False) -> Any:
    out = kept[-1]
    values = out[..., unit] if out.ndim == 3 else out[:, unit]
    return values.mean() if keep_graph else float(values.mean())


def _optimise(adapter, render, params, prior, blur, settings, target, unit, kept, steps,
              on_step, report_every, cancelled) -> list[float]:
    optimiser = torch.optim.Adam(params, lr=settings["lr"])
    history: list[float] = []
    jitter = settings["jitter"]
    for step in range(steps):
        if cancelled is not None and cancelled():
            raise Cancelled(f"class visualisation cancelled at step {step} of {steps}")
        image = render()
        seen = _shift(image, jitter) if jitter else image
        kept.clear()
        logits = adapter.forward_module(seen)
        if target is not None:
            log_p = torch.log_softmax(logits.float(), dim=1)[0, target]
            objective, score = log_p, float(log_p.detach().exp())
        else:
            objective = _activation(kept, unit, keep_graph=True)
            score = float(objective.detach())
        terms = {"the model's score": -objective,
                 "l2": settings["l2"] * image.pow(2).mean(),
                 "tv": settings["tv"] * _total_variation(image)}
        if prior is not None:
            terms["latent_l2"] = settings["latent_l2"] * (
                (params[0] - prior[0]) / prior[1]).pow(2).mean()
        _check_finite(terms, settings, step)
        history.append(score)
        params[0].grad = torch.autograd.grad(sum(terms.values()), params)[0]
        optimiser.step()
        with torch.no_grad():
            every = settings["blur_every"]
            if (blur is not None and every and settings["blur_sigma"]
                    and (step + 1) % every == 0 and step + 1 + every <= steps):
                blur(settings["blur_sigma"])
        if on_step is not None and ((step + 1) % report_every == 0 or step + 1 == steps):
            on_step(step + 1, steps, image.detach()[0].cpu().numpy(), score)
    return history


def _check_finite(terms: dict, settings: dict, step: int) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value):
            if name not in settings:
                raise InputError(f"the model returned NaN or infinite scores at step {step}: "
                                 "check the model and preprocess on images in 0..1")
            raise InputError(f"the {name} term became {float(value.detach())} at step "
                             f"{step}: lower {name} (now {settings[name]}) or lr (now "
                             f"{settings['lr']})")


def _total_variation(image: torch.Tensor) -> torch.Tensor:
    return ((image[..., 1:, :] - image[..., :-1, :]).abs().mean()
            + (image[..., :, 1:] - image[..., :, :-1]).abs().mean())


def _shift(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """The image shifted by a random (dy, dx) in -pixels..pixels, edges reflected."""
    h, w = image.shape[-2:]
    pad = min(pixels, h - 1, w - 1)
    dy, dx = (int(d) for d in torch.randint(0, 2 * pad + 1, (2,)))
    padded = F.pad(image, (pad, pad, pad, pad), mode="reflect")
    return padded[..., dy:dy + h, dx:dx + w]


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, min(math.ceil(2 * sigma), image.shape[-1] - 1, image.shape[-2] - 1))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = torch.outer(kernel, kernel) / kernel.sum() ** 2
    padded = F.pad(image, (radius,) * 4, mode="reflect")
    return F.conv2d(padded, kernel.expand(image.shape[1], 1, -1, -1), groups=image.shape[1])
