"""ModelAdapter: turns whatever the user passes into what the model expects.

It accepts images as torch tensors (H,W), (C,H,W), (1,C,H,W); numpy arrays (H,W), (H,W,C),
(C,H,W), uint8 0..255 or float; or PIL images. It finds the device, switches the model to
eval mode only for the duration of a computation, and gives gradient methods the logits
when the model ends in a Softmax.

>>> import torch
>>> from xai_widgets.adapter import ModelAdapter
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> adapter = ModelAdapter(model)
>>> image, notes = adapter.image(images[0].numpy()[0] * 255)   # an (H,W) float array
>>> tuple(image.shape)
(1, 1, 28, 28)
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from xai_widgets.errors import InputError
from xai_widgets.outputs import (
    LogitsModule,
    check_layout,
    check_single_input,
    compose,
    to_channels_last,
)
from xai_widgets.presets import read_preset

_CHANNEL_COUNTS = (1, 3, 4)


class ModelAdapter:
    """Wraps a user model without modifying it.

    ``preprocess`` maps an image batch (N,C,H,W) in image space (0..1 for uint8 input) to
    what the model takes, e.g. a normalisation; attributions are taken in image space.
    ``output`` is ``"auto"`` (detect probabilities), ``"logits"`` or ``"probabilities"``.
    ``weights`` is a torchvision weights member, a timm data config (or ``pretrained_cfg``) or
    a Hugging Face image processor (or ``(processor, model.config)``): its class names (unless
    ``classes`` are given), its resize and centre crop (applied to the image) and its
    normalisation (the differentiated path); see ``xai_widgets.presets``. ``layout="NHWC"``
    declares a model that takes (N,H,W,C) batches; images stay (C,H,W) and the permute runs
    after ``preprocess``. ``self.preprocess`` is the whole image-space → model-input map.
    """

    def __init__(self, model: Any, preprocess: Callable | None = None,
                 classes: Sequence[str] | None = None, output: str = "auto",
                 weights: Any = None, layout: str = "NCHW"):
        if not isinstance(model, nn.Module):
            raise InputError(
                f"model must be a torch.nn.Module, got {type(model).__name__}; wrap a plain "
                "function in a Module whose forward calls it")
        if output not in ("auto", "logits", "probabilities"):
            raise InputError(f"output must be 'auto', 'logits' or 'probabilities', got {output!r}")
        if preprocess is not None and not callable(preprocess):
            raise InputError("preprocess must be a callable that maps an (N,C,H,W) batch to "
                             "the model's input")
        check_single_input(model)
        self.layout = check_layout(layout)
        self.preset = read_preset(weights, model) if weights is not None else None
        if self.preset is not None and preprocess is not None:
            raise InputError("pass either weights= (it gives the resize, crop and normalisation) "
                             "or preprocess=, not both: drop preprocess, or drop weights and pass "
                             "classes= (e.g. weights.meta['categories'])")
        if classes is None and self.preset is not None:
            classes = self.preset.classes
        self.model = model
        self._user_preprocess = preprocess
        self.preprocess = compose(self.preset.normalise if self.preset else None, preprocess,
                                  to_channels_last if self.layout == "NHWC" else None)
        self.classes = list(classes) if classes is not None else None
        self.output = output
        self.notes: list[str] = []
        ends_in_softmax = isinstance(model, nn.Sequential) and len(model) > 1 and isinstance(
            model[-1], nn.Softmax)
        self.forward_module = LogitsModule(model, self.preprocess, strip_softmax=ends_in_softmax,
                                           single_is_probability=output == "probabilities")
        if self.layout == "NHWC":
            self.notes.append("the model takes channels-last (N,H,W,C) batches: images stay "
                              "(C,H,W) and are permuted just before the model")
        if ends_in_softmax:
            self.notes.append("the model ends in Softmax: attributions are taken on the "
                              "logits before it; probabilities are their softmax, as the model "
                              "computes them")
        self._strips_softmax = ends_in_softmax
        self._returns_probabilities: bool | None = True if output == "probabilities" else (
            False if output == "logits" else None)
        self.n_classes: int | None = None
        self.counterfactuals: dict = {}  # counterfactual baselines already searched
        self._scores: list = []  # (image, its version, model version, scores), newest last

    # -- facts about the model -------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for tensor in self.model.parameters():
            return tensor.device
        for tensor in self.model.buffers():
            return tensor.device
        return torch.device("cpu")

    @property
    def expected_channels(self) -> int | None:
        """in_channels of the first Conv2d, when there is no preprocess to change them."""
        if self._user_preprocess is not None:
            return None
        for module in self.model.modules():
            if isinstance(module, nn.Conv2d):
                return module.in_channels
        return None

    def conv_layers(self) -> dict[str, nn.Conv2d]:
        """Named Conv2d layers of the model, in registration order."""
        return {name: m for name, m in self.model.named_modules() if isinstance(m, nn.Conv2d)}

    def version(self) -> tuple:
        """Changes whenever a parameter is modified in place or replaced (cache key part)."""
        return tuple((id(p), p._version) for p in self.model.parameters())

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Eval mode for the computation; every module's own training flag is restored."""
        flags = [(m, m.training) for m in self.model.modules() if m.training]
        if not flags:  # already in eval mode: nothing to switch or restore
            yield
            return
        self.model.eval()
        try:
            yield
        finally:
            for module, flag in flags:
                module.training = flag

    def copy_model(self) -> nn.Module:
        """A deep copy of the logits module, for methods that must attach state to layers."""
        return copy.deepcopy(self.forward_module)

    # -- inputs ----------------------------------------------------------------------
    def image(self, x: Any) -> tuple[torch.Tensor, list[str]]:
        """One image as a float (1,C,H,W) tensor on the model's device, plus what was assumed."""
        tensor, notes = to_chw(x, self.expected_channels)
        self._check_channels(tensor.shape[0], "the image")
        batch = tensor.unsqueeze(0)
        if self.preset is not None:
            batch, note = self.preset.geometry(batch)
            notes.append(note)
        return batch.to(self.device), notes

    def batch(self, data: Any, like: torch.Tensor) -> torch.Tensor:
        """Reference images (``data=``) as a float (N,C,H,W) tensor shaped like ``like``
        (resized and cropped like the image when ``weights`` are given)."""
        batch = to_nchw(data, like.shape[1])
        if self.preset is not None:
            batch = self.preset.geometry(batch)[0]
        if tuple(batch.shape[1:]) != tuple(like.shape[1:]):
            raise InputError(
                f"data images have shape {tuple(batch.shape[1:])} but the image has "
                f"{tuple(like.shape[1:])}: pass reference images of the same size and channels")
        return batch.to(self.device)

    def _check_channels(self, channels: int, what: str) -> None:
        expected = self.expected_channels
        if expected is not None and channels != expected:
            fix = ("convert it to grayscale (PIL: img.convert('L'); "
                   "tensor: x.mean(0, keepdim=True))" if expected == 1 else
                   f"give it {expected} channels (e.g. x.repeat({expected}, 1, 1))")
            raise InputError(f"{what} has {channels} channel(s) but the model's first conv layer "
                             f"expects {expected}: {fix}")

    # -- outputs ---------------------------------------------------------------------
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Forward pass without gradients, returning the scores attributions explain."""
        with torch.no_grad(), self.eval_mode():
            out = self.forward_module(batch)
        for note in self.forward_module.notes:
            if note not in self.notes:
                self.notes.append(note)
        if out.ndim != 2 or out.shape[0] != batch.shape[0]:
            raise InputError(f"the model returned shape {tuple(out.shape)} for {batch.shape[0]} "
                             "image(s); an image classifier must return (batch, n_classes) scores")
        self.n_classes = out.shape[1]
        return out

    def image_scores(self, image: torch.Tensor) -> torch.Tensor:
        """``logits(image)`` of one (1,C,H,W) image, remembered for the last two images (the
        image and its baseline): switching methods on one image (what the widget does) and
        checking a map's sum cost no new forward pass. The images are held, so identity and
        in-place version identify them; any change to the model's parameters recomputes."""
        version = self.version()
        hit = [kept for kept in self._scores
               if kept[0] is image and kept[1] == image._version and kept[2] == version]
        kept = hit[0] if hit else (image, image._version, version, self.logits(image))
        # least recently used first: the image outlives a stream of fresh baselines
        self._scores = [*(k for k in self._scores if k is not kept)][-1:] + [kept]
        return kept[3]

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities: softmax of the logits, or the model's own probabilities."""
        return self.to_probabilities(self.logits(batch))

    def to_probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """Probabilities from scores that ``logits`` returned."""
        if self._returns_probabilities is None and self.forward_module.single_logit:
            self._returns_probabilities = False  # (0, z) are logits, whatever z is
            if bool(((scores[:, 1] >= 0) & (scores[:, 1] <= 1)).all()):
                self.notes.append("the model's single score lies in 0..1: if it is already "
                                  "a probability σ(z), pass output='probabilities'")
        if self._returns_probabilities is None:
            self._returns_probabilities = looks_like_probabilities(scores)
            if self._returns_probabilities:
                self.notes.append("the model returns probabilities and its Softmax could not "
                                  "be removed: attributions explain probabilities, not logits")
        return scores if self._returns_probabilities else torch.softmax(scores, dim=1)

    def check_targets(self, targets: Any, n_classes: int) -> list[int]:
        """``"all"``, an int or a list of ints, validated against the number of classes."""
        if isinstance(targets, str):
            if targets != "all":
                raise InputError("targets must be 'all', an int or a list of ints, "
                                 f"got {targets!r}")
            return list(range(n_classes))
        items = [targets] if np.ndim(targets) == 0 else list(np.asarray(targets).ravel())
        if not items:
            raise InputError("targets is empty: pass 'all', a class index or a list of them")
        out = []
        for item in items:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
                raise InputError(f"target {item!r} is not a class index: "
                                 f"pass ints in 0..{n_classes - 1}")
            if not 0 <= int(item) < n_classes:
                raise InputError(f"target {int(item)} is out of range: the model has {n_classes} "
                                 f"classes, so targets must be in 0..{n_classes - 1}")
            out.append(int(item))
        return out


def looks_like_probabilities(scores: torch.Tensor) -> bool:
    sums = scores.sum(dim=1)
    return bool((scores >= 0).all() and (scores <= 1).all()
                and torch.allclose(sums, torch.ones_like(sums), atol=1e-4))


def to_chw(x: Any, expected_channels: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Any single image form as a float32 (C,H,W) CPU tensor and the assumptions made."""
    notes: list[str] = []
    if hasattr(x, "mode") and hasattr(x, "size") and not isinstance(x, (np.ndarray, torch.Tensor)):
        x = np.asarray(x)  # PIL image: (H,W) or (H,W,C) uint8
        if x.ndim == 3:
            x = x.transpose(2, 0, 1)
        notes.append("PIL image converted to a (C,H,W) array")
        channels_last = False
    else:
        channels_last = None
    is_torch = isinstance(x, torch.Tensor)
    if not is_torch:
        try:
            x = np.asarray(x)
        except Exception as error:  # noqa: BLE001 - any conversion failure means bad input
            raise InputError(f"cannot read the image ({type(x).__name__}): pass a torch tensor, "
                             f"a numpy array or a PIL image ({error})") from None
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise InputError(f"the image has dtype {x.dtype}: pass numbers (uint8 0..255 or float)")
    shape = tuple(x.shape)
    if len(shape) == 4:
        if shape[0] != 1:
            raise InputError(f"got a batch of {shape[0]} images {shape} where one image is "
                             "expected: pass one of them, e.g. images[0]")
        x = x[0]
        shape = shape[1:]
    if len(shape) == 2:
        x = x[None]
    elif len(shape) == 3:
        if channels_last is None:
            channels_last = _guess_channels_last(shape, expected_channels, is_torch, notes)
        if channels_last:
            x = x.permute(2, 0, 1) if is_torch else x.transpose(2, 0, 1)
    else:
        raise InputError(f"an image must have 2 to 4 dimensions, got shape {shape}: pass (H,W), "
                         "(C,H,W), (H,W,C) or (1,C,H,W)")
    tensor = x.detach().cpu() if is_torch else torch.from_numpy(np.array(x, copy=True))
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255.0
        notes.append("uint8 pixels scaled from 0..255 to 0..1")
    elif tensor.dtype == torch.bool:
        tensor = tensor.float()
    elif not tensor.is_floating_point():
        tensor = tensor.float()
        if tensor.max() > 1.5:
            tensor = tensor / 255.0
            notes.append("integer pixels scaled from 0..255 to 0..1")
    tensor = tensor.float().clone()
    if not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise InputError(f"the image has {bad} NaN or infinite pixel(s): replace them "
                         "(e.g. np.nan_to_num(x)) before explaining")
    if min(tensor.shape[1:]) < 2:
        raise InputError(f"the image is {tuple(tensor.shape[1:])} pixels: too small to explain")
    return tensor, notes


def _guess_channels_last(shape: tuple, expected: int | None, is_torch: bool,
                         notes: list[str]) -> bool:
    first, last = shape[0] in _CHANNEL_COUNTS, shape[-1] in _CHANNEL_COUNTS
    if expected is not None and expected in (shape[0], shape[-1]):
        first, last = shape[0] == expected, shape[-1] == expected
    if first and not last:
        if not is_torch:
            notes.append(f"assumed channels first: (C,H,W) = {shape}")
        return False
    if last and not first:
        notes.append(f"assumed channels last: (H,W,C) = {shape}")
        return True
    if first and last:
        layout = "channels last (H,W,C)" if not is_torch else "channels first (C,H,W)"
        notes.append(f"shape {shape} is ambiguous; assumed {layout}")
        return not is_torch
    raise InputError(f"cannot tell the channels of an image of shape {shape}"
                     + (f": the model expects {expected} channel(s)" if expected else "")
                     + "; pass (C,H,W) or (H,W,C) with 1, 3 or 4 channels")


def to_nchw(data: Any, channels: int) -> torch.Tensor:
    """Reference images as a float32 (N,C,H,W) CPU tensor (first axis always the images)."""
    if isinstance(data, (list, tuple)):
        images = [to_chw(item, channels)[0] for item in data]
        shapes = {tuple(i.shape) for i in images}
        if len(shapes) != 1:
            raise InputError(f"data images have different shapes {sorted(shapes)}: resize them")
        return torch.stack(images)
    is_torch = isinstance(data, torch.Tensor)
    array = data if is_torch else np.asarray(data)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise InputError(f"data must be a batch of images (N,C,H,W), (N,H,W,C) or (N,H,W); got "
                         f"shape {tuple(array.shape)}")
    if array.shape[1] != channels and array.shape[-1] == channels:
        array = array.permute(0, 3, 1, 2) if is_torch else array.transpose(0, 3, 1, 2)
    tensor = array.detach().cpu() if is_torch else torch.from_numpy(np.array(array, copy=True))
    tensor = tensor.float() / 255.0 if tensor.dtype == torch.uint8 else tensor.float().clone()
    if not torch.isfinite(tensor).all():
        raise InputError("data has NaN or infinite pixels: clean them (np.nan_to_num) first")
    return tensor
