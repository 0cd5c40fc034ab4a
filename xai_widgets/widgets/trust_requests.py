"""What the influence and robustness tabs compute, on the view's engine.

- influence: the training images that most helped and most hurt the target's score
  (``influence.Influencer``, prepared once per model version, with progress; each target is
  then one query);
- robustness: the max-sensitivity of the map shown (the view's method, parameters and target)
  within the ``epsilon`` ball, and, on request, the interpretation attack on the predicted
  class with a progress bar and a stop.

Each asks for work only while its tab is open and applies the result to the state's
read-only traits (``influence``, ``sensitivity``, ``attack``, ``tab_progress``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from xai_widgets import robustness
from xai_widgets.errors import InputError
from xai_widgets.influence import Influencer, read_checkpoint

SHOWN = 8  # proponents and opponents shown


def training_set(adapter, train, like: torch.Tensor):
    """``train=(images, labels)`` as tensors shaped like the view's image, or None."""
    if train is None:
        return None
    if not isinstance(train, (tuple, list)) or len(train) != 2:
        raise InputError("train must be a pair (training images, their labels), e.g. "
                         "train=(train_images, train_labels)")
    images, labels = train
    if labels is None:
        raise InputError("train has no labels: pass train=(train_images, train_labels), one "
                         "label per training image")
    images = adapter.batch(images, like).detach().cpu()
    labels = torch.as_tensor(labels).detach().cpu()
    if labels.ndim != 1 or len(labels) != len(images) or labels.is_floating_point():
        raise InputError(f"train labels must be {len(images)} integer class indices, one per "
                         f"training image; got shape {tuple(labels.shape)} of {labels.dtype}")
    return images, labels.long()


def checked_checkpoints(adapter, checkpoints):
    """``checkpoints`` as state_dicts (paths loaded) that fit the view's model, or None."""
    if checkpoints is None:
        return None
    if isinstance(checkpoints, (str, Path, dict)) or len(checkpoints) == 0:
        raise InputError("checkpoints must be a non-empty list of state_dicts (or paths to "
                         "saved state_dicts), one per checkpoint saved during training")
    return [read_checkpoint(c, i, adapter.model) for i, c in enumerate(checkpoints)]


def default_top_k(state) -> int:
    """50 pixels on a small image, about 2 % of them on a large one."""
    pixels = state.image_shape[-1] * state.image_shape[-2]
    return min(pixels, max(50, pixels // 50))


def follow_method(state) -> None:
    """The attack takes the view's map when it can (saliency, SmoothGrad, IG)."""
    method = state.method
    if method == "saliency" and state.params.get("smoothing") == "smoothgrad":
        method = "smoothgrad"
    if method in robustness.ATTACK_METHODS and state.attack_method != method:
        state.attack_method = method


def on_change(state) -> None:
    if state.tab == "influence":
        request_influence(state)
    elif state.tab == "robustness":
        request_sensitivity(state)


def _progress(state):
    def report(_label: str, fraction: float) -> None:
        with state.apply_lock:
            state.set_trait("tab_progress", fraction)
    return report


def _done(state, name: str, result) -> None:
    state.set_trait(name, result)
    state.set_trait("tab_progress", -1.0)


def _influence_model(adapter, checkpoints):
    """The module TracIn differentiates: the view's logits module (the preprocessing and the
    model; plain scores from any output), whose weights are the model's under ``model.``."""
    if checkpoints is not None:
        checkpoints = [c if not isinstance(c, dict) else {f"model.{k}": v for k, v in c.items()}
                       for c in checkpoints]
    return adapter.forward_module, checkpoints


def influence_job(source, target: int, job):
    key = source.adapter.version()
    influencer = source.influencers.get(key)
    if influencer is None:
        model, checkpoints = _influence_model(source.adapter, source.checkpoints)
        with source.adapter.eval_mode():
            influencer = Influencer(model, *source.train, checkpoints,
                                    progress=job.report, cancelled=job.cancelled)
        source.influencers.clear()
        source.influencers[key] = influencer
    return influencer.query(source.image[0].detach().cpu(), k=min(SHOWN, len(source.train[1])),
                            target=target)


def request_influence(state) -> None:
    if state.train is None:
        return
    shown = state.influence
    if shown is not None and shown.target == state.target == state.influence_of:
        return
    state.influence_of = state.target  # the newest request wins, even back to what is shown
    state.submit("influence", partial(influence_job, target=state.target),
                 partial(_done, state, "influence"), "influence", progress=_progress(state))


def sensitivity_job(source, method: str, params: dict, target: int, epsilon: float, job):
    adapter = source.adapter
    return robustness.sensitivity(adapter.model, source.image[0], method=method,
                                  epsilon=epsilon, target=target, preprocess=adapter.preprocess,
                                  progress=job.report, cancelled=job.cancelled, **params)


def request_sensitivity(state) -> None:
    wanted = (state.method, repr(sorted(state.params.items())), state.target, state.epsilon)
    if state.sensitivity is not None and state.sensitivity_of == wanted:
        return
    state.sensitivity_of = wanted
    state.set_trait("sensitivity", None)
    state.submit("sensitivity", partial(sensitivity_job, method=state.method,
                                        params=dict(state.params), target=state.target,
                                        epsilon=state.epsilon),
                 partial(_done, state, "sensitivity"), "max-sensitivity",
                 progress=_progress(state))


def attack_job(source, method: str, epsilon: float, top_k: int, steps: int, job):
    adapter = source.adapter
    return robustness.attack_map(adapter.model, source.image[0], method=method, epsilon=epsilon,
                                 top_k=top_k, steps=steps, preprocess=adapter.preprocess,
                                 progress=job.report, cancelled=job.cancelled)


def request_attack(state, top_k: int | None = None, steps: int = 100) -> None:
    """Run the interpretation attack with the state's ``attack_method`` and ``epsilon``."""
    top_k = default_top_k(state) if top_k is None else int(top_k)
    state.set_trait("tab_progress", 0.0)  # the last finished attack stays until this one is
    state.submit("attack", partial(attack_job, method=state.attack_method, epsilon=state.epsilon,
                                   top_k=top_k, steps=int(steps)),
                 partial(_done, state, "attack"), "interpretation attack",
                 progress=_progress(state))


def stop_attack(state) -> None:
    state.engine.supersede("attack")
    with state.apply_lock:
        state.set_trait("tab_progress", -1.0)
