"""What a view computes besides its maps: superpixels, masked images, counterfactual
searches, diagnostics, and which image the bars show. Each function asks the view's engine
for work only when its part is on screen and applies the result to the state's read-only
traits.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from xai_widgets import methods
from xai_widgets.compute import cached_counterfactual
from xai_widgets.methods.counterfactuals import ONE_PASS
from xai_widgets.widgets import jobs


def segments_wanted(state) -> bool:
    e = state.explanation
    return (state.tab == "superpixels" or bool(state.hidden_segments)
            or (e is not None and methods.spec(e.method).superpixels))


def request_segments(state) -> None:
    if not segments_wanted(state):
        return
    e = state.explanation
    size = state.image_shape[-2:]
    params = (jobs.segment_params(e.method, e.params, state.segmentation, size) if e else
              jobs.segment_params(state.method, {}, state.segmentation, size))
    state.submit("segments", partial(jobs.segments, segmentation=state.segmentation,
                                     params=params), partial(_on_segments, state), "superpixels")


def _on_segments(state, labels: np.ndarray) -> None:
    changed = state.segments is None or not np.array_equal(labels, state.segments)
    state.set_trait("segments", labels)
    if changed and state.hidden_segments:
        state.hidden_segments = []  # ids of another segmentation mean nothing here
    elif not changed:
        request_mask(state)


def request_mask(state) -> None:
    if not state.hidden_segments:
        state.engine.supersede("mask")
        state.set_trait("masked", None)
        return
    if state.segments is None:
        request_segments(state)
        return
    state.submit("mask", partial(jobs.masked, labels=state.segments,
                                 hidden=tuple(state.hidden_segments), baseline=state.baseline,
                                 alpha=state.baseline_alpha),
                 partial(_on_masked, state), "masked image")


def _on_masked(state, masked: jobs.Masked) -> None:
    state.set_trait("masked", masked)


def request_counterfactual(state) -> None:
    if state.counterfactual_target is None:
        state.engine.supersede("counterfactual")
        state.set_trait("counterfactual", None)
        return
    cached = cached_counterfactual(state.adapter, state.image, state.counterfactual_target,
                                   state.counterfactual_method)
    if cached is not None:  # going back to an earlier search (or a baseline's) is free
        state.engine.apply_now("counterfactual", lambda: state.set_trait("counterfactual", cached),
                               state.fail)
        return
    state.submit("counterfactual", partial(jobs.counterfactual, target=state.counterfactual_target,
                                           method=state.counterfactual_method),
                 lambda cf: state.set_trait("counterfactual", cf), "counterfactual")


def request_strip(state) -> None:
    """With a one-pass counterfactual method and its tab open: x′ toward every class at once
    (cached per class, so picking one afterwards makes no model call)."""
    method = state.counterfactual_method
    if state.tab != "counterfactual" or method not in ONE_PASS:
        return
    if state.strip_of == method:  # shown, or on its way
        return
    state.strip_of = method
    state.submit("strip", partial(jobs.counterfactual_strip, method=method),
                 lambda found: state.set_trait("counterfactual_strip", found),
                 "counterfactuals to every class")


def update_probabilities(state) -> None:
    """What the bars show: the morph frame, else the masked image, else the image."""
    with state.apply_lock:
        cf, masked = state.counterfactual, state.masked
        if cf is not None and state.morph > 0:
            probabilities = cf.path_probabilities[cf.step(state.morph)]
            shown = f"the morph frame at {state.morph:.0%} of the way to x′"
        elif masked is not None and list(masked.hidden) == state.hidden_segments:
            probabilities = masked.probabilities
            shown = f"the image with {len(masked.hidden)} segment(s) hidden"
        else:
            probabilities, shown = state.base_probabilities, "the image"
        state.set_trait("probabilities", np.asarray(probabilities))
        state.set_trait("shown", shown)


def request_diagnostics(state) -> None:
    e = state.explanation
    if state.tab != "diagnostics" or e is None or state.target not in e.targets:
        return
    key, target = state.key(), state.target
    state.submit("curves", partial(jobs.curves, attribution=e.map(target), target=target),
                 lambda curves: state.set_trait("faithfulness", curves), "faithfulness curves")
    cached = state.sanity_cache.get((state.adapter.version(), key, target))
    if cached is not None:
        state.engine.apply_now("sanity", lambda: state.set_trait("sanity", cached), state.fail)
        return
    state.set_trait("sanity", None)
    state.submit("sanity", partial(jobs.sanity, key=key, target=target),
                 partial(_on_sanity, state, (state.adapter.version(), key, target)),
                 "sanity check")


def _on_sanity(state, cache_key, check) -> None:
    state.sanity_cache[cache_key] = check
    state.set_trait("sanity", check)
