"""Gradient helpers shared by the gradient methods: batched input gradients, seeded draws,
and averages over random samples (SmoothGrad's noise tunnel, GradientSHAP) that refine in
rounds.

The random draws are captum's own, made the way captum makes them (one ``torch.normal``
over the image repeated once per sample and target, then numpy's draws), so the averages
equal ``NoiseTunnel`` and ``GradientShap`` for the same seed; the gradients of those draws
are then taken in batches, a round of samples at a time.

>>> import torch
>>> from torch import nn
>>> from xai_widgets.methods.gradients import input_gradients
>>> model = nn.Linear(3, 2)
>>> grads = input_gradients(model, torch.ones(2, 3), torch.tensor([0, 1]))
>>> torch.allclose(grads, model.weight)
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from xai_widgets.methods.progressive import sample_rounds


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Seed torch's and numpy's generators (captum draws from both) for one computation,
    leaving the user's random state as it was."""
    devices = [device.index or 0] if device.type == "cuda" else []
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)


def input_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d score[target_i] / d inputs[i] for every row, in one forward and one backward pass.

    captum's gradient helper backpropagates ``torch.unbind(outputs)`` (one root per row),
    which costs as much as the pass itself on big batches; summing the rows is equivalent.
    """
    inputs = inputs.detach().requires_grad_(True)
    scores = model(inputs).gather(1, targets[:, None]).sum()
    return torch.autograd.grad(scores, inputs)[0]


def internal_batch_size(task, per_target: int, budget: int = 2**21, most: int = 256) -> int:
    """Images per pass for captum's own calls: at most ``budget`` input floats and ``most``
    images (bigger batches fall out of the CPU caches: 1,000 digits in one pass cost 3×
    five passes of 200), and never fewer than one image per target."""
    pixels = task.image.numel()
    total = len(task.targets) * per_target
    return max(len(task.targets), min(total, most, budget // max(pixels, 1)))


def rows_per_pass(task, most: int = 256) -> int:
    """Images per pass of a method that batches its own rows: the memory budget's
    ``task.per_pass`` (see ``budget.images_per_pass``), at most ``most`` images (bigger CPU
    batches fall out of the caches), at least one."""
    return task.pass_size(most)


def in_passes(task, rows: torch.Tensor, evaluate, accumulate, done: int = 0,
              total: int | None = None) -> int:
    """``accumulate(rows, evaluate(rows))`` over ``rows`` in passes of ``rows_per_pass``
    images, checking for cancellation and reporting progress; returns rows done."""
    per_pass = rows_per_pass(task)
    total = len(rows) if total is None else total
    for start in range(0, len(rows), per_pass):
        task.check()
        part = rows[start:start + per_pass]
        accumulate(part, evaluate(part).detach())
        done += len(part)
        task.report(done, total)
    return done


def noisy_copies(batch: torch.Tensor, n: int, stdev: float) -> torch.Tensor:
    """captum's noise draw: each row repeated ``n`` times (row t·n + s is sample s of row
    t) plus Gaussian noise of ``stdev``, drawn in one call as ``NoiseTunnel`` draws it."""
    size = (batch.shape[0] * n, *batch.shape[1:])
    noise = torch.normal(0, torch.tensor(stdev, device=batch.device).repeat(size))
    return batch.repeat_interleave(n, dim=0) + noise


def sample_average(task, n: int, evaluate: Callable[[torch.Tensor], torch.Tensor],
                   kind: str = "smoothgrad", unit: str = "samples") -> torch.Tensor:
    """The average over ``n`` samples per target of ``evaluate(rows)`` (rows t·n + s, the
    maps of those rows), as ``kind`` ("smoothgrad", "smoothgrad_sq", "vargrad"); in rounds
    of n/8, n/4, n/2, n samples when the task is progressive, each round delivered."""
    n_targets = len(task.targets)
    total = task.batch.new_zeros(task.batch.shape)
    squares = torch.zeros_like(total) if kind != "smoothgrad" else None

    def accumulate(rows: torch.Tensor, maps: torch.Tensor) -> None:
        owner = rows // n
        total.index_add_(0, owner, maps)
        if squares is not None:
            squares.index_add_(0, owner, maps * maps)

    done = 0
    for end in (sample_rounds(n) if task.progressive else [n]):
        samples = torch.arange(done, end, device=task.image.device)
        rows = (torch.arange(n_targets, device=samples.device)[:, None] * n
                + samples[None]).reshape(-1)
        in_passes(task, rows, evaluate, accumulate, done * n_targets, n * n_targets)
        done = end
        task.deliver(_smoothed(total, squares, done, kind), done, n, unit)
    return _smoothed(total, squares, done, kind)


def _smoothed(total, squares, count: int, kind: str) -> torch.Tensor:
    mean = total / count
    if kind == "smoothgrad":
        return mean
    if kind == "smoothgrad_sq":
        return squares / count
    return squares / count - mean * mean  # vargrad


def noise_tunnel(task, attribute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """SmoothGrad (and its _sq and VarGrad forms) of ``attribute(inputs, targets)``: the
    same draws and numbers as captum's ``NoiseTunnel`` for the task's seed."""
    p = task.params
    n = p["nt_samples"]
    with seeded(p["seed"], task.image.device):
        noisy = noisy_copies(task.batch, n, float(p["nt_stdev"]))
    targets = task.target_tensor.repeat_interleave(n)
    return sample_average(task, n, lambda rows: attribute(noisy[rows], targets[rows]),
                          p["smoothing"], "noise samples")


def expected_gradients(task, references: torch.Tensor) -> torch.Tensor:
    """GradientSHAP: (x + noise − b) · ∇f(b + u·(x + noise − b)), b drawn from
    ``references`` and u uniform in [0, 1], averaged over ``n_samples`` per target. The
    draws are captum's ``GradientShap`` draws for the task's seed (baselines, noise, u)."""
    p = task.params
    n = p["n_samples"]
    rows_total = len(task.targets) * n
    with seeded(p["seed"], task.image.device):
        picks = torch.as_tensor(np.random.choice(references.shape[0], rows_total),
                                device=references.device)
        noisy = noisy_copies(task.batch, n, float(p["stdev"]))
        scale = torch.tensor(np.random.uniform(0.0, 1.0, rows_total), device=task.image.device,
                             dtype=task.image.dtype)
    targets = task.target_tensor.repeat_interleave(n)
    model = task.adapter.forward_module

    def evaluate(rows: torch.Tensor) -> torch.Tensor:
        x, b = noisy[rows], references[picks[rows]]
        u = scale[rows].view(-1, *([1] * (x.dim() - 1)))
        return (x - b) * input_gradients(model, u * x + (1 - u) * b, targets[rows])

    return sample_average(task, n, evaluate, "smoothgrad", "samples")
