"""Regressions of the ExplainWidget's baselines: a counterfactual baseline set from Python
or the picker, and an array baseline passed to the constructor."""

import numpy as np
import pytest

from xai_widgets import ExplainWidget, explain

TIMEOUT = 120


@pytest.fixture
def widget(demo):
    model, images, _, classes = demo
    w = ExplainWidget(model, images[0], classes=classes).wait(TIMEOUT)
    yield w
    w.close()


def status_line(w) -> str:
    return w.panels["status"].line.value


def test_a_counterfactual_baseline_set_from_python_is_not_an_unknown_baseline(widget):
    w = widget
    w.baseline = "counterfactual:9"
    w.wait(TIMEOUT)
    assert "unknown baseline" not in w.error
    assert "unknown baseline" not in status_line(w)
    assert w.error == "", w.error
    assert w.baseline == "counterfactual:9"
    assert w.explanation.baseline == "counterfactual:9"
    controls = w.panels["controls"]
    assert controls.baseline.value == "counterfactual"
    assert controls.why_not.value.endswith("(9)")


def test_a_counterfactual_baseline_picked_in_the_controls(widget):
    w = widget
    controls = w.panels["controls"]
    controls.baseline.value = "counterfactual"  # what the front end's dropdown sets
    w.wait(TIMEOUT)
    assert "unknown baseline" not in w.error and "unknown baseline" not in status_line(w)
    assert isinstance(w.baseline, str) and w.baseline.startswith("counterfactual:")
    assert w.explanation.baseline == w.baseline
    controls.why_not.value = "3"
    w.wait(TIMEOUT)
    assert w.baseline == "counterfactual:3" and w.explanation.baseline == "counterfactual:3"
    assert w.error == ""


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_an_array_baseline_passed_to_the_widget_is_used(demo, value):
    model, images, _, classes = demo
    baseline = np.full((1, 28, 28), value)
    w = ExplainWidget(model, images[0], classes=classes, baseline=baseline).wait(TIMEOUT)
    try:
        assert w.error == ""
        assert w.explanation.baseline == "array"
        np.testing.assert_array_equal(w.explanation.baseline_image, baseline.astype(np.float32))
        assert w.panels["controls"].baseline.value == "array"
        expected = explain(model, images[0], targets=w.explanation.targets, baseline=baseline)
        np.testing.assert_allclose(w.explanation.attributions, expected.attributions,
                                   rtol=1e-5, atol=1e-7)
    finally:
        w.close()


# -- bugs found by a fresh walkthrough, fixed -------------------------------------------------
def test_the_baseline_picker_shows_an_array_set_later(widget):
    w = widget
    w.baseline = np.full((1, 28, 28), 0.5)
    w.wait(TIMEOUT)
    assert w.explanation.baseline == "array"
    assert w.panels["controls"].baseline.value == "array"  # still shows "zero"


def test_the_baseline_picker_restores_the_latest_array(demo):
    model, images, _, classes = demo
    w = ExplainWidget(model, images[0], classes=classes, baseline=np.zeros((1, 28, 28)))
    try:
        w.baseline = np.full((1, 28, 28), 0.5)
        picker = w.panels["controls"].baseline
        picker.value = "zero"
        picker.value = "array"
        w.wait(TIMEOUT)
        assert float(np.asarray(w.baseline).mean()) == 0.5  # is 0.0: the first array
    finally:
        w.close()


def test_top_k_above_100_is_kept_or_rejected():
    import torch
    from torch import nn

    from xai_widgets import InputError

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 1000)).eval()
    w = ExplainWidget(model, torch.rand(3, 8, 8), method="saliency").wait(TIMEOUT)
    try:
        try:
            w.top_k = 120
        except InputError:
            return  # rejected where it enters: fine
        w.wait(TIMEOUT)
        assert w.top_k == 120 and len(w.state.shown_classes()) == 120  # both are 100
    finally:
        w.close()
