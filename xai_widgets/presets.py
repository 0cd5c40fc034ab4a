"""What ``weights=`` brings: class names, the resize and centre crop, the normalisation.

Three sources are read by duck typing (none of torchvision, timm or transformers is
imported here):

* a torchvision weights member (``ResNet18_Weights.DEFAULT``): ``meta["categories"]`` and
  ``transforms()`` (resize, crop, mean, std, interpolation);
* a timm data config (``timm.data.resolve_model_data_config(model)``) or a timm model's
  ``pretrained_cfg``: ``input_size``, ``interpolation``, ``crop_pct``, ``crop_mode``, ``mean``,
  ``std``, resized as ``timm.data.create_transform(**config)`` does at eval time; class names
  from ``classes=`` or, for a timm model with an ImageNet head, timm's offline ImageNet labels;
* a Hugging Face image processor (``ViTImageProcessor(...)``, an ``AutoImageProcessor``
  result), or ``(processor, model.config)``: ``do_resize``/``size``/``resample``,
  ``do_center_crop``/``crop_size``, ``crop_pct`` (ConvNeXT), ``do_rescale``/
  ``rescale_factor``, ``do_normalize``/``image_mean``/``image_std``; class names from
  ``config.id2label`` (or the model's own config).

The geometry runs once on the image (it defines the image shown and explained); the
normalisation becomes a step of the differentiated model, so maps stay in image space.
Images are 0..1 here (uint8 pixels are divided by 255). A processor that rescales takes
0..255 pixels p to p·rescale_factor, so the package's x = p/255 enters its normalisation as
x·255·rescale_factor (x itself for the usual 1/255); one that does not rescale is given x.

>>> import torch
>>> preset = read_preset({"input_size": (3, 224, 224), "interpolation": "bicubic",
...                       "crop_pct": 0.875, "crop_mode": "center",
...                       "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})
>>> shown, note = preset.geometry(torch.rand(1, 3, 300, 400))
>>> tuple(shown.shape), note.split(", as")[0]
((1, 3, 224, 224), 'the image (300×400) is resized to 256×341 and centre-cropped to 224×224')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from xai_widgets.errors import InputError

_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic")
# PIL's NEAREST samples pixel centres: torch's "nearest-exact" (transformers maps it so too)
_PIL_RESAMPLE = {0: "nearest-exact", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box",
                 5: "hamming"}
_TIMM_DEFAULT_CROP_PCT = 0.875
ACCEPTED = ("weights must be a torchvision weights member (e.g. ResNet18_Weights.DEFAULT), a "
            "timm data config or pretrained_cfg (timm.data.resolve_model_data_config(model), "
            "model.pretrained_cfg) or a Hugging Face image processor (AutoImageProcessor, "
            "ViTImageProcessor…, or (processor, model.config))")
INSTEAD = ("pass preprocess= (the normalisation) and classes= instead of weights= and "
           "resize the image yourself")


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


class Preset:
    """Class names (or None), geometry and normalisation read from ``weights=``.

    ``resize``: None, ``("shorter", n)`` (the shorter side to n, torchvision's rule),
    ``("exact", (h, w))`` or ``("ratio", ((h, w), longest))`` (timm's ResizeKeepRatio);
    ``crops``: centre crops applied in turn, zero-padded (``fill`` per channel) where the
    image is smaller; ``floor``: crop offsets rounded down (transformers) not to nearest.
    """

    def __init__(self, source: str, classes: list[str] | None, resize: tuple | None,
                 crops: list[tuple[int, int]], mode: str, normalise: Normalise | None,
                 fill: list[float] | None = None, floor: bool = False):
        self.source, self.classes, self.resize, self.crops = source, classes, resize, crops
        self.mode, self.normalise, self.fill, self.floor = mode, normalise, fill, floor
        self.antialias = mode in ("bilinear", "bicubic")
        self.final = crops[-1] if crops else (tuple(resize[1]) if resize and resize[0] == "exact"
                                             else None)

    def geometry(self, batch: torch.Tensor) -> tuple[torch.Tensor, str]:
        """Resize and centre-crop (N,C,H,W) as the source does; an image already of the
        final size is kept as it is (so that the shown image is never processed twice)."""
        height, width = batch.shape[-2:]
        if self.final is not None and (height, width) == tuple(self.final):
            return batch, (f"the image is already {height}×{width} (the output size of "
                           f"{self.source}): it is explained as it is, without resizing or "
                           "cropping")
        steps = []
        if self.resize is not None:
            size = self.resized(height, width)
            if size != [height, width]:
                batch = self._interpolate(batch, size)
            steps.append(f"resized to {size[0]}×{size[1]}")
        for crop_h, crop_w in self.crops:
            batch = center_crop(batch, crop_h, crop_w, self.fill, self.floor)
            steps.append(f"centre-cropped to {crop_h}×{crop_w}")
        done = " and ".join(steps) if steps else "kept at its size"
        tail = ("its normalisation is part of the explained model" if self.normalise is not None
                else "it has no normalisation")
        verb = "do" if self.source.endswith("transforms()") else "does"
        return batch, f"the image ({height}×{width}) is {done}, as {self.source} {verb}; {tail}"

    def resized(self, height: int, width: int) -> list[int]:
        kind, size = self.resize
        if kind == "exact":
            return [int(size[0]), int(size[1])]
        if kind == "shorter":  # torchvision's Resize(int): the longer side is truncated
            short, long = sorted((height, width))
            new_long = int(size * long / short)
            return [size, new_long] if height <= width else [new_long, size]
        (target_h, target_w), longest = size  # timm's ResizeKeepRatio
        ratios = sorted((height / target_h, width / target_w))
        ratio = ratios[1] * longest + ratios[0] * (1.0 - longest)
        return [round(height / ratio), round(width / ratio)]

    def _interpolate(self, batch: torch.Tensor, size: list[int]) -> torch.Tensor:
        align = False if self.mode in ("bilinear", "bicubic") else None
        out = F.interpolate(batch, size=size, mode=self.mode, align_corners=align,
                            antialias=self.antialias)
        if self.mode == "bicubic":  # overshoot clipped as in 8-bit pipelines (PIL, uint8)
            out = out.clamp(min(0.0, float(batch.min())), max(1.0, float(batch.max())))
        return out


def center_crop(batch: torch.Tensor, crop_h: int, crop_w: int, fill: list[float] | None = None,
                floor: bool = False) -> torch.Tensor:
    """torchvision's centre crop: padded (zeros, or ``fill`` per channel) where the image is
    smaller than the crop; ``floor`` rounds the offsets down as transformers does."""
    height, width = batch.shape[-2:]
    if crop_h > height or crop_w > width:
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        padded = F.pad(batch, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2])
        if fill:
            values = torch.tensor(fill, dtype=batch.dtype, device=batch.device)
            canvas = values.view(1, -1, 1, 1).expand_as(padded).clone()
            canvas[..., pad_h // 2:pad_h // 2 + height, pad_w // 2:pad_w // 2 + width] = batch
            padded = canvas
        batch = padded
        height, width = batch.shape[-2:]
    offset = math.floor if floor else round
    top, left = int(offset((height - crop_h) / 2.0)), int(offset((width - crop_w) / 2.0))
    return batch[..., top:top + crop_h, left:left + crop_w].contiguous()


def read_preset(weights: Any, model: Any = None) -> Preset:
    """The ``Preset`` of a torchvision weights member, a timm config or a Hugging Face image
    processor (``model`` supplies timm's class count or the Hugging Face id2label)."""
    labels = None
    if isinstance(weights, tuple) and len(weights) == 2 and _is_processor(weights[0]):
        weights, labels = weights[0], weights[1]
        if _id2label(labels) is None and not _has_id2label(labels):
            raise InputError(f"weights=(processor, {type(labels).__name__}): the second element "
                             "must be the model's config (with id2label) or an id2label dict")
    elif _is_processor(getattr(weights, "image_processor", None)) and not _is_processor(weights):
        weights = weights.image_processor  # a multimodal Processor around an image processor
    if _is_processor(weights):
        return _processor(weights, getattr(model, "config", None) if labels is None else labels)
    if isinstance(getattr(weights, "meta", None), Mapping) and callable(
            getattr(weights, "transforms", None)):
        return _torchvision(weights)
    config = _as_dict(weights)
    if config is not None and any(k in config for k in ("input_size", "crop_pct", "crop_mode")):
        return _timm(config, model)
    got = f"{type(weights).__name__} {weights!r}"[:120]
    hint = (" (a string: pass the weights object itself, e.g. ResNet18_Weights.IMAGENET1K_V1, "
            "not its name)" if isinstance(weights, str) else "")
    raise InputError(f"{ACCEPTED}; got {got}{hint}. Fix weights=, or {INSTEAD}")


# -- torchvision ------------------------------------------------------------------------------
def _torchvision(weights: Any) -> Preset:
    if "categories" not in weights.meta:
        raise InputError(f"{ACCEPTED}: this one's .meta has no 'categories': {INSTEAD}")
    transform = weights.transforms()
    missing = [a for a in ("resize_size", "crop_size", "mean", "std") if not hasattr(transform, a)]
    if missing:
        raise InputError(f"weights.transforms() is a {type(transform).__name__} without "
                         f"{', '.join(missing)}: pass preprocess= and classes= instead of "
                         "weights= and resize the image yourself")
    resize, crop = _size(transform.resize_size), _size(transform.crop_size)
    mode = getattr(transform, "interpolation", "bilinear")
    return Preset("the weights' transforms()", [str(c) for c in weights.meta["categories"]],
                  ("shorter", resize[0]) if len(resize) == 1 else ("exact", tuple(resize)),
                  [tuple(crop * 2 if len(crop) == 1 else crop)],
                  _mode(str(getattr(mode, "value", mode)), "the weights"),
                  Normalise(list(transform.mean), list(transform.std)))


def _size(value: Any) -> list[int]:
    values = [int(value)] if isinstance(value, (int, float)) else [int(v) for v in value]
    if len(values) not in (1, 2) or min(values) < 1:
        raise InputError(f"the weights have an unusable size {value!r}: pass preprocess= "
                         "instead of weights= and resize the image yourself")
    return values


def _mode(name: str, who: str) -> str:
    mode = name.lower()
    if mode not in _MODES:
        raise InputError(f"{who} resize with {mode!r} interpolation, which is not supported "
                         f"({', '.join(_MODES)}): resize the image yourself and pass "
                         "preprocess= instead of weights=")
    return mode


# -- timm -------------------------------------------------------------------------------------
def _as_dict(value: Any) -> dict | None:
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # timm's PretrainedCfg
        return dataclasses.asdict(value)
    return None


def _timm(config: dict, model: Any) -> Preset:
    missing = [k for k in ("input_size", "mean", "std") if config.get(k) is None]
    if missing:
        raise InputError(f"the timm data config has no {', '.join(missing)}: pass "
                         "timm.data.resolve_model_data_config(model) (or model.pretrained_cfg), "
                         f"or {INSTEAD}")
    size = [int(v) for v in config["input_size"]][-2:]
    crop_pct = float(config.get("crop_pct") or _TIMM_DEFAULT_CROP_PCT)
    scale = (math.floor(size[0] / crop_pct), math.floor(size[1] / crop_pct))
    crop_mode = config.get("crop_mode") or "center"
    mean, std = list(config["mean"]), list(config["std"])
    fill = None
    if crop_mode == "squash":
        resize = ("exact", scale)
    elif crop_mode == "border":
        resize, fill = ("ratio", (scale, 1.0)), [round(255 * m) / 255 for m in mean]
    elif crop_mode == "center":
        resize = ("shorter", scale[0]) if scale[0] == scale[1] else ("ratio", (scale, 0.0))
    else:
        raise InputError(f"the timm data config has crop_mode {crop_mode!r}; 'center', 'squash' "
                         f"and 'border' are read: fix it, or {INSTEAD}")
    mode = str(config.get("interpolation") or "bilinear")
    mode = _mode("nearest-exact" if mode == "nearest" else mode,  # as PIL, timm's usual input
                 "timm's eval transform would")
    return Preset("timm's eval transform", _imagenet_names(model, config), resize,
                  [tuple(size)], mode, Normalise(mean, std), fill=fill)


def _imagenet_names(model: Any, config: dict) -> list[str] | None:
    """timm's offline ImageNet label descriptions (first synonym) for an ImageNet head."""
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset
        subset = infer_imagenet_subset(model if getattr(model, "num_classes", None) else config)
        if subset is None:
            return None
        return [d.split(",")[0].strip() for d in ImageNetInfo(subset).label_descriptions()]
    except Exception:  # noqa: BLE001 - no timm, an older timm or no labels: numbered classes
        return None


# -- Hugging Face -----------------------------------------------------------------------------
def _is_processor(value: Any) -> bool:
    return value is not None and all(hasattr(value, a) for a in
                                     ("do_resize", "size", "image_mean", "image_std"))


def _has_id2label(source: Any) -> bool:
    return isinstance(getattr(source, "id2label", None), Mapping)


def _id2label(source: Any) -> list[str] | None:
    mapping = getattr(source, "id2label", source)
    if not isinstance(mapping, Mapping) or not mapping:
        return None
    try:
        items = sorted((int(k), str(v)) for k, v in mapping.items())
    except (TypeError, ValueError):
        return None
    names = [v for _, v in items]
    if [k for k, _ in items] != list(range(len(items))) or names == [
            f"LABEL_{i}" for i in range(len(names))]:
        return None  # not 0..n-1, or transformers' placeholder names
    return names


def _get(size: Any, key: str) -> Any:
    value = size.get(key) if hasattr(size, "get") else getattr(size, key, None)
    return int(value) if value else None


def _hw(size: Any, what: str) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, float)):
        return int(size), int(size)
    height, width = _get(size, "height"), _get(size, "width")
    if height and width:
        return height, width
    raise InputError(f"the image processor's {what} {size!r} has no height and width: "
                     f"{INSTEAD}")


def _processor(processor: Any, labels: Any) -> Preset:
    def get(name: str) -> Any:
        return getattr(processor, name, None)

    name, size, resize, crops = type(processor).__name__, get("size"), None, []
    if get("do_resize"):
        shortest = _get(size, "shortest_edge") if not isinstance(size, (int, float)) else None
        crop_pct = get("crop_pct")
        if shortest and _get(size, "longest_edge") is None:
            if crop_pct and name.startswith("ConvNext") and shortest >= 384:
                resize = ("exact", (shortest, shortest))  # ConvNeXT warps to the square
            elif crop_pct:  # ConvNeXT < 384, PoolFormer: shorter side to size / crop_pct
                resize = ("shorter", int(shortest / crop_pct))
                if not get("do_center_crop"):
                    crops.append((shortest, shortest))
            else:
                resize = ("shorter", shortest)
        else:
            resize = ("exact", _hw(size, "size"))
    if get("do_center_crop"):
        crops.append(_hw(get("crop_size"), "crop_size"))
    resample = get("resample")
    value = getattr(resample, "value", resample)
    mode = ("bilinear" if resample is None else value if isinstance(value, str)
            else _PIL_RESAMPLE.get(int(value), f"PIL resample {value}"))
    return Preset("the image processor", _id2label(labels), resize, crops,
                  _mode(mode, "the image processor's"), _processor_normalise(processor),
                  floor=True)


def _processor_normalise(processor: Any) -> Normalise | None:
    """The processor's rescale and normalisation as one Normalise on 0..1 images: it sees
    r = k·x + b (k = 255·rescale_factor, b = −1 with EfficientNet's rescale_offset) and
    returns (r − mean) / std = (x − (mean − b) / k) / (std / k)."""
    scale, shift = 1.0, 0.0
    if getattr(processor, "do_rescale", False):
        scale = 255.0 * float(getattr(processor, "rescale_factor", None) or 1 / 255)
        shift = -1.0 if getattr(processor, "rescale_offset", False) else 0.0
    mean, std = [0.0], [1.0]
    if getattr(processor, "do_normalize", False):
        mean, std = _floats(processor.image_mean), _floats(processor.image_std)
        if len(mean) != len(std):
            mean, std = (mean * len(std), std) if len(mean) == 1 else (mean, std * len(mean))
    elif scale == 1.0 and shift == 0.0:
        return None
    return Normalise([(m - shift) / scale for m in mean], [s / scale for s in std])


def _floats(value: Any) -> list[float]:
    return [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
