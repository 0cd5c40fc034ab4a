"""Concepts and TCAV: parity with captum's TCAV, the shortcut found on the Clever-Hans model
and not on its clean twin, clear errors, the user's model left as it was."""

import random
import tempfile
import warnings

import numpy as np
import pytest
import torch

from tests.conftest import assert_untouched, checksum
from tests.real_models import rgb_image, torchvision_model
from xai_widgets import InputError, concepts
from xai_widgets.tcav import concept_sets, p_value


@pytest.fixture(scope="module")
def tag(hans, clean):
    return tag_concept(hans.model, hans, clean[0])


def tag_concept(model, hans, clean_images, **options):
    """The tag pasted onto 60 clean digits (positives) against the same digits (negatives)."""
    carrier = hans.masks.flatten(1).any(1)
    return concepts.Concept.from_region(model, hans.images[carrier][0], hans.masks[carrier][0],
                                        clean_images[:60], **options)


def test_concept_from_region_finds_the_tag(tag, hans):
    assert tag.layer == "conv2"  # the last convolutional block of the course CNN
    assert tag.accuracy > 0.9
    carrier = hans.masks.flatten(1).any(1)
    assert torch.equal(tag.region, hans.masks[carrier][0])  # exactly the 4×4 corner
    assert torch.allclose(tag.cav.norm(), torch.tensor(1.0, dtype=tag.cav.dtype))
    pasted = tag.insert(torch.zeros(2, 1, 28, 28))
    assert float(pasted[:, tag.region].min()) == 1.0 and float(pasted[:, ~tag.region].max()) == 0


def test_from_images_of_two_groups_localises_the_tag_and_learns_it_paired(hans, tag):
    """Tagged 7s against other digits: the groups differ in digit shape too, which the
    paired direction (the patch pasted onto the negatives) leaves out."""
    sevens = hans.labels == 7
    carrier = hans.masks.flatten(1).any(1)
    positives, negatives = hans.images[sevens & carrier][:40], hans.images[~carrier][:80]
    concept = concepts.Concept.from_images(hans.model, positives, negatives)
    assert torch.equal(concept.region, hans.masks[carrier][0])
    assert torch.equal(concept.positives, concept.insert(negatives))
    as_given = concepts.Concept.from_images(hans.model, positives, negatives, paired=False)
    assert torch.equal(as_given.positives, positives)
    assert float(concept.cav @ tag.cav) > 0.95 > float(as_given.cav @ tag.cav) + 0.1
    with pytest.raises(InputError, match="paired=True needs"):
        faint = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 0.1
        concepts.Concept.from_images(hans.model, faint[:10], faint[10:], paired=True,
                                     min_accuracy=0)


def test_tcav_equals_captum_on_the_same_sets_layer_and_seed(hans, tag, clean):
    from captum.concept import TCAV
    from captum.concept import Concept as CaptumConcept
    from captum.concept._utils.classifier import DefaultClassifier

    sevens = clean[0][clean[1] == 7][:40]
    ours = concepts.tcav(hans.model, sevens, tag, target=7, runs=4, seed=3)

    sets = concept_sets(tag.positives, tag.negatives, runs=4, seed=3)
    pairs = [*sets.concept, *sets.random]
    experiments = [[CaptumConcept(2 * i, "p", [p]), CaptumConcept(2 * i + 1, "n", [n])]
                   for i, (p, n) in enumerate(pairs)]
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = TCAV(hans.model, ["conv2"], classifier=DefaultClassifier(),
                      save_path=folder).interpret(sevens, experiments, target=7)
    expected = [float(theirs[f"{a.id}-{b.id}"]["conv2"]["sign_count"][0])
                for a, b in experiments]
    assert np.allclose([*ours.scores, *ours.random_scores], expected, atol=1e-6)
    assert ours.score == pytest.approx(np.mean(expected[:4]))


def test_tag_is_significant_for_the_shortcut_model_and_not_for_the_clean_twin(hans, clean):
    sevens = clean[0][clean[1] == 7][:60]
    shortcut = concepts.tcav(hans.model, sevens, tag_concept(hans.model, hans, clean[0]), 7)
    assert shortcut.significant and shortcut.p_value < 0.01 and shortcut.score > 0.95
    assert len(shortcut.random_scores) == 30 and "significant" in str(shortcut)
    twin_tag = tag_concept(hans.twin, hans, clean[0], min_accuracy=0)
    twin = concepts.tcav(hans.twin, sevens, twin_tag, 7)
    assert not twin.significant, twin
    # the twin's score falls slightly along the tag (tagged 7s: 95.8 % right, clean: 97 %),
    # which only the two-sided test reports
    assert concepts.tcav(hans.twin, sevens, twin_tag, 7, alternative="two-sided").significant


def test_tcav_is_seeded_and_leaves_random_states_alone(hans, tag, clean):
    random.seed(11)
    np.random.seed(11)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state()
    first = concepts.tcav(hans.model, clean[0][:30], tag, 7, runs=3)
    again = concepts.tcav(hans.model, clean[0][:30], tag, 7, runs=3)
    assert first == again
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.random.get_rng_state(), states[2])


def test_calls_leave_the_users_model_unchanged(hans, clean):
    model = hans.model
    model.train()  # an unusual mode that must survive
    before = checksum(model)
    try:
        concept = tag_concept(model, hans, clean[0])
        concepts.tcav(model, clean[0][:20], concept, 7, runs=2)
        assert_untouched(model, before)
    finally:
        model.eval()


def test_a_concept_the_layer_cannot_separate_is_reported(hans, clean):
    images = clean[0][:80]
    with pytest.raises(InputError, match="cannot tell the positives from the negatives"):
        concepts.Concept.from_images(hans.model, images[:40], images[40:])  # no concept at all
    weak = concepts.Concept.from_images(hans.model, images[:40], images[40:], min_accuracy=0)
    assert weak.accuracy < 0.7


@pytest.mark.parametrize(("positives", "negatives", "layer", "message"), [
    (torch.rand(3, 1, 28, 28), torch.rand(10, 1, 28, 28), None, "at least 5 positives"),
    (torch.rand(8, 3, 28, 28), torch.rand(8, 3, 28, 28), None, "expects 1"),
    (torch.rand(8, 28), torch.rand(8, 28), None, r"\(N,C,H,W\)"),
    (torch.rand(8, 1, 28, 28), torch.rand(8, 1, 20, 20), None, "one size"),
    (torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28), "conv9", "no layer 'conv9'"),
    ("pictures", torch.rand(8, 1, 28, 28), None, "positives must be"),
])
def test_bad_concept_input_gets_a_clear_error(hans, positives, negatives, layer, message):
    with pytest.raises(InputError, match=message):
        concepts.Concept.from_images(hans.model, positives, negatives, layer)


def test_bad_tcav_input_gets_a_clear_error(hans, tag, clean):
    with pytest.raises(InputError, match=r"class index in 0\.\.9"):
        concepts.tcav(hans.model, clean[0][:10], tag, target=12)
    with pytest.raises(InputError, match="runs must be at least 2"):
        concepts.tcav(hans.model, clean[0][:10], tag, target=7, runs=1)
    with pytest.raises(InputError, match="mask is empty"):
        concepts.Concept.from_region(hans.model, clean[0][0], torch.zeros(28, 28, dtype=bool),
                                     clean[0][:10])


def test_p_value_of_constant_groups():
    assert p_value(np.ones(3), np.ones(3)) == 1.0
    assert p_value(np.ones(3), np.zeros(3)) == 0.0
    assert p_value(np.zeros(3), np.ones(3)) == 1.0  # lower, not greater
    assert p_value(np.zeros(3), np.ones(3), "two-sided") == 0.0
    assert p_value(np.array([1.0, 1, 1]), np.array([0.2, 0.9, 0.5])) < 0.1


def test_default_layer_of_real_architectures():
    from xai_widgets.zoo import MnistCNN

    assert concepts.default_layer(MnistCNN()) == "conv2"
    assert concepts.default_layer(torchvision_model("resnet18")) == "layer4"
    assert concepts.default_layer(torchvision_model("convnext_tiny")) == "features"
    with pytest.raises(InputError, match="no Conv2d layer"):
        concepts.default_layer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)))


def test_concept_and_tcav_on_resnet_with_preprocess():
    """An RGB 1000-class ResNet with a normalising preprocess: a bright square concept."""
    model = torchvision_model("resnet18")
    before = checksum(model)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)

    def preprocess(x):
        return (x - mean) / 0.25

    photo = rgb_image(64)
    rng = torch.Generator().manual_seed(0)
    others = (photo[None] * (0.6 + 0.4 * torch.rand(12, 1, 1, 1, generator=rng))).clamp(0, 1)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[4:20, 4:20] = True
    square = torch.ones(3, 64, 64)
    concept = concepts.Concept.from_region(model, square, mask, others, preprocess=preprocess)
    assert concept.layer == "layer4" and concept.accuracy > 0.9
    assert concept.cav.shape == (512 * 2 * 2,)
    result = concepts.tcav(model, others, concept, target=3, runs=3)
    assert 0.0 <= result.score <= 1.0 and len(result.scores) == 3
    assert checksum(model) == before
