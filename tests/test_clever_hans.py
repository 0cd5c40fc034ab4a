"""Clever-Hans debugging: shortcuts, relevance mass, faithfulness, sanity checks, SpRAy."""

import numpy as np
import pytest
import torch

from tests.conftest import checksum
from xai_widgets import CompareWidget, DatasetWidget, InputError, explain
from xai_widgets.batch import explain_many
from xai_widgets.datasets import plant_shortcut
from xai_widgets.metrics import deletion_curve, insertion_curve, pointing_game, relevance_mass
from xai_widgets.sanity import sanity_check
from xai_widgets.spray import purity, spray


@pytest.mark.parametrize("kind", ["tag", "background", "stripe"])
def test_plant_shortcut(images, kind):
    labels = torch.arange(40) % 10
    before = images[:40].clone()
    tagged, masks = plant_shortcut(images[:40], labels, kind=kind, fraction=0.5, classes=[3, 7])
    carriers = masks.flatten(1).any(1)
    assert int(carriers.sum()) == 4  # half of the eight 3s and 7s
    assert set(labels[carriers].tolist()) <= {3, 7}
    assert torch.equal(images[:40], before)  # inputs untouched
    assert not torch.equal(tagged[carriers], before[carriers])
    assert torch.equal(tagged[~carriers], before[~carriers])
    with pytest.raises(InputError, match="unknown shortcut kind"):
        plant_shortcut(images[:4], labels[:4], kind="logo")


def test_the_shipped_models_behave_as_the_readme_says(hans):
    clean = hans.masks.flatten(1).any(1) == False  # noqa: E712
    with torch.no_grad():
        for model in (hans.model, hans.twin):
            accuracy = (model(hans.images[clean]).argmax(1) == hans.labels[clean]).float().mean()
            assert accuracy > 0.95
        others = hans.labels != 7
        moved, _ = plant_shortcut(hans.images[others], hans.labels[others], fraction=1.0,
                                  classes=list(range(10)))
        fooled = (hans.model(moved).argmax(1) == 7).float().mean()
        twin_fooled = (hans.twin(moved).argmax(1) == 7).float().mean()
    assert fooled > 0.1 and twin_fooled < 0.02


def test_relevance_mass_separates_the_models(hans):
    tagged = np.flatnonzero(hans.masks.flatten(1).any(1).numpy())[:40]
    mass = {name: np.mean([relevance_mass(explain(model, hans.images[i], targets=7).map(7),
                                          hans.masks[i]) for i in tagged])
            for name, model in (("hans", hans.model), ("twin", hans.twin))}
    assert mass["hans"] > 5 * mass["twin"] and mass["hans"] > 0.2


def test_relevance_mass_and_pointing_game_basics():
    heat = np.zeros((1, 4, 4))
    heat[0, 0, 0], heat[0, 3, 3] = 2.0, -5.0
    region = np.zeros((4, 4), bool)
    region[0, 0] = True
    assert relevance_mass(heat, region) == 1.0 and pointing_game(heat, region)
    assert relevance_mass(np.zeros((4, 4)), region) == 0.0
    with pytest.raises(InputError, match="image's size"):
        relevance_mass(heat, np.zeros((3, 3), bool))


def test_deletion_beats_a_random_order(model, images):
    wins = []
    for x in images[:10]:
        e = explain(model, x)
        curve = deletion_curve(model, x, e.map(e.prediction), e.prediction)
        wins.append(curve.auc < curve.random_auc)
        assert curve.probabilities[0] == pytest.approx(e.probabilities[e.prediction], rel=1e-5)
        assert len(curve.fractions) == len(curve.probabilities) == 29
    assert all(wins)
    e = explain(model, images[0])
    curve = insertion_curve(model, images[0], e.map(e.prediction), e.prediction)
    assert curve.auc > curve.random_auc


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "input_x_gradient",
                                    "grad_cam", "deeplift"])
def test_cascading_randomisation_decorrelates_and_leaves_the_model_alone(model, image, method):
    before = checksum(model)
    check = sanity_check(model, image, method=method)
    assert check.layers == ["original", "fc2", "fc1", "conv2", "conv1"]
    assert check.maps.shape == (5, 28, 28)
    assert check.rank_correlation[0] == pytest.approx(1.0) and check.ssim[0] == pytest.approx(1.0)
    assert check.ssim[-1] < 0.6 and check.rank_correlation[-1] < 0.6
    assert checksum(model) == before


def test_guided_backprop_fails_the_sanity_check_more_than_gradients(model, image):
    guided = sanity_check(model, image, method="guided_backprop").ssim[-1]
    integrated = sanity_check(model, image, method="integrated_gradients").ssim[-1]
    assert guided > integrated  # the known failure of guided backprop (Adebayo et al.)


def test_explain_many_equals_explain_per_image(model, images):
    maps = explain_many(model, images[:6], targets=[1, 2, 3, 4, 5, 6], method="saliency")
    for i, target in enumerate([1, 2, 3, 4, 5, 6]):
        np.testing.assert_allclose(maps[i], explain(model, images[i], method="saliency",
                                                    targets=target).map(target), rtol=1e-4,
                                   atol=1e-6)
    ig = explain_many(model, images[:3], targets=7, n_steps=32)
    for i in range(3):
        single = explain(model, images[i], targets=7, n_steps=32).map(7)
        assert np.abs(ig[i] - single).max() <= 1e-4 * np.abs(single).max()
    with pytest.raises(InputError, match="not batched"):
        explain_many(model, images[:3], method="lime")


def test_spray_finds_the_tagged_sevens(hans, images, demo):
    sevens = demo[2] == 7
    mixed, masks = plant_shortcut(images[sevens], demo[2][sevens], fraction=0.5, classes=[7],
                                  seed=1)
    maps = explain_many(hans.model, mixed, targets=7)
    result = spray(maps)
    _, best = purity(result.clusters, masks.flatten(1).any(1).numpy())
    assert best >= 0.9


def test_dataset_widget(hans):
    sevens = hans.labels == 7
    dw = DatasetWidget(hans.model, hans.images[sevens], labels=hans.labels[sevens], target=7,
                       n_clusters=3).wait(120)
    n = int(sevens.sum())
    assert dw.clusters.shape == (n,) and set(dw.clusters) == {0, 1, 2}
    assert dw.embedding.shape == (n, 2) and dw.explanations.shape == (n, 28, 28)
    assert len(dw._tiles.groups) == 3 and dw.error == ""
    dw._tiles.selected = 5  # a click on a thumbnail
    opened = dw._detail.children[1]
    assert dw.selected == 5 and opened.wait(60).explanation is not None
    np.testing.assert_allclose(opened.explanation.image, hans.images[sevens][5].numpy())
    dw.close()


def test_compare_widget(model, image):
    cw = CompareWidget(model, image, methods=["saliency", "integrated_gradients", "grad_cam"],
                       with_sanity=True, with_faithfulness=True, shared_scale=True).wait(120)
    assert list(cw.explanations) == ["saliency", "integrated_gradients", "grad_cam"]
    assert set(cw.sanity) == set(cw.deletion_auc) == set(cw.explanations)
    for name in ("saliency", "integrated_gradients"):  # Grad-CAM's 4×4 map is too coarse here
        auc, random_auc = cw.deletion_auc[name]
        assert auc < random_auc
    assert len(set(cw._tiles.vmax)) == 1  # the shared scale
    assert "deletion AUC" in cw._tiles.captions[0] and "ms" in cw._tiles.captions[0]


def test_the_sanity_and_faithfulness_tab(model, image):
    from xai_widgets import ExplainWidget

    before = checksum(model)
    w = ExplainWidget(model, image).wait(60)
    assert w.faithfulness == {} and w.sanity is None  # computed only while the tab is open
    w.tabs.selected_index = 2  # the front end's tab click
    assert w.tab == "diagnostics"
    w.wait(60)
    deletion = w.faithfulness["deletion"]
    expected = deletion_curve(model, image, w.explanation.map(w.target), w.target)
    np.testing.assert_allclose(deletion.probabilities, expected.probabilities)
    panel = w.panel("diagnostics")
    assert "deletion AUC" in panel.note.value
    assert w.sanity.layers == ["original", "fc2", "fc1", "conv2", "conv1"]
    w.sanity_step = 4
    assert "conv1" in panel.view.title and panel.slider.value == 4
    panel.slider.value = 1  # the front end's slider
    assert w.sanity_step == 1 and "fc2" in panel.view.title
    w.close()
    assert checksum(model) == before
