"""The counterfactual panel: search, morph slider (no model call), one-vs-one baseline."""

import numpy as np
import pytest

from tests.test_widget import TIMEOUT, CountingModel
from xai_widgets import ExplainWidget, counterfactual


@pytest.fixture
def panel(model, images):
    counting = CountingModel(model)
    w = ExplainWidget(counting, images[0], data=images[500:]).wait(TIMEOUT)
    w.counterfactual_target = 9
    w.wait(TIMEOUT)
    yield w, counting
    w.close()


def test_the_search_equals_counterfactual(panel, model, images):
    w, _ = panel
    expected = counterfactual(model, images[0], target=9, method="prototype", data=images[500:])
    assert w.counterfactual_method == "prototype"  # reference images were given
    np.testing.assert_allclose(w.counterfactual.image, expected.image, atol=1e-6)
    assert w.counterfactual.success and "✓" in w._cf_view.caption


def test_morph_moves_the_bars_without_a_model_call(panel):
    w, counting = panel
    calls = counting.calls
    cf = w.counterfactual
    for morph in (0.0, 0.35, 0.7, 1.0):
        w.morph = morph
        np.testing.assert_array_equal(w.probabilities, cf.path_probabilities[cf.step(morph)])
        np.testing.assert_allclose(w._bars.y, w.probabilities)
        assert w._morph_marker.x[0] == pytest.approx(cf.step(morph) / 20)
    assert counting.calls == calls
    assert w.probabilities.argmax() == 9
    w._morph_slider.value = 0.0  # the front end's slider
    assert w.morph == 0.0 and w.probabilities.argmax() == w.explanation.prediction


def test_the_chart_shows_every_class_along_the_path(panel):
    w, _ = panel
    np.testing.assert_array_equal(w._path_lines.y, w.counterfactual.path_probabilities.T)


def test_clearing_and_errors(panel):
    w, _ = panel
    w.morph = 1.5
    assert "morph must be in 0..1" in w.error
    w.counterfactual_method = "dice"
    w.wait(TIMEOUT)
    assert "unknown counterfactual method" in w.error
    w.counterfactual_method = "wachter"
    w.wait(TIMEOUT)
    assert w.counterfactual.method == "wachter"
    w.counterfactual_target = None
    assert w.counterfactual is None


def test_one_vs_one_baseline_in_the_widget(panel):
    w, _ = panel
    w.baseline = "counterfactual:9"
    w.wait(TIMEOUT)
    e = w.explanation
    assert e.baseline == "counterfactual:9" and e.completeness_error < 0.02
    options = [value for _, value in w._baseline_picker.options]
    assert "counterfactual:3" in options
