"""Random interaction sequences (hypothesis) against a live widget: it always settles, the
final view equals ``explain()`` for the final state, the bars show the image the state says,
and no exception escapes."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_widget import TIMEOUT
from xai_widgets import ExplainWidget, explain, methods
from xai_widgets.store import ViewKey

FAST = {
    "saliency": st.fixed_dictionaries({}, optional={"absolute": st.booleans()}),
    "input_x_gradient": st.just({}),
    "grad_cam": st.fixed_dictionaries({}, optional={"relu": st.booleans()}),
    "integrated_gradients": st.fixed_dictionaries({"n_steps": st.integers(2, 12)}),
    "deeplift": st.just({}),
    "guided_backprop": st.just({}),
    "occlusion": st.integers(5, 9).flatmap(
        lambda window: st.fixed_dictionaries({"window": st.just(window),
                                              "stride": st.integers(4, window)})),
    "lrp": st.fixed_dictionaries({}, optional={"rule": st.sampled_from(["epsilon", "gamma"])}),
}
BASELINES = ["zero", "blur", "uniform", "max", "counterfactual:9", "counterfactual:3"]
TABS = ["", "superpixels", "counterfactual", "diagnostics", "influence", "robustness"]

method_change = st.sampled_from(sorted(FAST)).flatmap(
    lambda m: FAST[m].map(lambda p: ("method_params", (m, p))))
interaction = st.one_of(
    method_change,
    st.tuples(st.just("target"), st.integers(0, 9)),
    st.tuples(st.just("baseline"), st.sampled_from(BASELINES)),
    st.tuples(st.just("baseline_alpha"), st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    st.tuples(st.just("abs_values"), st.booleans()),
    st.tuples(st.just("tab"), st.sampled_from(TABS)),
    st.tuples(st.just("hidden_segments"), st.lists(st.integers(0, 15), max_size=4)),
    st.tuples(st.just("counterfactual_target"), st.sampled_from([None, 3, 9])),
    st.tuples(st.just("morph"), st.sampled_from([0.0, 0.4, 1.0])),
    st.tuples(st.just("sanity_step"), st.integers(0, 4)),
    st.tuples(st.just("settle"), st.none()),
)


def play(w, step) -> None:
    name, value = step
    if name == "method_params":
        w.method, w.params = value
    elif name == "settle":
        w.wait(TIMEOUT)
    elif name == "hidden_segments":
        w.wait(TIMEOUT)  # segment ids are only valid once the segments are on screen
        if w.segments is not None:
            n = int(w.segments.max()) + 1
            w.hidden_segments = [s for s in value if s < n]
    else:
        setattr(w, name, value)


def check_final_view(w, model, image) -> None:
    state = w.state
    e = w.explanation
    key = ViewKey.of(w.method, w.params, w.baseline, w.baseline_alpha)
    assert ViewKey.of(e.method, {k: v for k, v in e.params.items() if k in w.params},
                      e.baseline, e.baseline_alpha) == key
    assert e.params == methods.spec(w.method).resolve(w.params)
    shown = state.shown_classes()
    expected = explain(model, image, w.method, targets=shown, baseline=w.baseline,
                       baseline_alpha=w.baseline_alpha, **w.params)
    for c in shown:
        np.testing.assert_allclose(e.map(c), expected.map(c), rtol=1e-4,
                                   atol=1e-5 * max(1.0, float(np.abs(expected.map(c)).max())))
    cf, masked = w.counterfactual, w.masked
    if cf is not None and w.morph > 0:
        np.testing.assert_array_equal(w.probabilities, cf.path_probabilities[cf.step(w.morph)])
    elif w.hidden_segments:
        assert masked is not None and list(masked.hidden) == w.hidden_segments
        np.testing.assert_array_equal(w.probabilities, masked.probabilities)
    else:
        np.testing.assert_array_equal(w.probabilities, state.base_probabilities)
    if w.tab == "diagnostics":
        assert w.sanity is not None and w.sanity.method == w.method and w.faithfulness
    if w.tab == "influence":
        assert w.influence is not None and w.influence.target == w.target
    if w.tab == "robustness":
        assert w.sensitivity is not None and w.sensitivity.target == w.target
        assert w.sensitivity.method == w.method


@pytest.fixture(scope="module")
def shared(demo):
    """One widget for every sequence (its caches make repeated searches free); each
    sequence starts from the same reset state."""
    model, images, labels = demo[0], demo[1], demo[2]
    w = ExplainWidget(model, images[0], method="saliency",
                      train=(images[500:700], labels[500:700])).wait(TIMEOUT)
    yield w, model, images[0]
    w.close()


def reset(w) -> None:
    w.wait(TIMEOUT)
    w.tab, w.counterfactual_target, w.morph, w.hidden_segments = "", None, 0.0, []
    w.method, w.baseline, w.baseline_alpha, w.target = "saliency", "zero", 0.0, w.state.prediction
    w.wait(TIMEOUT)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(steps=st.lists(interaction, min_size=30, max_size=32))
def test_random_interaction_sequences_settle_on_the_final_state(shared, steps):
    w, model, image = shared
    reset(w)
    shown = [w.explanation]
    handler = lambda change: shown.append(change["new"])  # noqa: E731
    w.state.observe(handler, "explanation")
    try:
        for step in steps:
            play(w, step)
        w.wait(TIMEOUT)  # settles: no hang
        assert w.error == "", w.error
        assert "computing" not in w.status
        check_final_view(w, model, image)
        assert shown[-1] is w.explanation  # the last thing shown is the final state's map
    finally:
        w.state.unobserve(handler, "explanation")
