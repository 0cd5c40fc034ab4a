"""The counterfactual panel: search, morph slider (no model call), one-vs-one baseline."""

import numpy as np
import pytest

from tests.test_widget import TIMEOUT, CountingModel
from xai_widgets import ExplainWidget, counterfactual


@pytest.fixture
def panel(model, images):
    counting = CountingModel(model)
    w = ExplainWidget(counting, images[0], data=images[500:]).wait(TIMEOUT)
    w.tab = "counterfactual"
    w.counterfactual_target = 9
    w.wait(TIMEOUT)
    yield w, counting
    w.close()


def test_the_search_equals_counterfactual(panel, model, images):
    w, _ = panel
    expected = counterfactual(model, images[0], target=9, method="prototype", data=images[500:])
    assert w.counterfactual_method == "prototype"  # reference images were given
    np.testing.assert_allclose(w.counterfactual.image, expected.image, atol=1e-6)
    # a success, or a failure that says why (out of budget; the searches' numerics differ
    # between torch versions): the caption shows which, with the search's own message
    cf, caption = w.counterfactual, w.panel("counterfactual").view.caption
    assert cf.success == expected.success and cf.message == expected.message
    assert ("✓" if cf.success else "✗") in caption and cf.message in caption
    if not cf.success:
        assert "no counterfactual for class 9" in cf.message and "max_steps" in cf.message


def test_morph_moves_the_bars_without_a_model_call(panel):
    w, counting = panel
    calls = counting.calls
    cf, view = w.counterfactual, w.panel("counterfactual")
    for morph in (0.35, 0.7, 1.0):
        w.morph = morph
        np.testing.assert_array_equal(w.probabilities, cf.path_probabilities[cf.step(morph)])
        np.testing.assert_allclose(w.panels["bars"].bars.y, w.probabilities)
        assert view.marker.x[0] == pytest.approx(cf.step(morph) / 20)
        assert "morph frame" in w.shown
    assert counting.calls == calls
    assert (w.probabilities.argmax() == 9) == cf.success  # x′: class 9, if the search found it
    view.morph.value = 0.0  # the front end's slider
    assert w.morph == 0.0 and w.probabilities.argmax() == w.explanation.prediction
    assert w.shown == "the image"


def test_bars_agree_with_the_morph_after_a_baseline_change(panel):
    w, _ = panel
    w.morph = 0.7
    w.baseline = "blur"  # a recomputation must not put the image's probabilities back
    w.wait(TIMEOUT)
    cf = w.counterfactual
    np.testing.assert_array_equal(w.probabilities, cf.path_probabilities[cf.step(0.7)])


def test_the_chart_shows_the_two_classes_along_the_path(panel):
    w, _ = panel
    cf = w.counterfactual
    start = int(cf.path_probabilities[0].argmax())
    np.testing.assert_array_equal(w.panel("counterfactual").lines.y,
                                  cf.path_probabilities[:, [start, 9]].T)


def test_clearing_and_errors(panel):
    w, _ = panel
    w.counterfactual_method = "wachter"
    w.wait(TIMEOUT)
    assert w.counterfactual.method == "wachter"
    w.counterfactual_target = None
    assert w.counterfactual is None
    w.panel("counterfactual").target.value = "no such class"  # typed in the picker
    assert "no class 'no such class'" in w.error


def test_one_vs_one_baseline_in_the_widget(panel):
    w, _ = panel
    w.baseline = "counterfactual:9"
    w.wait(TIMEOUT)
    if not w.counterfactual.success:  # no x′ within the search's budget: the widget says why
        assert "no counterfactual baseline for class 9" in w.error and "max_steps" in w.error
        return
    e = w.explanation
    assert w.error == "" and e.baseline == "counterfactual:9" and e.completeness_error < 0.02
    controls = w.panels["controls"]
    assert controls.baseline.value == "counterfactual"
    assert controls.why_not.value == "9 (9)" and controls.why_not.layout.display is None
    controls.why_not.value = "3 (3)"  # "why not 3?" typed in the class picker
    assert w.baseline == "counterfactual:3"
    assert len(controls.baseline.options) == 6  # not one entry per class


def test_the_panel_and_the_baseline_share_one_search(panel):
    w, _ = panel  # the panel searched class 9 (prototype: reference images were given)
    w.baseline = "counterfactual:9"  # the same search, as a baseline
    w.wait(TIMEOUT)
    searches = [key for key in w.state.adapter.counterfactuals if key[3] == 9]
    assert len(searches) == 1
    if not w.counterfactual.success:  # no x′ within the search's budget: the widget says why
        assert "no counterfactual baseline for class 9" in w.error and "max_steps" in w.error
        return
    assert w.error == ""
    np.testing.assert_array_equal(w.explanation.baseline_image, w.counterfactual.image)
