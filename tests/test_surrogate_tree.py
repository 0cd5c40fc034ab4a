"""Surrogate decision trees: the default features reach the fidelity goal on the held-out demo
digits where cell brightness does not, one drawing per node, concepts as features, an RGB
model, clear errors, the user's model left as it was."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import assert_untouched, checksum
from xai_widgets import InputError, concepts
from xai_widgets.global_views import fidelity_by_depth, surrogate_tree, surrogate_trees


@pytest.fixture(scope="module")
def parts(demo):
    """Depth-6 trees on the default features over all 1,000 digits (700 train, 300 held out)."""
    return surrogate_trees(demo[0], demo[1], depths=(4, 6))


def test_default_features_reach_the_goal_where_grid_cells_do_not(demo, parts):
    tree = parts[6]
    assert tree.features == "parts" and tree.depth == 6 and tree.n_leaves <= 64
    assert (tree.n_train, tree.n_test, tree.n_augmented) == (700, 300, 7000)
    assert tree.fidelity >= 0.85
    grid = fidelity_by_depth(demo[0], demo[1], depths=(6,), features="grid", augment=0)[6]
    assert grid < 0.75 and tree.fidelity - grid > 0.15
    assert parts[4].fidelity < tree.fidelity  # deeper trees mimic better


def test_fidelity_is_agreement_with_the_network_on_held_out_images(demo, parts):
    model, images = demo[0], demo[1]
    tree = parts[6]
    held_out = images[tree.test_indices]
    with torch.no_grad():
        network = model(held_out).argmax(1).numpy()
    assert np.mean(tree.predict(held_out) == network) == pytest.approx(tree.fidelity)
    assert len(set(tree.test_indices.tolist())) == 300


def test_render_draws_every_node_as_an_image_region(parts):
    tree = parts[4]
    page = tree.render()
    nodes = tree.tree.tree_.node_count
    assert page.count('class="xw-node"') == nodes and page.count("<image ") == nodes
    internal = nodes - tree.n_leaves
    assert page.count('class="xw-region"') == internal  # each test outlines its region
    svg = ET.fromstring(page[page.index("<svg"):page.index("</svg>") + 6])  # well-formed
    assert svg.tag.endswith("svg")
    assert "fill:currentColor" in page and "stroke:currentColor" in page  # theme-neutral text
    assert "like" in page and "→" in page and "%" in page  # questions, leaf class and share


def test_concepts_as_features(hans, clean):
    carrier = hans.masks.flatten(1).any(1)
    tag = concepts.Concept.from_region(hans.model, hans.images[carrier][0],
                                       hans.masks[carrier][0], clean[0][:60], name="tag")
    tree = surrogate_tree(hans.model, hans.images[:300], features=[tag], max_depth=2,
                          augment=0)
    assert tree.features == "concepts" and tree.feature_names == ["tag"]
    assert 0 <= tree.fidelity <= 1
    box, key = tree.featurizer.region(0)
    assert box == (1 / 28, 5 / 28, 1 / 28, 5 / 28) and key == ("concept", 0)
    assert tree.render().count('class="xw-node"') == tree.tree.tree_.node_count


def test_grid_features_name_their_cells_and_regions(demo):
    tree = surrogate_tree(demo[0], demo[1][:120], features="grid", grid=4, max_depth=2,
                          augment=1)
    assert len(tree.feature_names) == 16 and tree.feature_names[5] == "cell (1,1) brightness"
    assert tree.featurizer.region(5) == ((0.25, 0.5, 0.25, 0.5), "mean")


def test_seeded(demo):
    first = surrogate_tree(demo[0], demo[1][:150], max_depth=3, augment=2, seed=3)
    again = surrogate_tree(demo[0], demo[1][:150], max_depth=3, augment=2, seed=3)
    assert first.fidelity == again.fidelity
    assert np.array_equal(first.test_indices, again.test_indices)


def rgb_case() -> tuple[nn.Module, torch.Tensor]:
    """A tiny random RGB CNN and 40 16×16 images (a bright square of one colour in one
    quadrant on noise); the logits are standardised over the images so that the net
    predicts all four classes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 4))
    images = 0.3 * torch.rand(40, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for i in range(40):
        row, col = divmod(i % 4, 2)
        images[i, i % 3, 8 * row:8 * row + 8, 8 * col:8 * col + 8] += 0.7
    with torch.no_grad():
        scores = model(images)
        model[-1].weight.div_(scores.std(0)[:, None])
        model[-1].bias.sub_(scores.mean(0)).div_(scores.std(0))
    return model.eval(), images


def test_an_rgb_model():
    model, images = rgb_case()
    for features in ("parts", "grid"):
        tree = surrogate_tree(model, images, features=features, grid=4, max_depth=3,
                              augment=3, classes=["a", "b", "c", "d"])
        assert 0 <= tree.fidelity <= 1 and tree.depth <= 3
        assert tree.predict(images[:3]).shape == (3,)
        assert tree.render().count("<image ") == tree.tree.tree_.node_count
    assert tree.classes == ["a", "b", "c", "d"]


@pytest.mark.parametrize("call, message", [
    (dict(max_depth=0), "max_depth must be an int of at least 1"),
    (dict(max_depth=2.5), "max_depth must be an int"),
    (dict(features="grid", grid=1), "does not divide"),
    (dict(features="grid", grid=15), "does not divide"),
    (dict(features="pixels"), "unknown features"),
    (dict(features=[]), "non-empty list of Concept"),
    (dict(test_size=1.0), "test_size"),
    (dict(augment=-1), "augment must be an int"),
    (dict(layer="nope"), "has no layer"),
    (dict(classes=["a", "b"]), "2 class names for a model of 10 classes"),
])
def test_clear_errors(demo, call, message):
    with pytest.raises(InputError, match=message):
        surrogate_tree(demo[0], demo[1][:30], **({"max_depth": 2, "augment": 0} | call))


@pytest.mark.parametrize("images, message", [
    (torch.rand(5, 1, 28, 28), "at least 10"),
    (torch.rand(20, 28), "must be a batch of images"),
    (torch.rand(20, 1, 2, 28), "too small"),
    (torch.rand(20, 3, 28, 28), "expects 1"),
    (np.array([[["a"] * 28] * 28] * 20), "images must be"),
])
def test_bad_images(demo, images, message):
    with pytest.raises(InputError, match=message):
        surrogate_tree(demo[0], images, max_depth=2)


def test_the_users_model_is_left_unchanged(demo):
    model = demo[0]
    model.train()  # an unusual mode that must survive
    before = checksum(model)
    try:
        tree = surrogate_tree(model, demo[1][:60], max_depth=2, augment=1)
        tree.predict(demo[1][:5])
        assert_untouched(model, before)
    finally:
        model.eval()
