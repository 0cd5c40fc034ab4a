"""LIME over superpixels, every class from one set of perturbed images.

The algorithm and numbers of ``lime.lime_image.LimeImageExplainer.explain_instance`` (same
samples for the same seed, cosine distances, kernel sqrt(exp(−d²/w²)), ridge α = 1 with an
intercept), with two differences in how the work is done: the perturbed images are built
and scored in large batches, and the per-class regressions are one multi-output solve.
Hidden segments take the baseline's pixels (lime's ``hide_color``).

>>> from xai_widgets import explain
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> e = explain(model, images[0], method="lime", n_samples=200)
>>> e.attributions.shape
(10, 28, 28)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from xai_widgets.methods.progressive import sample_rounds
from xai_widgets.methods.registry import MethodSpec, Param, Task, register
from xai_widgets.methods.surrogate import weighted_linear_fit
from xai_widgets.superpixels import SEGMENTATION_PARAMS, masked_probabilities, segments_for

SAMPLING_PARAMS = (
    Param("n_samples", "int", 1000, 10, 20000, 10, label="samples",
          help="perturbed images scored by the model"),
    Param("batch_size", "int", 200, 1, 8192, 1, label="batch size",
          help="perturbed images per forward pass (a few hundred is fastest on a CPU)"),
    Param("seed", "int", 0, 0, 2**31 - 1, 1),
)


def lime_samples(n_samples: int, n_segments: int, seed: int) -> np.ndarray:
    """lime's own draw: which segments each sample keeps (row 0 keeps all)."""
    rng = np.random.RandomState(seed)
    samples = rng.randint(0, 2, n_samples * n_segments).reshape((n_samples, n_segments))
    samples[0, :] = 1
    return samples


def fitted_in_rounds(task: Task, draw, fit) -> torch.Tensor:
    """The shared loop of LIME and KernelSHAP: segment, draw which segments each sample keeps
    (``draw(n_samples, n_segments, seed)``), score the perturbed images and
    ``fit(keep, scores) -> (n_segments, n_targets)`` weights, painted onto the segments.
    Progressive: scored and fitted on the first n/8, n/4, n/2, n samples, each fit shown."""
    p = task.params
    segments = segments_for(task)
    n = p["n_samples"]
    samples = draw(n, int(segments.max()) + 1, p["seed"])
    keep = torch.from_numpy(samples.astype(bool)).to(task.image.device)
    scores, done = [], 0
    batch_size = task.pass_size(p["batch_size"])  # within the memory budget
    for end in (sample_rounds(n) if task.progressive else [n]):
        offset = done
        part = replace(task, progress=lambda d, total, offset=offset: task.report(offset + d, n))
        scores.append(masked_probabilities(task.adapter, task.image, task.baseline, segments,
                                           keep[done:end], batch_size, part)[:, task.targets])
        done = end
        maps = segment_map(fit(keep[:end], torch.cat(scores)), segments, task)
        task.deliver(maps, done, n, "samples")
    return maps


def lime(task: Task) -> torch.Tensor:
    def fit(keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # cosine distance between each sample and the all-ones row: 1 − sqrt(k / n)
        distances = 1.0 - (keep.double().sum(1) / keep.shape[1]).sqrt()
        weights = torch.exp(-(distances ** 2) / task.params["kernel_width"] ** 2).sqrt()
        return weighted_linear_fit(keep, scores, weights, alpha=1.0)[0]

    return fitted_in_rounds(task, lime_samples, fit)


def segment_map(coef: torch.Tensor, segments: torch.Tensor, task: Task) -> torch.Tensor:
    """Per-segment weights (n_segments, n_targets) painted onto pixels: (T, C, H, W)."""
    weights = coef.T.float().to(segments.device)
    maps = weights[:, segments].unsqueeze(1)
    return maps.expand(-1, task.image.shape[1], -1, -1).contiguous()


register(MethodSpec(
    "lime", "LIME (superpixels)", "lime",
    "a weighted linear model of the class probability on which superpixels are kept; "
    "positive weight = the segment supports the class", lime,
    params=SEGMENTATION_PARAMS + SAMPLING_PARAMS + (
        Param("kernel_width", "float", 0.25, 0.01, 10.0, 0.01, label="kernel width",
              help="lime's proximity kernel width on cosine distances"),),
    needs_baseline=True, stochastic=True, spatial=True, superpixels=True,
    shares_passes=True))
