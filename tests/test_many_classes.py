"""ExplainWidget with many classes: only the classes on screen are computed and sent.

A 1000-class ResNet-18 (torchvision, random weights) on a 224×224 photo under saliency, and
a small 100-class CNN on a 32×32 image under the default method (integrated gradients).
The view shows the top 10 classes by probability plus the target and pinned ones; a class
outside them costs the computation of that class alone, and a view update sends the
shown tiles, never 1000 maps.
"""

import json

import numpy as np
import pytest
import torch
from ipywidgets import Widget
from torch import nn

from tests.real_models import resnet18_1000, rgb_image
from xai_widgets import ExplainWidget
from xai_widgets.encoding import decode
from xai_widgets.widgets.bars_panel import OTHERS
from xai_widgets.widgets.class_picker import option

TIMEOUT = 300
OVERHEAD = 3  # images per computation besides the explanation: prediction, completeness check


class CountingModel(nn.Module):
    """Wraps a model and records the batch size of every forward call."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(int(x.shape[0]))
        return self.inner(x)

    def images(self) -> int:
        """Images forwarded since the last ``reset``."""
        return sum(self.sizes)

    def reset(self) -> None:
        self.sizes.clear()


@pytest.fixture
def wire(monkeypatch):
    """What the widgets send to the front end: ``(widget class, state keys, bytes)`` per
    message, bytes = JSON state + binary buffers."""
    sent: list[tuple[str, list[str], int]] = []

    def spy(self, msg, buffers=None):
        size = len(json.dumps(msg, default=str)) + sum(len(bytes(b)) for b in buffers or [])
        sent.append((type(self).__name__, sorted(msg.get("state", {})), size))

    monkeypatch.setattr(Widget, "_send", spy)
    return sent


def total(sent) -> int:
    return sum(size for _, _, size in sent)


def top_k(model: nn.Module, x: torch.Tensor, k: int = 10) -> list[int]:
    with torch.no_grad():
        p = torch.softmax(model(x[None]), dim=1)[0].numpy()
    return [int(i) for i in np.argsort(-p, kind="stable")[:k]]


def outside(shown, n_classes: int, count: int = 1) -> list[int]:
    """``count`` classes that are not on screen, from the least probable end."""
    return [c for c in reversed(range(n_classes)) if c not in shown][:count]


def map_bytes(side: int) -> int:
    return side * side * 4  # one float32 map


# -- 1000 classes: ResNet-18 at 224 px, saliency ---------------------------------------------
@pytest.fixture(scope="module")
def resnet():
    return resnet18_1000()


@pytest.fixture(scope="module")
def cat():
    return rgb_image(224)


@pytest.fixture
def counted(resnet):
    return CountingModel(resnet).eval()


@pytest.fixture
def resnet_widget(counted, cat):
    w = ExplainWidget(counted, cat, method="saliency").wait(TIMEOUT)
    yield w
    w.close()


def test_1000_classes_open_with_the_top_10(resnet_widget, resnet, cat, counted):
    w = resnet_widget
    top = top_k(resnet, cat)
    assert w.state.n_classes == 1000
    assert w.state.shown_classes() == top  # the target is the prediction, so no extra tile
    assert w.error == ""
    assert w.explanation.method == "saliency"
    assert sorted(w.explanation.targets) == sorted(top)
    # one image per shown class, plus the prediction: never 1000 classes
    # + the memory budget's one-off probe of this model (passes of one and two images, then
    # two timed passes of two)
    assert counted.images() <= len(top) + OVERHEAD + 7

    grid = w.panels["classes"].grid
    assert grid.classes == top
    assert grid.maps["shape"] == [10, 56, 56]  # tiles travel at most 64 px a side
    assert len(grid.maps["buffer"]) == 10 * map_bytes(56)
    tile = w.explanation.map(top[3]).reshape(56, 4, 56, 4).mean(axis=(1, 3))  # 4×4 averages
    np.testing.assert_allclose(decode(grid.maps)[3], tile, rtol=1e-5, atol=1e-9)

    bars = w.panels["bars"].bars
    assert list(bars.x) == [OTHERS] + [str(c) for c in top][::-1]  # rows: most probable on top
    assert len(bars.y) == 11
    assert sum(bars.y) == pytest.approx(1.0, abs=1e-5)

    view = w.panels["map"].view
    assert view.attribution["shape"] == [224, 224]
    assert len(view.attribution["buffer"]) == map_bytes(224)


def test_a_target_outside_the_top_10_computes_that_class_alone(resnet_widget, counted, wire):
    w = resnet_widget
    before = list(w.explanation.targets)
    top = w.state.shown_classes()
    (c,) = outside(top, 1000)
    counted.reset()
    wire.clear()
    w.target = c
    w.wait(TIMEOUT)

    assert w.error == ""
    # saliency of one class: one backward pass of one image, plus a prediction pass or two
    assert max(counted.sizes) == 1, counted.sizes
    assert counted.images() <= 1 + OVERHEAD, counted.sizes
    assert set(w.explanation.targets) == set(before) | {c}
    assert w.state.shown_classes() == top + [c]

    grid = w.panels["classes"].grid
    assert grid.classes == top + [c]
    assert grid.target == c
    assert grid.maps["shape"][0] == len(w.state.shown_classes()) == 11
    assert len(grid.maps["buffer"]) == 11 * map_bytes(56)
    assert list(w.panels["bars"].bars.x) == [OTHERS] + [str(k) for k in top + [c]][::-1]

    view = w.panels["map"].view
    assert len(view.attribution["buffer"]) == map_bytes(224)
    assert f"class {c} " in view.title
    np.testing.assert_allclose(decode(view.attribution), w.explanation.map(c), rtol=1e-6)
    # what went to the front end: the new map and the shown tiles, not 1000 maps
    assert map_bytes(224) < total(wire) <= map_bytes(224) + 11 * map_bytes(56) + 64 * 1024, \
        sorted(wire, key=lambda m: -m[2])[:3]


def test_a_target_among_the_tiles_costs_nothing_and_sends_one_map(resnet_widget, counted, wire):
    w = resnet_widget
    top = w.state.shown_classes()
    counted.reset()
    wire.clear()
    w.target = top[3]
    w.wait(TIMEOUT)
    assert counted.sizes == []  # every shown class is computed already
    assert w.panels["map"].view.attribution["shape"] == [224, 224]
    assert w.panels["classes"].grid.target == top[3]
    # one map (the big view) plus small JSON: the tiles do not change, so they are not resent
    assert map_bytes(224) < total(wire) <= map_bytes(224) + 16 * 1024, \
        sorted(wire, key=lambda m: -m[2])[:3]


def test_pinned_classes_and_top_k_compute_only_the_new_classes(resnet_widget, counted):
    w = resnet_widget
    top10 = w.state.shown_classes()
    (pin,) = outside(top_k(counted.inner, rgb_image(224), 12), 1000)
    counted.reset()
    w.pinned = [pin]
    w.wait(TIMEOUT)
    assert counted.images() <= 1 + OVERHEAD, counted.sizes
    assert w.state.shown_classes() == top10 + [pin]

    counted.reset()
    w.top_k = 12
    w.wait(TIMEOUT)
    assert counted.images() <= 2 + OVERHEAD, counted.sizes  # classes 11 and 12 only
    shown = w.state.shown_classes()
    assert len(shown) == 13 and shown[:10] == top10 and shown[-1] == pin
    assert set(w.explanation.targets) == set(shown)
    grid = w.panels["classes"].grid
    assert grid.classes == shown and grid.maps["shape"][0] == 13
    assert len(w.panels["bars"].bars.x) == 14


def test_the_class_picker_pins_and_explains_any_of_1000_classes(resnet_widget, counted):
    w = resnet_widget
    top = w.state.shown_classes()
    (c,) = outside(top, 1000)
    panel = w.panels["classes"]
    counted.reset()
    panel.picker.value = option(w.state.labels, c)
    w.wait(TIMEOUT)
    assert w.target == c and c in w.pinned
    assert counted.images() <= 1 + OVERHEAD, counted.sizes
    assert panel.grid.classes == top + [c]


def test_quick_target_changes_end_on_the_last_one(resnet_widget, counted):
    w = resnet_widget
    top = w.state.shown_classes()
    first, second = outside(top, 1000, 2)
    counted.reset()
    w.target = first
    w.target = second  # before the first is shown
    w.wait(TIMEOUT)
    assert w.error == ""
    assert w.state.shown_classes() == top + [second]
    assert set(top + [second]) <= set(w.explanation.targets)
    assert counted.images() <= 2 * (1 + OVERHEAD), counted.sizes
    assert w.panels["classes"].grid.classes == top + [second]
    assert f"class {second} " in w.panels["map"].view.title


# -- 100 classes: a small CNN at 32 px, the default method --------------------------------------
@pytest.fixture(scope="module")
def cnn100():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 100)).eval()


def test_100_classes_under_the_default_method(cnn100):
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    counted = CountingModel(cnn100).eval()
    w = ExplainWidget(counted, x).wait(TIMEOUT)
    try:
        top = top_k(cnn100, x)
        assert w.error == ""
        assert w.explanation.method == "integrated_gradients"
        assert w.state.shown_classes() == top
        grid = w.panels["classes"].grid
        assert grid.classes == top and grid.maps["shape"] == [10, 32, 32]
        bars = w.panels["bars"].bars
        assert len(bars.x) == 11 and bars.x[0] == OTHERS

        n_steps = w.explanation.params["n_steps"]
        before = list(w.explanation.targets)
        (c,) = outside(top, 100)
        counted.reset()
        w.target = c
        w.wait(TIMEOUT)
        assert w.error == ""
        # one class: one path of n_steps images, plus the prediction and completeness passes
        assert counted.images() <= n_steps + OVERHEAD + 1, counted.sizes
        assert set(w.explanation.targets) == set(before) | {c}
        assert grid.classes == top + [c] and grid.maps["shape"] == [11, 32, 32]
        assert len(bars.x) == 12
    finally:
        w.close()
