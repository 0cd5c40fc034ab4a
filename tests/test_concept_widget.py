"""The DatasetWidget's concept and fix panels, driven as a user would, without a browser:
cluster → make concept → TCAV → fix (projection slider, fine-tuning) → accept."""

import numpy as np
import pytest
import torch
import traitlets

from tests.conftest import checksum
from xai_widgets import CompareWidget, DatasetWidget, ExplainWidget
from xai_widgets.datasets import plant_shortcut
from xai_widgets.spray import purity

TIMEOUT = 180


@pytest.fixture(scope="module")
def made(hans, clean):
    """A DatasetWidget over held-out 7s, half of them tagged, with the tagged cluster's
    concept made (the notebook's walk-through); the model's checksum before it all."""
    images, labels = clean
    sevens = labels == 7
    mixed, masks = plant_shortcut(images[sevens], labels[sevens], fraction=0.5, classes=[7],
                                  seed=1)
    tagged = masks.flatten(1).any(1).numpy()
    before = checksum(hans.model)
    dw = DatasetWidget(hans.model, mixed, labels=np.where(tagged, "7 + tag", "7"), target=7,
                       holdout=(images, labels)).wait(TIMEOUT)
    cluster, share = purity(dw.clusters, tagged)
    assert share > 0.9
    concept = dw.panel("concept")
    assert dw.panel("fix").layout.display == "none"  # no concept yet, no fix
    assert any("(most: 7 + tag, " in label for label, _ in concept.picker.options)
    concept.picker.value = (cluster,)  # the front end's list
    concept.make.click()
    concept.wait(TIMEOUT)
    yield dw, before
    dw.close()


def accept_at(dw, strength: float):
    """The fix panel with the projection at ``strength`` shown and accepted."""
    fix = dw.panel("fix")
    fix.slider.value = strength
    fix.wait(TIMEOUT)
    fix.accept.click()
    return fix


def test_the_tagged_cluster_makes_a_significant_concept(made, hans):
    dw, _ = made
    panel = dw.panel("concept")
    assert dw.concept is not None and dw.concept.layer == "conv2"
    result = dw.tcav_result
    assert result.target == 7 and result.significant and result.score > 0.9
    mean, spread = result.random_spread
    shown = panel.result.value
    assert f"TCAV score {result.score:.2f} for class 7" in shown
    assert f"random directions {mean:.2f} ± {spread:.2f}" in shown
    assert "the model uses this concept" in shown and "<svg" in shown
    assert f"held-out CAV accuracy {dw.concept.accuracy:.0%}" in shown
    assert "xai-error" not in panel.note.value
    assert dw.panel("fix").layout.display != "none"
    with pytest.raises(traitlets.TraitError):
        dw.concept = None  # read-only


def test_the_strength_slider_updates_maps_predictions_and_report(made):
    dw, _ = made
    fix = dw.panel("fix")
    flip = {}
    for strength in (0.0, 1.0, 0.5):
        fix.slider.value = strength  # the front end's slider
        fix.wait(TIMEOUT)
        assert f"strength {strength:.2f}" in fix.note.value and "ms" in fix.note.value
        flip[strength] = fix.report.values["after"]["flip rate"]
        assert f"{100 * flip[strength]:.1f} %" in fix.table.value  # the table shown
        assert len(fix.tiles.captions) == 12 and len(fix.tiles.groups) == 2
        assert f"strength {strength:.2f}" in fix.tiles.groups[1]["title"]
    before = fix.report.values["before"]["flip rate"]
    assert flip[0.0] == pytest.approx(before)  # strength 0 is the model itself
    assert flip[1.0] < flip[0.0] / 2 and flip[1.0] <= flip[0.5] <= flip[0.0]
    assert all(c.startswith("#") and "→" in c for c in fix.tiles.captions[6:])
    assert dw.error == "" and "xai-error" not in fix.note.value


def test_rapid_changes_end_on_the_last(made):
    dw, _ = made
    fix = dw.panel("fix")
    for strength in np.linspace(0, 1, 11):
        fix.slider.value = float(strength)
    fix.slider.value = 0.75
    fix.wait(TIMEOUT)
    assert "strength 0.75" in fix.note.value and "strength 0.75" in fix.tiles.groups[1]["title"]


def test_accepting_gives_the_corrected_model_and_leaves_the_users_alone(made, hans, clean):
    dw, before = made
    fix = accept_at(dw, 1.0)
    fixed = dw.fixed_model
    assert isinstance(fixed, torch.nn.Module) and fixed is not hans.model
    images, labels = clean
    others = dw.concept.insert(images[labels != 7][:300])
    with torch.no_grad():
        original = hans.model(others).argmax(1)
        corrected = fixed(others).argmax(1)
    assert (original == 7).float().mean() > 0.1
    assert (corrected == 7).float().mean() < (original == 7).float().mean() / 2
    fix.slider.value = 0.0  # moving on does not change the accepted copy
    fix.wait(TIMEOUT)
    with torch.no_grad():
        assert torch.equal(fixed(others).argmax(1), corrected)
    assert checksum(hans.model) == before
    assert not hans.model.training
    assert all(p.grad is None for p in hans.model.parameters())
    with pytest.raises(traitlets.TraitError):
        dw.fixed_model = None


def test_the_full_report_includes_tcav(made):
    dw, _ = made
    fix = dw.panel("fix")
    fix.slider.value = 1.0
    fix.wait(TIMEOUT)
    fix.full.click()
    fix.wait(TIMEOUT)
    assert fix.report.values["before"]["TCAV score"] is not None
    assert fix.report.values["after"]["TCAV score"] is not None
    assert "full report" in fix.full_table.value and "TCAV score" in fix.full_table.value


def test_fine_tuning_shows_progress_then_the_report(made, hans):
    dw, before = made
    fix = dw.panel("fix")
    fix.method.value = "a_clarc"  # the front end's dropdown
    assert fix.slider.layout.display == "none" and fix.training.layout.display != "none"
    seen = []
    fix.progress.observe(lambda change: seen.append(change["new"]), "value")
    fix.tune.click()
    assert fix.tune.disabled and not fix.cancel.disabled
    fix.wait(TIMEOUT)
    assert seen and seen[-1] == pytest.approx(1.0)
    assert "fine-tuned (A-ClArC)" in fix.note.value and not fix.tune.disabled
    assert "A-ClArC" in fix.tiles.groups[1]["title"]
    values = fix.report.values
    assert values["after"]["flip rate"] < values["before"]["flip rate"]
    fix.accept.click()
    assert dw.fixed_model is not None and "A-ClArC" in fix.note.value
    assert checksum(hans.model) == before
    fix.method.value = "project"
    fix.wait(TIMEOUT)


def test_cancelling_fine_tuning(made):
    dw, _ = made
    fix = dw.panel("fix")
    fix.method.value = "rrr"  # the projection's view goes: nothing to accept by mistake
    assert fix.report is None and fix.tiles.groups == [] and "fine-tune a copy" in fix.note.value
    fix.tune.click()
    fix.cancel.click()
    fix.wait(TIMEOUT)
    assert "cancelled" in fix.note.value and not fix.tune.disabled
    assert fix.report is None and fix.tiles.groups == []  # nothing applied
    accepted = dw.fixed_model
    fix.accept.click()
    assert "nothing to accept yet" in fix.note.value and dw.fixed_model is accepted
    fix.method.value = "project"
    fix.wait(TIMEOUT)


def test_a_cluster_too_small_for_a_concept_shows_why(model, images):
    dw = DatasetWidget(model, images[:12], n_clusters=3).wait(TIMEOUT)
    panel = dw.panel("concept")
    assert len(panel.picker.options) == 3 and "most predicted as" in panel.picker.options[0][0]
    panel.make.click()
    panel.wait(TIMEOUT)
    assert "at least 5" in panel.note.value and "xai-error" in panel.note.value
    assert "Traceback" not in panel.note.value
    assert dw.concept is None and dw.panel("fix").layout.display == "none"
    assert not panel.make.disabled
    dw.close()


def test_explain_and_compare_widgets_take_the_corrected_model(made, hans, clean):
    dw, _ = made
    accept_at(dw, 1.0)
    image = dw.concept.insert(clean[0][:1])[0]  # a tagged digit
    before = ExplainWidget(hans.model, image, target=7)
    after = ExplainWidget(dw.fixed_model, image, target=7)
    for w in (before.wait(TIMEOUT), after.wait(TIMEOUT)):
        assert w.error == "" and w.explanation is not None
    assert not np.allclose(before.explanation.map(7), after.explanation.map(7))
    cw = CompareWidget(dw.fixed_model, image, target=7).wait(TIMEOUT)
    assert cw.error == "" and {"integrated_gradients", "saliency", "grad_cam"} <= set(
        cw.explanations)
    assert "lrp skipped" in cw.status  # the edited layer has no LRP rule; the rest is shown
    for w in (before, after, cw):
        w.close()


def test_opening_an_image_offers_its_cluster(made):
    dw, _ = made
    picker = dw.panel("concept").picker
    other = int(np.flatnonzero(~np.isin(dw.clusters, picker.value))[0])
    dw.selected = other  # a click on a thumbnail or a point
    assert picker.value == (dw.clusters[other],)
    assert dw.concept is not None  # the concept made stays until "make concept" again


def test_holdout_is_checked_where_it_enters(model, images, demo):
    from xai_widgets import InputError

    with pytest.raises(InputError, match="holdout"):
        DatasetWidget(model, images[:20], holdout=(images[:10], demo[2][:5]))
    with pytest.raises(InputError, match="pair"):
        DatasetWidget(model, images[:20], holdout=images[:10])
    with pytest.raises(InputError, match="no panel"):
        DatasetWidget(model, images[:20]).panel("fix")


def test_several_clusters_make_one_concept_and_none_asks_for_one(made, clean):
    """SpRAy may split the tagged 7s over two clusters: choosing all that show the tag gives
    the tag's exact pixels. (Last in the file: it replaces the shared widget's concept.)"""
    dw, _ = made
    panel = dw.panel("concept")
    panel.picker.value = ()
    panel.make.click()
    assert "choose one or more clusters" in panel.note.value
    images, labels = clean
    _, masks = plant_shortcut(images[labels == 7], labels[labels == 7], fraction=0.5,
                              classes=[7], seed=1)
    tagged = masks.flatten(1).any(1).numpy()
    chosen = tuple(int(c) for c in np.unique(dw.clusters) if tagged[dw.clusters == c].mean() > 0.5)
    panel.picker.value = chosen
    panel.make.click()
    panel.wait(TIMEOUT)
    assert dw.concept.name.startswith("cluster")
    assert torch.equal(dw.concept.region, masks[tagged][0])
    assert dw.tcav_result.significant
