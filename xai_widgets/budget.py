"""Memory budget: how many images one pass may hold, from a measured per-image cost.

The cost of one image is measured once per model, device and image shape: one forward pass
under ``torch.autograd.graph.saved_tensors_hooks`` counts the bytes autograd keeps for the
backward pass (the activations), plus the input and its gradient. A pass of ``n`` images
needs about ``n`` times that, so ``images_per_pass`` divides the budget by it.

The default budget is 2 GiB of activations, less where the machine has less to spare: a
quarter of the available memory on a CPU, half the free memory of a GPU.

>>> from xai_widgets.adapter import ModelAdapter
>>> from xai_widgets.budget import images_per_pass, per_image_bytes
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> adapter = ModelAdapter(model)
>>> image, _ = adapter.image(images[0])
>>> 0 < per_image_bytes(adapter, image) < 2**20      # a 28×28 digit: about 140 KiB
True
>>> images_per_pass(adapter, image, budget=2**24, most=10_000) > 100
True
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

import torch

DEFAULT_BUDGET = 2 * 2**30
_COSTS: dict = {}


def available_memory(device: torch.device) -> int:
    """Bytes this process may still take: free GPU memory, or the OS's available memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    return int(pages * os.sysconf("SC_PAGE_SIZE")) if pages else 8 * 2**30


def default_budget(device: torch.device) -> int:
    """2 GiB, or a quarter of the CPU's available memory / half the GPU's free memory."""
    share = 0.5 if device.type == "cuda" else 0.25
    return int(min(DEFAULT_BUDGET, share * available_memory(device)))


@dataclass(frozen=True)
class Cost:
    """One image's cost: bytes kept for backward, and seconds of a forward+backward pass."""

    bytes: int
    seconds: float


def _saved_bytes(adapter, x: torch.Tensor) -> tuple[int, float]:
    """Bytes autograd keeps for one forward+backward of batch ``x``, and its seconds."""
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    x = x.detach().clone().requires_grad_(True)
    start = time.perf_counter()
    with torch.enable_grad(), adapter.eval_mode(), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        scores = adapter.forward_module(x)
        scores = scores[0] if isinstance(scores, (tuple, list)) else scores
        torch.autograd.grad(scores.float().sum(), x, allow_unused=True)
    return sum(seen.values()) + 2 * x.numel() * x.element_size(), time.perf_counter() - start


def measure(adapter, image: torch.Tensor) -> Cost:
    """The cost of one more image in a pass: batches of one and two images, the difference
    (weights saved for backward are paid once per pass, not per image), and the seconds of
    a warm two-image pass. Cached per model version, device, dtype and shape."""
    key = (id(adapter.model), adapter.version(), image.device, image.dtype, tuple(image.shape[1:]))
    if key not in _COSTS:
        one = image[:1]
        single, _ = _saved_bytes(adapter, one)
        double, _ = _saved_bytes(adapter, torch.cat([one, one]))
        # timed warm (the first passes pay set-up costs), the faster of two: a busy
        # machine slows one pass, and a refusal must not follow from a hiccup
        seconds = min(_saved_bytes(adapter, torch.cat([one, one]))[1] for _ in range(2))
        _COSTS[key] = Cost(max(double - single, 1), seconds / 2)
    return _COSTS[key]


def per_image_bytes(adapter, image: torch.Tensor) -> int:
    return measure(adapter, image).bytes


def images_per_pass(adapter, image: torch.Tensor, budget: int | None = None,
                    most: int = 256) -> int:
    """How many images one forward+backward pass may hold within ``budget`` bytes
    (default: ``default_budget``), at most ``most`` (bigger CPU batches fall out of the
    caches), at least one. Besides what autograd saves, the backward pass holds gradients
    of the largest activations while it runs: a quarter more per image (ResNet-50 at 224 px
    peaked 8 % over the budget without it)."""
    budget = default_budget(image.device) if budget is None else int(budget)
    per_image = max(per_image_bytes(adapter, image) * 5 // 4, 1)
    return max(1, min(most, budget // per_image))


def seconds_for(adapter, image: torch.Tensor, n_images: int) -> float:
    """A rough estimate of the seconds ``n_images`` forward+backward passes take, from a warm
    two-image pass (larger batches are cheaper per image: this errs high, by about 2× for
    a ResNet-50 at 224 px on two CPU cores)."""
    return measure(adapter, image).seconds * n_images


def images_per_target(spec, params: dict) -> int:
    """Forward+backward images one target costs with ``spec`` and ``params``; 0 when one
    forward pass serves every target at once (occlusion, the superpixel methods)."""
    if spec.shares_passes:
        return 0
    n = int(params.get("n_steps", 1)) * int(params.get("n_samples", 1))
    if "n_samples" not in params:  # DeepSHAP: every background image; sampling methods
        n *= int(params.get("background_size", 1))  # draw one background per sample
    if params.get("smoothing", "none") != "none":
        n *= int(params["nt_samples"])
    return n


def run_in_chunks(spec, task, budget: int | None = None, max_seconds: float | None = None):
    """``spec.compute(task)`` over chunks of targets small enough for ``budget`` bytes
    (a 1000-class ``targets="all"`` streams instead of stacking 1000 images in one pass);
    raises ``InputError`` up front when the work would take longer than ``max_seconds``."""
    from xai_widgets.errors import InputError

    per_target = images_per_target(spec, task.params)
    n_targets = len(task.targets)
    streams = spec.streams_with(task.params)
    budget = default_budget(task.image.device) if budget is None else int(budget)
    # every method's passes follow the budget, whatever is chunked below
    task = replace(task, per_pass=images_per_pass(task.adapter, task.image, budget))
    if per_target == 0 or (n_targets == 1 and not streams):
        return spec.compute(task)  # one pass serves every target, or there is one target
    if max_seconds is not None and n_targets > 1:
        seconds = seconds_for(task.adapter, task.image, per_target * n_targets)
        if seconds > max_seconds:
            raise InputError(
                f"{spec.name} for {n_targets} classes would take about {_duration(seconds)} on "
                f"this machine ({per_target * n_targets:,} forward+backward passes): pass "
                "targets=[...] with the classes you need (e.g. the 10 most probable), choose "
                "a cheaper method (saliency, grad_cam), or raise max_seconds")
    if streams:  # passes of per_pass images; chunks only bound what is held per target
        held = held_per_target(task.params) * task.image.numel() * task.image.element_size()
        chunk = max(1, budget // 2 // held)
    else:  # the method batches all of a chunk's targets in one call
        per_call = images_per_pass(task.adapter, task.image, budget, most=max(256, per_target))
        chunk = max(1, per_call // max(per_target, 1))
    if chunk >= n_targets:
        return spec.compute(task)
    return _chunked(spec, task, chunk)


def held_per_target(params: dict) -> int:
    """Images a streaming method keeps per target between passes: its result and running
    sum, plus the noisy copies drawn up front (SmoothGrad, GradientSHAP)."""
    held = 2
    if params.get("smoothing", "none") != "none":
        held += int(params["nt_samples"])
    return held + int(params.get("n_samples", 0))


def _chunked(spec, task, chunk: int):
    """``spec.compute`` over ``chunk`` targets at a time, filling one result."""
    n_targets = len(task.targets)
    out = None  # filled chunk by chunk: no second copy of a 1000-map result
    for start in range(0, n_targets, chunk):
        task.check()
        size = min(chunk, n_targets - start)

        def report(finished: int, total: int, start=start, size=size):
            task.report(start * total + finished * size, n_targets * total)

        # interim rounds are shown only when one chunk holds every target
        part = spec.compute(replace(task, targets=task.targets[start:start + size],
                                    progress=report, on_round=None)).detach()
        if out is None:
            out = part.new_empty((n_targets, *part.shape[1:]))
        out[start:start + size] = part
        task.report(start + size, n_targets)
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
