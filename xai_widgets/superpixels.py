"""Superpixels (scikit-image) and masking: the features of LIME and KernelSHAP.

Segmentations are computed once per image and parameters, then cached. Defaults give
meaningful segments on a 28×28 digit (lime's default quickshift gives 2).

>>> import torch
>>> from xai_widgets.superpixels import segment, compose
>>> image = torch.rand(1, 28, 28)
>>> labels = segment(image, "grid", cell=7)
>>> int(labels.max()) + 1
16
>>> keep = torch.ones(1, 16, dtype=torch.bool); keep[0, 0] = False
>>> compose(image[None], torch.zeros(1, 1, 28, 28), labels, keep)[0, 0, :7, :7].abs().max().item()
0.0
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import torch

from xai_widgets.errors import InputError
from xai_widgets.methods.registry import Param

SEGMENTATIONS = ("slic", "quickshift", "felzenszwalb", "grid")
SEGMENTATION_PARAMS = (
    Param("segmentation", "choice", "slic", choices=SEGMENTATIONS,
          help="how the image is cut into superpixels (the features)"),
    Param("n_segments", "int", 50, 4, 400, 1, label="segments (slic)",
          shown_when=("segmentation", "slic"),
          scaled=lambda size: int(min(200, max(50, size[0] * size[1] // 500)))),
    Param("compactness", "float", 0.3, 0.01, 10.0, 0.01, shown_when=("segmentation", "slic"),
          help="higher = more square segments"),
    Param("kernel_size", "float", 1.0, 0.5, 10.0, 0.5, label="kernel (quickshift)",
          shown_when=("segmentation", "quickshift")),
    Param("max_dist", "float", 2.0, 0.5, 50.0, 0.5, label="max dist (quickshift)",
          shown_when=("segmentation", "quickshift")),
    Param("scale", "float", 1.0, 0.1, 500.0, 0.1, label="scale (felzenszwalb)",
          shown_when=("segmentation", "felzenszwalb")),
    Param("min_size", "int", 5, 1, 200, 1, label="min size (felzenszwalb)",
          shown_when=("segmentation", "felzenszwalb")),
    Param("cell", "int", 4, 1, 64, 1, label="cell (grid)", shown_when=("segmentation", "grid"),
          help="side of each square cell, in pixels (default: a 7 × 7 grid)",
          scaled=lambda size: int(min(64, max(4, round(max(size) / 7))))),
)
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()  # widgets segment on their workers, scripts on their own thread


def segment(image: torch.Tensor, method: str = "slic", **params) -> torch.Tensor:
    """Superpixel labels 0..n-1 (H, W) int64 for a (C,H,W) or (1,C,H,W) image, cached."""
    array = image.detach().reshape(image.shape[-3:]).float().cpu().numpy()
    relevant = {k: v for k, v in params.items() if k in _PARAMS_OF.get(method, ())}
    key = (hashlib.sha1(array.tobytes()).hexdigest(), array.shape, method,
           tuple(sorted(relevant.items())))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key].to(image.device)
    labels = torch.from_numpy(_relabel(_segment(array, method, relevant)))
    with _CACHE_LOCK:
        _CACHE[key] = labels
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return labels.to(image.device)


_PARAMS_OF = {"slic": ("n_segments", "compactness"), "quickshift": ("kernel_size", "max_dist"),
              "felzenszwalb": ("scale", "min_size"), "grid": ("cell",)}


def _segment(array: np.ndarray, method: str, p: dict) -> np.ndarray:
    from skimage import segmentation

    channels, height, width = array.shape
    hwc = array.transpose(1, 2, 0).astype(np.float64)
    gray = hwc[..., 0] if channels == 1 else None
    if method == "grid":
        cell = p.get("cell", 4)
        rows, cols = np.arange(height) // cell, np.arange(width) // cell
        return rows[:, None] * (cols.max() + 1) + cols[None, :]
    if method == "slic":
        image, axis = (gray, None) if gray is not None else (hwc, -1)
        return segmentation.slic(image, n_segments=p.get("n_segments", 50),
                                 compactness=p.get("compactness", 0.3), channel_axis=axis,
                                 start_label=0)
    if method == "quickshift":
        rgb = np.repeat(hwc, 3, axis=2) if channels == 1 else hwc[..., :3]
        return segmentation.quickshift(rgb, kernel_size=p.get("kernel_size", 1.0),
                                       max_dist=p.get("max_dist", 2.0), ratio=0.5,
                                       convert2lab=False, rng=0)
    if method == "felzenszwalb":
        image, axis = (gray, None) if gray is not None else (hwc, -1)
        return segmentation.felzenszwalb(image, scale=p.get("scale", 1.0), sigma=0.3,
                                         min_size=p.get("min_size", 5), channel_axis=axis)
    raise InputError(f"unknown segmentation {method!r}: choose one of {', '.join(SEGMENTATIONS)}")


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, consecutive = np.unique(labels, return_inverse=True)
    return consecutive.reshape(labels.shape).astype(np.int64)


MIN_SEGMENTS = 8


def segment_or_grid(image: torch.Tensor, method: str, **params) -> tuple[torch.Tensor, str]:
    """``segment``, or a 4 × 4 grid (with a note saying why) when the segmenter finds fewer
    than MIN_SEGMENTS segments (SLIC on noise can return one: a map of one constant)."""
    labels = segment(image, method, **params)
    found = int(labels.max()) + 1
    if found >= MIN_SEGMENTS or method == "grid":
        return labels, ""
    cell = max(1, min(image.shape[-2:]) // 4)
    note = (f"{method} found only {found} segment(s) in this image: a grid of {cell} px cells "
            "is used instead (try another segmentation, or more segments)")
    return segment(image, "grid", cell=cell), note


def segments_for(task) -> torch.Tensor:
    """The segmentation a task's parameters ask for (shared by LIME, KernelSHAP, the view)."""
    p = task.params
    labels, note = segment_or_grid(task.image, p["segmentation"], **p)
    if note:
        task.notes.append(note)
    return labels


def compose(image: torch.Tensor, baseline: torch.Tensor, segments: torch.Tensor,
            keep: torch.Tensor) -> torch.Tensor:
    """Images with the segments where ``keep`` (N, n_segments) is False replaced by the baseline."""
    pixels = keep[:, segments].unsqueeze(1).to(image.dtype)  # (N, 1, H, W)
    return image * pixels + baseline * (1 - pixels)


def masked_probabilities(adapter, image: torch.Tensor, baseline: torch.Tensor,
                         segments: torch.Tensor, keep: torch.Tensor, batch_size: int,
                         task=None) -> torch.Tensor:
    """Class probabilities of every masked image, in batches of ``batch_size`` images."""
    scores = []
    for start in range(0, len(keep), batch_size):
        if task is not None:
            task.check()
        batch = compose(image, baseline, segments, keep[start:start + batch_size])
        scores.append(adapter.probabilities(batch))
        if task is not None:
            task.report(min(start + batch_size, len(keep)), len(keep))
    return torch.cat(scores)
