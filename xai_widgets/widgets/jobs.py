"""The work a view asks of the engine: pure functions of a snapshot of the state.

Each runs on the engine's worker under the model's lock and returns a small result that
the state applies in its guarded step. Nothing here touches a widget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xai_widgets import methods
from xai_widgets.compute import (
    baseline_for,
    compute,
    counterfactuals_to_every_class,
    find_counterfactual,
)
from xai_widgets.errors import InputError
from xai_widgets.metrics import deletion_curve, insertion_curve
from xai_widgets.sanity import sanity_check
from xai_widgets.superpixels import SEGMENTATION_PARAMS, compose, segment_or_grid


@dataclass(frozen=True)
class Masked:
    """The image with ``hidden`` segments replaced by the baseline, and its prediction."""

    hidden: tuple
    baseline: str
    image: np.ndarray
    probabilities: np.ndarray


def explanation(source, key, baseline, targets, job):
    """Maps of ``targets`` for the view ``key`` (a ``ViewKey``), merged into the store."""
    adapter = source.adapter
    version = adapter.version()
    # no time limit here: the view shows progress, each round of a slow method, and a newer
    # change stops the work
    e = compute(adapter, source.image, key.method, list(targets), dict(key.params),
                baseline, key.baseline_alpha, source.data, notes=source.notes,
                progress=job.report, cancelled=job.cancelled, max_seconds=None,
                on_round=lambda interim: job.publish(source.show_round, interim))
    return source.store.add(version, key, e)


def segment_params(method: str, params: dict, segmentation: str, size: tuple) -> dict:
    """The segmentation parameters for an image of ``size``: a superpixel method's own when
    it uses ``segmentation``, else the defaults scaled to the image."""
    spec = methods.spec(method)
    if spec.superpixels and params.get("segmentation", "slic") == segmentation:
        return spec.resolve(params, size)
    return {p.name: p.default_for(size) for p in SEGMENTATION_PARAMS}


def segments(source, segmentation: str, params: dict, job) -> np.ndarray:
    return segment_or_grid(source.image, segmentation, **params)[0].cpu().numpy()


def masked_ids_valid(labels: np.ndarray, hidden) -> int:
    """The number of segments; raises when ``hidden`` names a segment that does not exist."""
    n_segments = int(labels.max()) + 1
    bad = [s for s in hidden if not 0 <= s < n_segments]
    if bad:
        raise InputError(f"segments {bad} do not exist: this segmentation has segment ids "
                         f"0..{n_segments - 1}")
    return n_segments


def masked(source, labels: np.ndarray, hidden: tuple, baseline, alpha: float, job) -> Masked:
    """One forward pass of one image: ``hidden`` segments take the view's baseline."""
    n_segments = masked_ids_valid(labels, hidden)
    image = source.image
    reference = baseline_for(source.adapter, image, baseline, alpha, source.data)
    keep = torch.ones(1, n_segments, dtype=torch.bool, device=image.device)
    keep[0, list(hidden)] = False
    out = compose(image, reference, torch.from_numpy(labels).to(image.device), keep)
    probabilities = source.adapter.probabilities(out)[0]
    return Masked(tuple(hidden), str(baseline) if isinstance(baseline, str) else "array",
                  out[0].float().cpu().numpy(), probabilities.float().cpu().numpy())


def counterfactual(source, target: int, method: str, job):
    return find_counterfactual(source.adapter, source.image, target, method, source.data,
                               progress=job.report, cancelled=job.cancelled)


def counterfactual_strip(source, method: str, job) -> dict:
    return counterfactuals_to_every_class(source.adapter, source.image, method)


def curves(source, attribution: np.ndarray, target: int, job) -> dict:
    """Deletion and insertion curves of the map shown, through the view's adapter
    (its preprocess and output) and towards the view's own baseline."""
    reference = source.baseline_image()[0].cpu().numpy()
    return {name: function(source.adapter, source.image, attribution, target,
                           baseline=reference)
            for name, function in (("deletion", deletion_curve), ("insertion", insertion_curve))}


def sanity(source, key, target: int, job):
    """Cascading randomisation with the view's method, parameters, preprocess and baseline
    (the baseline image is fixed: a randomised model must not search its own)."""
    adapter = source.adapter
    baseline = source.baseline_image()[0].cpu().numpy()
    return sanity_check(adapter.model, source.image, key.method, target, data=source.data,
                        preprocess=adapter.preprocess, output=adapter.output, baseline=baseline,
                        cancelled=job.cancelled, **dict(key.params))
