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


@pytest.fixture
def counted_actor(monkeypatch):
    """Every pass of a CFRL actor, with the number of images in it."""
    from xai_widgets.methods import cfrl

    passes, propose = [], cfrl.CFRLActor.propose

    def counted(self, x, *args, **kwargs):
        passes.append(len(x))
        return propose(self, x, *args, **kwargs)

    monkeypatch.setattr(cfrl.CFRLActor, "propose", counted)
    return passes


def test_cfrl_strip_is_one_actor_pass_and_every_class_is_then_instant(model, images,
                                                                      counted_actor):
    w = ExplainWidget(model, images[0]).wait(TIMEOUT)  # the actor's own model, unwrapped
    model_calls = []
    hook = w.state.adapter.forward_module.register_forward_pre_hook(
        lambda *_: model_calls.append(1))
    try:
        w.counterfactual_method = "cfrl"
        w.wait(TIMEOUT)
        assert counted_actor == [] and w.counterfactual_strip is None  # the tab is closed
        w.tab = "counterfactual"
        w.wait(TIMEOUT)
        others = [c for c in range(10) if c != w.state.prediction]
        assert counted_actor == [9] and sorted(w.counterfactual_strip) == others
        panel = w.panel("counterfactual")
        assert len(panel.strip.captions) == 9 and panel.strip.layout.display is None
        assert sum(cf.success for cf in w.counterfactual_strip.values()) >= 8
        calls = len(model_calls)
        for position, target in enumerate(others[:4]):
            panel.strip.selected = position  # a click on the strip picks the class
            w.wait(TIMEOUT)
            assert w.counterfactual_target == target and w.counterfactual.method == "cfrl"
            assert w.counterfactual is w.counterfactual_strip[target]
            for morph in (0.3, 1.0):
                w.morph = morph
                cf = w.counterfactual
                np.testing.assert_array_equal(w.probabilities,
                                              cf.path_probabilities[cf.step(morph)])
        assert counted_actor == [9] and len(model_calls) == calls  # no actor pass, no model call
        single = counterfactual(model, images[0], target=others[0], method="cfrl")
        np.testing.assert_allclose(w.counterfactual_strip[others[0]].image, single.image,
                                   atol=1e-5)
        w.counterfactual_method = "wachter"  # a search: no strip
        w.wait(TIMEOUT)
        assert panel.strip.layout.display == "none"
    finally:
        hook.remove()
        w.close()


def test_cfrl_on_another_model_says_how_to_train_one(images):
    from xai_widgets.zoo import load_clever_hans

    w = ExplainWidget(load_clever_hans().twin, images[0]).wait(TIMEOUT)
    try:
        w.tab = "counterfactual"
        w.counterfactual_method = "cfrl"
        w.counterfactual_target = 3
        w.wait(TIMEOUT)
        assert "train_cfrl" in w.error and w.counterfactual is None
        assert "ExplainWidget(model, x, actor=actor)" in w.error
        panel = w.panel("counterfactual")
        assert "train_cfrl" in panel.view.caption
        assert "finding" not in panel.strip_note.value  # nothing is on its way any more
    finally:
        w.close()


def test_cfrl_with_an_actor_trained_for_the_model(images):
    from xai_widgets.methods.cfrl import train_cfrl
    from xai_widgets.zoo import load_clever_hans

    twin = load_clever_hans().twin
    actor = train_cfrl(twin, images[200:456], steps=3, batch_size=16)
    w = ExplainWidget(twin, images[0], actor=actor).wait(TIMEOUT)
    try:
        w.tab = "counterfactual"
        w.counterfactual_method = "cfrl"
        w.counterfactual_target = 3
        w.wait(TIMEOUT)
        assert w.error == "" and len(w.counterfactual_strip) == 9
        expected = counterfactual(twin, images[0], target=3, method="cfrl", actor=actor)
        np.testing.assert_allclose(w.counterfactual.image, expected.image, atol=1e-6)
    finally:
        w.close()
