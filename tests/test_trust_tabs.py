"""The influence and robustness tabs of ExplainWidget: what they show follows the view, the
numbers are the backends', long work shows progress and stops, the user's model is untouched."""

import time

import numpy as np
import pytest
import torch

from tests.conftest import assert_untouched, checksum
from tests.test_widget import TIMEOUT
from xai_widgets import ExplainWidget, InputError, robustness
from xai_widgets.adapter import ModelAdapter
from xai_widgets.datasets import plant_shortcut
from xai_widgets.influence import Influencer
from xai_widgets.zoo import load_clever_hans_training


@pytest.fixture(scope="module")
def training():
    images, labels, tagged, _ = load_clever_hans_training()
    return images, labels, tagged


@pytest.fixture(scope="module")
def tagged_three(hans):
    """A held-out 3 with the tag, which the shortcut model calls 7."""
    threes = hans.images[hans.labels == 3][:20]
    tagged, _ = plant_shortcut(threes, torch.full((20,), 3), fraction=1.0, classes=[3])
    with torch.no_grad():
        called_seven = hans.model(tagged).argmax(1) == 7
    return tagged[called_seven][0]


def test_influence_tab_shows_the_tagged_training_sevens(hans, training, tagged_three):
    images, labels, tagged = training
    model = hans.model.train()
    before = checksum(model)
    w = ExplainWidget(model, tagged_three, classes=hans.classes, train=(images, labels))
    try:
        assert w.tab == "" and w.influence is None  # nothing computed while the tab is closed
        w.tab = "influence"
        w.wait(TIMEOUT)
        result = w.influence
        assert result.target == w.target == 7
        direct = Influencer(model, images, labels).query(tagged_three, k=8, target=7)
        assert torch.equal(result.proponents, direct.proponents)
        assert torch.equal(result.opponents, direct.opponents)
        assert tagged[result.proponents].float().mean() >= 0.75  # the shortcut's cause
        panel = w.panel("influence")
        assert len(panel.tiles.captions) == 16
        assert panel.tiles.captions[0] == f"7 · {1.0:+.2f}"
        assert [g["title"].split()[0] for g in panel.tiles.groups] == ["proponents", "opponents"]
        assert "7 of the 8" in panel.note.value or "8 of the 8" in panel.note.value
        assert "influence function (exact Hessian" in panel.note.value  # auto: naive here
        w.target = 3  # another target: another query, no new preparation
        prepared = w.state.influencers.copy()
        w.wait(TIMEOUT)
        assert w.influence.target == 3 and w.state.influencers == prepared
        assert (labels[w.influence.proponents] == 3).all()
        panel.tiles.selected = 2  # a click opens the training image in its own view
        index = int(w.influence.proponents[2])
        assert panel.explainer is not None
        torch.testing.assert_close(panel.explainer.state.image[0], images[index])
        assert f"#{index}" in panel.detail.children[0].value
        assert f"training image #{index}" in panel.opened.value  # said next to the thumbnails
        panel.explainer.wait(TIMEOUT)
        w.close()
        assert_untouched(model, before)
    finally:
        w.close()
        model.eval()  # a session fixture: as the other tests expect it


def test_influence_tab_without_training_data_says_how(model, image):
    w = ExplainWidget(model, image)
    try:
        w.tab = "influence"
        w.wait(TIMEOUT)
        note = w.panel("influence").note.value
        assert "train=(train_images, train_labels)" in note and w.influence is None
    finally:
        w.close()


@pytest.mark.parametrize("train, problem", [
    ((torch.rand(10, 1, 28, 28), None), "no labels"),
    ((torch.rand(10, 1, 28, 28), torch.zeros(9, dtype=torch.long)), "10 integer class"),
    ((torch.rand(10, 1, 28, 28), torch.rand(10)), "10 integer class"),
    (torch.rand(10, 1, 28, 28), "a pair"),
    ((torch.rand(10, 3, 28, 28), torch.zeros(10, dtype=torch.long)), "channel"),
])
def test_bad_training_sets_are_refused_with_the_fix(model, image, train, problem):
    with pytest.raises(InputError, match=problem):
        ExplainWidget(model, image, train=train)


@pytest.mark.parametrize("checkpoints, problem", [
    ([{"fc9.weight": torch.zeros(1)}], "checkpoint 0 does not fit the model: missing conv1"),
    ("weights.pt", "non-empty list"),
    (["/nowhere/weights.pt"], "no file"),
    ([torch.zeros(3)], "is a Tensor"),
])
def test_checkpoints_that_do_not_fit_are_refused_with_the_fix(model, image, training,
                                                             checkpoints, problem):
    images, labels, _ = training
    with pytest.raises(InputError, match=problem):
        ExplainWidget(model, image, train=(images[:50], labels[:50]), checkpoints=checkpoints)


def test_checkpoints_weigh_the_influence(hans, training, tagged_three, tmp_path):
    images, labels, _ = training
    twin_checkpoints = load_clever_hans_training(twin=True)[3]
    torch.save(twin_checkpoints[0], tmp_path / "epoch5.pt")
    checkpoints = [tmp_path / "epoch5.pt", twin_checkpoints[-1]]
    w = ExplainWidget(hans.twin, tagged_three, train=(images[:300], labels[:300]),
                      checkpoints=checkpoints)
    try:
        w.tab = "influence"
        w.wait(TIMEOUT)
        direct = Influencer(hans.twin, images[:300], labels[:300],
                            twin_checkpoints[:1] + twin_checkpoints[-1:])
        torch.testing.assert_close(w.influence.scores, direct.scores(tagged_three, w.target)[0])
        assert "TracIn over 2 checkpoints" in w.panel("influence").note.value
    finally:
        w.close()


def test_robustness_tab_measures_the_view_and_attacks_on_request(model, image):
    model.train()
    before = checksum(model)
    w = ExplainWidget(model, image, method="saliency")
    try:
        w.tab = "robustness"
        w.wait(TIMEOUT)
        expected = robustness.sensitivity(model, image, method="saliency", epsilon=8 / 255,
                                          target=w.target)
        assert w.sensitivity.value == pytest.approx(expected.value, rel=1e-5)
        panel = w.panel("robustness")
        assert f"{expected.value:.3f}" in panel.sensitivity_note.value
        w.epsilon = 0.05  # the slider's value: measured again, for the new ball
        w.wait(TIMEOUT)
        assert w.sensitivity.epsilon == 0.05 and panel.epsilon.value == 0.05
        assert w.attack is None and panel.after.layout.display == "none"
        panel.steps.value = 30
        panel.run.click()
        w.wait(TIMEOUT)
        a = w.attack
        direct = robustness.attack_map(model, image, method="saliency", epsilon=0.05,
                                       top_k=50, steps=30)
        assert a.topk_intersection == direct.topk_intersection and a.kept_class
        np.testing.assert_allclose(a.image, direct.image, atol=1e-6)
        assert f"{a.topk_intersection:.0%}" in panel.note.value
        assert panel.after.layout.display is None and w.tab_progress == -1.0
        w.attack_method = "integrated_gradients"
        assert panel.method.value == "integrated_gradients"
        w.method = "saliency"  # the attack follows the map on screen when it can
        w.params = {"smoothing": "smoothgrad"}
        assert w.attack_method == "smoothgrad"
        w.method = "occlusion"  # it cannot: the last choice stays, and the control says why
        w.wait(TIMEOUT)
        assert w.attack_method == "smoothgrad" and "max-sensitivity only" in panel.method.tooltip
        w.close()
        assert_untouched(model, before)
    finally:
        w.close()
        model.eval()  # a session fixture: as the other tests expect it


def test_attack_shows_progress_and_stops_on_request(model, image):
    w = ExplainWidget(model, image)
    seen = []
    w.state.observe(lambda change: seen.append(change["new"]), "tab_progress")
    try:
        w.tab = "robustness"
        w.wait(TIMEOUT)
        w.attack_method = "integrated_gradients"
        w.run_attack(steps=1000)
        deadline = time.monotonic() + TIMEOUT
        while not any(0 < p < 1 for p in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        w.panel("robustness").stop.click()
        w.wait(TIMEOUT)
        assert any(0 < p < 1 for p in seen)  # the bar moved
        assert w.attack is None and w.tab_progress == -1.0  # stopped: nothing half-done shown
        w.attack_method = "saliency"
        w.run_attack(steps=5)
        w.wait(TIMEOUT)
        finished = w.attack
        panel = w.panel("robustness")
        w.run_attack(steps=1000)  # a second one, stopped: the first stays, and the note says so
        while w.tab_progress <= 0 and time.monotonic() < deadline + TIMEOUT:
            time.sleep(0.02)
        panel.stop.click()
        w.wait(TIMEOUT)
        assert w.attack is finished and "stopped at" in panel.note.value
        assert "the last finished attack is shown" in panel.note.value
    finally:
        w.close()


def _normalise(x):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize("arch", ["resnet18", "hf_vit"])
def test_both_tabs_on_real_architectures(arch):
    """torchvision's ResNet-18 (1000 classes, 224 px, preprocess=) and a Hugging Face ViT
    (its output a ModelOutput): both tabs work through the view's adapter."""
    from tests.real_models import hf_vit, rgb_image, torchvision_model

    if arch == "resnet18":
        model, size, options = torchvision_model("resnet18", 224), 224, {"preprocess": _normalise}
    else:
        model, size, options = hf_vit(32), 32, {}
    x = rgb_image(size)
    train = torch.stack([x, x.flip(-1), x.flip(-2), 0.8 * x, 1 - x, x.roll(size // 4, -1)])
    train_labels = torch.tensor([1, 1, 2, 2, 3, 3])
    before = checksum(model)
    w = ExplainWidget(model, x, method="saliency", train=(train, train_labels), **options)
    try:
        w.tab = "influence"
        w.wait(TIMEOUT)
        assert w.error == "" and w.influence.target == w.target
        logits = ModelAdapter(model, preprocess=options.get("preprocess")).forward_module
        direct = Influencer(logits, train, train_labels).scores(x, w.target)[0]
        torch.testing.assert_close(w.influence.scores, direct)
        assert len(w.panel("influence").tiles.captions) == 12
        w.tab = "robustness"
        w.wait(TIMEOUT)
        expected = robustness.sensitivity(model, x, method="saliency", epsilon=8 / 255,
                                          target=w.target, **options)
        assert w.error == "" and w.sensitivity.value == pytest.approx(expected.value, rel=1e-4)
        w.run_attack(steps=3)
        w.wait(TIMEOUT)
        assert w.attack is not None and w.attack.map_after.shape == (size, size)
        assert w.attack.linf <= 8 / 255 + 1e-6
    finally:
        w.close()
    assert checksum(model) == before and not model.training
