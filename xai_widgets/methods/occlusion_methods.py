"""Occlusion: the score drop when a window of pixels takes the baseline's values, all
targets read from the same forward passes; coarse to fine when watched.

Windows are placed exactly as captum's ``Occlusion`` places them and the numbers equal
captum's. Progressive (in the widget): every 4th window position in each direction is scored
first and shown with its windows widened to cover the gaps, then every 2nd, then all; no
window is scored twice, so the last round costs what the one-shot call costs.

>>> from xai_widgets.methods.occlusion_methods import window_starts
>>> window_starts(28, 5, 2)[:4], len(window_starts(224, 16, 8))
([0, 2, 4, 6], 27)
"""

from __future__ import annotations

import math

import torch

from xai_widgets.errors import InputError
from xai_widgets.methods.progressive import grid_rounds
from xai_widgets.methods.registry import MethodSpec, Param, Task, register


def occlusion_window(size: tuple) -> int:
    """5 px on a 28 px digit, 16 px on a 224 px photo: 27 × 27 windows instead of 12,100."""
    return max(5, round(max(size) / 14))


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Where windows start along one side, as captum places them."""
    window = min(window, size)
    count = math.ceil((size - window) / stride) + 1 if size > window else 1
    return [i * stride for i in range(count)]


def occlusion_windows(height: int, width: int, window: int, stride: int,
                      device: torch.device) -> torch.Tensor:
    """Boolean (n_windows, 1, H, W) masks placed exactly as captum's Occlusion places them."""
    boxes = [(r, c, min(window, height), min(window, width))
             for r in window_starts(height, window, stride)
             for c in window_starts(width, window, stride)]
    return box_masks(boxes, height, width, device)


def box_masks(boxes: list, height: int, width: int, device: torch.device) -> torch.Tensor:
    masks = torch.zeros(len(boxes), 1, height, width, dtype=torch.bool, device=device)
    for i, (r, c, h, w) in enumerate(boxes):
        masks[i, 0, r:r + h, c:c + w] = True
    return masks


def spread(drops: torch.Tensor, boxes: list, height: int, width: int) -> torch.Tensor:
    """Each window's drop (n_windows, n_targets) averaged over the windows covering each
    pixel: (n_targets, H, W), in window order as captum sums them."""
    total = drops.new_zeros(drops.shape[1], height, width)
    count = drops.new_zeros(height, width)
    for drop, (r, c, h, w) in zip(drops, boxes, strict=True):
        total[:, r:r + h, c:c + w] += drop[:, None, None]
        count[r:r + h, c:c + w] += 1
    return total / count.clamp_min(1)


def check_window(window: int, stride: int, height: int, width: int) -> None:
    if stride > window and window < max(height, width):
        raise InputError(f"occlusion stride ({stride}) must not exceed the window size ({window}): "
                         "pixels between windows would never be occluded")
    if window > max(height, width):
        raise InputError(f"occlusion window ({window}) is larger than the image ({height}×{width})")


def occlusion(task: Task) -> torch.Tensor:
    p = task.params
    window, stride = p["window"], p["stride"]
    batch_size = task.pass_size(p["batch_size"])  # within the memory budget
    _, channels, height, width = task.image.shape
    check_window(window, stride, height, width)
    rows, cols = window_starts(height, window, stride), window_starts(width, window, stride)
    win_h, win_w = min(window, height), min(window, width)
    boxes = [(r, c, win_h, win_w) for r in rows for c in cols]
    order = (grid_rounds(len(rows), len(cols)) if task.progressive
             else [(1, list(range(len(boxes))))])
    model = task.adapter.forward_module
    done, seen = 0, []
    with torch.no_grad():
        reference = model(task.image)[0, task.targets]
        drops = reference.new_zeros(len(boxes), len(task.targets))
        for step, chosen in order:
            for start in range(0, len(chosen), batch_size):
                task.check()
                part = chosen[start:start + batch_size]
                masks = box_masks([boxes[i] for i in part], height, width, task.image.device)
                masks = masks.to(task.image.dtype)
                occluded = task.image * (1 - masks) + task.baseline * masks
                drops[part] = reference - model(occluded)[:, task.targets]
                done += len(part)
                task.report(done, len(boxes))
            seen += chosen
            if done < len(boxes):  # a coarse round: its windows widened over the gaps
                wide = [(r, c, win_h + (step - 1) * stride, win_w + (step - 1) * stride)
                        for r, c, _, _ in (boxes[i] for i in seen)]
                coarse = spread(drops[seen], wide, height, width)
                task.deliver(coarse[:, None].expand(-1, channels, -1, -1), done, len(boxes),
                             "windows")
    attribution = spread(drops, boxes, height, width)[:, None]
    return attribution.expand(-1, channels, -1, -1).contiguous()


register(MethodSpec(
    "occlusion", "Occlusion", "captum",
    "score drop when a window of pixels is replaced by the baseline", occlusion,
    params=(Param("window", "int", 5, 1, 64, 1, label="window size",
                  help="side of the square occluding box, in pixels (default: 1/14 of the "
                       "image side, at least 5)", scaled=occlusion_window),
            Param("stride", "int", 2, 1, 64, 1, help="step between windows, at most the window",
                  scaled=lambda size: max(2, occlusion_window(size) // 2)),
            Param("batch_size", "int", 256, 1, 8192, 1, label="batch size",
                  help="occluded images per forward pass")),
    needs_baseline=True, spatial=True, shares_passes=True))
