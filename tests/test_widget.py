"""ExplainWidget logic without a browser: driven through the traits the front end sets."""

import re
import time

import numpy as np
import pytest
import torch
import traitlets
from torch import nn

from tests.conftest import checksum
from xai_widgets import ExplainWidget, InputError, explain
from xai_widgets.encoding import decode

TIMEOUT = 60


class CountingModel(nn.Module):
    """Wraps a model and counts forward passes (every model call goes through here)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


@pytest.fixture
def widget(model, image, demo):
    w = ExplainWidget(model, image, classes=demo[3]).wait(TIMEOUT)
    yield w
    w.close()


STATES = [
    {"method": "integrated_gradients", "params": {"n_steps": 20}, "baseline": "blur",
     "baseline_alpha": 0.3},
    {"method": "occlusion", "params": {"window": 7, "stride": 3}, "baseline": "zero",
     "baseline_alpha": 0.0},
    {"method": "saliency", "params": {"absolute": False}, "baseline": "zero",
     "baseline_alpha": 0.0},
    {"method": "deeplift", "params": {}, "baseline": "uniform", "baseline_alpha": 0.5},
    {"method": "grad_cam", "params": {"relu": False}, "baseline": "zero", "baseline_alpha": 0.0},
    {"method": "lrp", "params": {"rule": "gamma"}, "baseline": "zero", "baseline_alpha": 0.0},
]


def assert_same_maps(shown, expected):
    """The widget refines slow methods in rounds: the same terms, summed (and batched
    through the model) in another order, so equal to float precision, not bit for bit."""
    scale = np.abs(expected.attributions).max()
    np.testing.assert_allclose(shown.attributions, expected.attributions, rtol=0,
                               atol=1e-5 * scale)


def set_state(w, state):
    w.method = state["method"]
    w.params = dict(state["params"])
    w.baseline = state["baseline"]
    w.baseline_alpha = state["baseline_alpha"]


@pytest.mark.parametrize("state", STATES, ids=[s["method"] for s in STATES])
def test_traits_give_the_same_explanation_as_explain(widget, model, image, state):
    set_state(widget, state)
    shown = widget.wait(TIMEOUT).explanation
    expected = explain(model, image, method=state["method"], baseline=state["baseline"],
                       baseline_alpha=state["baseline_alpha"], **state["params"])
    assert shown.method == expected.method and shown.params == expected.params
    assert_same_maps(shown, expected)
    np.testing.assert_array_equal(widget.probabilities, expected.probabilities)
    assert widget.error == "" and "ms" in widget.status and not shown.refining


def test_default_view(widget, model, image):
    e = widget.explanation
    assert e.method == "integrated_gradients"  # not plain gradients: passes the sanity checks
    assert widget.target == e.prediction == int(torch.argmax(model(image[None])))
    assert "ms" in widget.status and widget.error == ""
    heatmap = widget.panels["map"].view
    np.testing.assert_array_equal(decode(heatmap.attribution), e.map(widget.target))
    assert heatmap.vmax == pytest.approx(np.abs(e.map(widget.target)).max())
    assert "Red = evidence for class" in heatmap.convention
    assert decode(widget.panels["classes"].grid.maps).shape == (10, 28, 28)
    assert widget.panels["classes"].grid.classes == list(range(10))
    assert widget.panels["classes"].grid.predicted == e.prediction
    np.testing.assert_allclose(widget.panels["bars"].bars.y, e.probabilities)
    assert isinstance(heatmap.attribution["buffer"], bytes)  # a binary buffer, not a JSON list


def test_clicking_a_tile_sets_the_target_without_recomputing(widget):
    before = widget.explanation
    widget.panels["classes"].grid.target = 5  # what the front end does on a click
    assert widget.target == 5
    assert widget.explanation is before
    np.testing.assert_array_equal(decode(widget.panels["map"].view.attribution), before.map(5))
    assert widget.panels["bars"].bars.color[5] == "target"  # 10 classes: all shown, in order
    assert "class 5" in widget.panels["map"].view.title


def test_abs_values_toggle(widget):
    widget.abs_values = True
    shown = decode(widget.panels["map"].view.attribution)
    np.testing.assert_array_equal(shown, np.abs(widget.explanation.map(widget.target)))
    assert "Absolute values" in widget.panels["map"].view.convention


@pytest.mark.parametrize("change, match", [
    ({"method": "nope"}, "unknown method 'nope'"),
    ({"params": {"n_steps": -5}}, "n_steps must be in 1..1000"),
    ({"baseline": "sky"}, "unknown baseline 'sky'"),
    ({"baseline_alpha": 2.0}, "baseline_alpha must be in 0..1"),
    ({"target": 10}, "target 10 is out of range"),
    ({"params": {"steps": 3}}, "no parameter 'steps'"),
    ({"baseline": np.zeros((3, 28, 28))}, "baseline array has shape"),
    ({"counterfactual_target": -1}, "counterfactual target -1 is out of range"),
    ({"morph": 1.5}, "morph must be in 0..1"),
    ({"segmentation": "watershed"}, "unknown segmentation 'watershed'"),
    ({"top_k": 0}, "top_k must be a positive int"),
])
def test_invalid_values_from_python_raise_at_once(widget, change, match):
    good = widget.explanation
    for name, value in change.items():
        with pytest.raises(InputError, match=match):
            setattr(widget, name, value)
    assert widget.wait(TIMEOUT).explanation is good and widget.error == ""


@pytest.mark.parametrize("control, value, match", [
    ("params", {"n_steps": -5}, "n_steps must be in 1..1000"),
    ("target", 10, "target 10 is out of range"),
])
def test_invalid_values_from_the_front_end_show_and_keep_the_last_view(widget, control, value,
                                                                        match):
    good = widget.explanation
    shown = widget.panels["map"].view.attribution
    widget.state.set(control, value)  # what every control does with the value it got
    assert re.search(match, widget.error) and widget.status.startswith("error")
    assert "xai-error" in widget.panels["status"].line.value
    assert widget.explanation is good and widget.panels["map"].view.attribution == shown
    widget.method, widget.target = "saliency", 3  # the next valid change recovers
    widget.wait(TIMEOUT)
    assert widget.error == "" and widget.explanation.method == "saliency"


def test_twenty_rapid_changes_end_on_the_last(widget, model, image):
    widget.method = "occlusion"
    windows = [3 + (i % 9) for i in range(20)]
    for window in windows:
        widget.params = {"window": window, "stride": 1}
    widget.wait(TIMEOUT)
    expected = explain(model, image, method="occlusion", window=windows[-1], stride=1)
    assert widget.explanation.params["window"] == windows[-1]
    assert_same_maps(widget.explanation, expected)


def test_a_cache_hit_makes_no_model_call(model, image):
    counting = CountingModel(model)
    w = ExplainWidget(counting, image).wait(TIMEOUT)
    first = w.explanation
    w.method = "occlusion"
    w.wait(TIMEOUT)
    calls = counting.calls
    w.method = "integrated_gradients"  # back to an earlier state
    w.wait(TIMEOUT)
    assert counting.calls == calls
    assert w.explanation is first
    w.close()


def test_superseded_work_stops_early(model, image):
    counting = CountingModel(model)
    w = ExplainWidget(counting, image, method="saliency").wait(TIMEOUT)
    before = counting.calls
    w.method = "occlusion"
    w.params = {"window": 1, "stride": 1, "batch_size": 1}  # 784 one-image passes
    w.method = "saliency"  # supersedes it at once (and is a cache hit)
    w.wait(TIMEOUT)
    time.sleep(0.5)  # let the worker notice
    assert counting.calls - before < 400
    assert w.explanation.method == "saliency"
    w.close()


def test_read_only_state(widget):
    with pytest.raises(traitlets.TraitError):
        widget.explanation = None
    with pytest.raises(traitlets.TraitError):
        widget.probabilities = np.zeros(10)
    with pytest.raises(traitlets.TraitError):
        widget.status = "ok"


def test_method_controls_follow_the_spec(widget):
    widget.method = "occlusion"
    widget.wait(TIMEOUT)
    names = [c._param for c in widget.panels["controls"].params.children]
    assert names == ["window", "stride", "batch_size"]
    window = widget.panels["controls"].params.children[0]
    window.value = 9  # dragging the slider, as the front end does
    widget.wait(TIMEOUT)
    assert widget.params == {"window": 9} and widget.explanation.params["window"] == 9
    widget.params = {"window": 4}
    assert window.value == 4  # the control follows the trait


def test_noise_controls_show_only_with_a_noise_tunnel(widget):
    def shown():
        return [c._param for c in widget.panels["controls"].params.children
                if c.layout.display != "none"]

    assert "nt_samples" not in shown()
    widget.params = {"smoothing": "smoothgrad"}
    assert {"nt_samples", "nt_stdev", "seed"} <= set(shown())


def test_baseline_controls_drive_the_traits(widget):
    widget.panels["controls"].alpha.value = 0.5
    widget.panels["controls"].baseline.value = "blur"
    widget.wait(TIMEOUT)
    assert widget.baseline_alpha == 0.5 and widget.baseline == "blur"
    assert widget.explanation.baseline == "blur" and widget.explanation.baseline_alpha == 0.5


def test_model_and_image_untouched(model, image):
    x = image.clone()
    before = checksum(model)
    model.train()
    w = ExplainWidget(model, x, method="lrp").wait(TIMEOUT)
    w.method = "deeplift"
    w.wait(TIMEOUT)
    w.close()
    assert model.training
    model.eval()
    assert checksum(model) == before and torch.equal(x, image)


def test_constructor_errors(model, image):
    with pytest.raises(InputError, match="class names"):
        ExplainWidget(model, image, classes=["a", "b"])
    with pytest.raises(InputError, match="batch of 4"):
        ExplainWidget(model, torch.zeros(4, 1, 28, 28))


def test_notes_are_shown(model, image):
    w = ExplainWidget(model, image, method="gradient_shap").wait(TIMEOUT)
    # says what was used instead of reference images
    assert "data=images" in w.panels["status"].notes.value
    w.close()
