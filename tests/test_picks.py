"""Global picks (SP-LIME): the greedy pick covers more importance than random picks, it
reaches every SpRAy cluster of the Clever-Hans 7s, precomputed maps are reused, an RGB
model, clear errors, the user's model left as it was."""

import numpy as np
import pytest
import torch

from tests.conftest import assert_untouched, checksum
from tests.real_models import rgb_image, torchvision_model
from xai_widgets import InputError
from xai_widgets.batch import explain_many
from xai_widgets.datasets import plant_shortcut
from xai_widgets.global_views import pick
from xai_widgets.spray import spray


@pytest.fixture(scope="module")
def digit_maps(demo):
    """Integrated-gradients maps of 300 held-out digits, each for its predicted class."""
    return explain_many(demo[0], demo[1][:300], method="integrated_gradients")


def test_the_pick_covers_more_than_random_picks(digit_maps):
    picks = pick(None, None, budget=8, maps=digit_maps)
    ratios = [picks.coverage / picks.random_coverage(seed) for seed in range(10)]
    assert min(ratios) >= 1.0 and np.median(ratios) > 1.1
    assert picks.coverage == pytest.approx(picks.coverage_of(picks.indices))
    assert picks.total == pytest.approx(picks.importance.sum()) and 0 < picks.share <= 1


def test_the_greedy_pick_follows_sp_lime(digit_maps):
    picks = pick(None, None, budget=8, maps=digit_maps, grid=7, top=5)
    weights = picks.weights
    assert weights.shape == (300, 49) and ((weights > 0).sum(1) == 5).all()
    assert np.allclose(picks.importance.ravel(), np.sqrt(weights.sum(0)))
    assert len(set(picks.indices)) == 8
    assert all(a >= b for a, b in zip(picks.gains, picks.gains[1:], strict=False))  # submodular
    assert sum(picks.gains) == pytest.approx(picks.coverage)
    first = int(np.argmax((weights > 0) @ picks.importance.ravel()))
    assert picks.indices[0] == first  # the most important single explanation comes first


def test_precomputed_maps_give_the_same_pick(demo):
    images = demo[1][:40]
    maps = explain_many(demo[0], images, method="saliency")
    computed = pick(demo[0], images, budget=5, method="saliency")
    given = pick(demo[0], images, budget=5, maps=maps)
    assert computed.indices == given.indices and np.array_equal(computed.maps, given.maps)


def test_the_pick_reaches_every_spray_cluster_of_the_clever_hans_sevens(hans, clean):
    images, labels = clean
    tagged, masks = plant_shortcut(images, labels, fraction=0.5, classes=[7], seed=1)
    sevens = tagged[labels == 7]
    picks = pick(hans.model, sevens, budget=8)
    clusters = spray(picks.maps).clusters
    assert len(np.unique(clusters)) >= 3
    assert set(clusters[picks.indices]) == set(clusters)
    tags = masks[labels == 7].flatten(1).any(1).numpy()
    assert tags[picks.indices].any() and not tags[picks.indices].all()  # both strategies


def test_an_rgb_model():
    model = torchvision_model("resnet18", 64)
    photo = rgb_image(64)
    images = torch.stack([photo.roll(4 * i, -1) * (0.6 + 0.04 * i) for i in range(10)])
    picks = pick(model, images, budget=3, n_steps=4, grid=8, top=4)
    assert picks.maps.shape == (10, 64, 64) and len(picks.indices) == 3
    assert picks.importance.shape == (8, 8)


@pytest.mark.parametrize("options, message", [
    (dict(budget=0), "budget must be an int from 1 to the number of images"),
    (dict(budget=41), r"budget must be an int from 1 to the number of images \(40\)"),
    (dict(budget=2.5), "budget must be an int"),
    (dict(grid=1), "does not divide"),
    (dict(grid=15), "does not divide"),
    (dict(top=0), "top must be an int from 1 to 196"),
    (dict(method="lime"), "not batched over images"),
])
def test_clear_errors(demo, options, message):
    with pytest.raises(InputError, match=message):
        pick(demo[0], demo[1][:40], **({"method": "saliency"} | options))


def test_bad_maps_and_images(demo):
    model, images = demo[0], demo[1]
    with pytest.raises(InputError, match="at least 10"):
        pick(model, images[:6], budget=2, method="saliency")
    with pytest.raises(InputError, match="must be a batch of images"):
        pick(model, torch.rand(20, 28), budget=2)
    with pytest.raises(InputError, match="maps must be"):
        pick(None, None, maps=np.zeros((20, 28)))
    with pytest.raises(InputError, match="12 maps for 20 images"):
        pick(model, images[:20], maps=np.ones((12, 28, 28)))
    with pytest.raises(InputError, match="NaN"):
        pick(None, None, maps=np.full((20, 28, 28), np.nan))
    with pytest.raises(InputError, match="pass a model and images"):
        pick(model, None)


def test_the_users_model_is_left_unchanged(demo):
    model = demo[0]
    model.train()  # an unusual mode that must survive
    before = checksum(model)
    try:
        pick(model, demo[1][:30], budget=3, n_steps=8)
        assert_untouched(model, before)
    finally:
        model.eval()
