"""Class visualisation (``global_views.visualize_class``): every demo class reached, the
generator keeps images on the data's manifold, the Clever-Hans tag shows, and the user's
model, random state and hooks are left as they were."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import checksum
from xai_widgets import global_views
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.global_views import visualize as visualize_module
from xai_widgets.global_views import visualize_class
from xai_widgets.zoo import load_autoencoder, load_clever_hans

pytestmark = pytest.mark.usefixtures("one_thread")  # thousands of batch-of-one steps


@pytest.fixture(scope="module")
def autoencoder():
    return load_autoencoder()


@pytest.fixture(scope="module")
def hans():
    return load_clever_hans()


def reconstruction_error(autoencoder, images: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((autoencoder(images) - images) ** 2).mean())


@pytest.mark.parametrize("parameterization", ["pixel", "fourier"])
def test_every_demo_class_reaches_099_with_the_defaults(model, parameterization):
    for target in range(10):
        v = visualize_class(model, target=target, parameterization=parameterization)
        assert v.probabilities[target] >= 0.99, (target, v.probabilities[target])
        assert v.image.shape == (1, 28, 28) and 0 <= v.image.min() and v.image.max() <= 1
        assert len(v.history) == v.steps == 256 and v.score == pytest.approx(
            v.probabilities[target])


def test_generator_images_are_confident_and_in_distribution(model, images, autoencoder):
    real = reconstruction_error(autoencoder, images[:1000])
    for target in (1, 4, 7):
        v = visualize_class(model, target=target, generator=autoencoder, data=images[500:600],
                            steps=128)
        assert v.probabilities[target] >= 0.99
        assert v.latent.shape == (1, 8, 7, 7) and v.parameterization == "generator"
        assert reconstruction_error(autoencoder, torch.tensor(v.image)[None]) < 2 * real


def test_a_bare_decoder_needs_its_latent_shape(model, autoencoder):
    with pytest.raises(InputError, match="latent_shape"):
        visualize_class(model, target=2, generator=autoencoder.decoder, steps=2)
    v = visualize_class(model, target=2, generator=autoencoder.decoder, latent_shape=(8, 7, 7),
                        steps=64)
    assert v.image.shape == (1, 28, 28) and v.history[-1] > v.history[0]


def tag_ratio(v, mask: np.ndarray) -> float:
    return float(v.image[mask].mean() / v.image.mean())


def test_the_clever_hans_tag_shows_in_class_7_and_not_in_the_twin(hans):
    mask = hans.masks[hans.masks.flatten(1).any(1)][0].numpy()
    shortcut = visualize_class(hans.model, target=7, steps=192)
    clean = visualize_class(hans.twin, target=7, steps=192)
    assert tag_ratio(shortcut, mask) > 3 and tag_ratio(shortcut, mask) > 3 * tag_ratio(clean, mask)


def test_the_model_rng_and_hooks_are_left_as_they_were(model):
    model.train()
    before, torch_state, numpy_state = checksum(model), torch.get_rng_state(), np.random.get_state()
    try:
        visualize_class(model, target=1, steps=8)
        visualize_class(model, layer="conv2", unit=3, steps=8, parameterization="fourier")
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()
    assert checksum(model) == before
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()


def test_deterministic_for_a_seed(model):
    a, b = (visualize_class(model, target=5, steps=32, seed=3) for _ in range(2))
    other = visualize_class(model, target=5, steps=32, seed=4)
    assert np.array_equal(a.image, b.image) and a.history == b.history
    assert not np.array_equal(a.image, other.image)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target": 10}, "target 10 is out of range"),
    ({"target": -1}, "target -1 is out of range"),
    ({}, "pass target= .* or layer="),
    ({"target": 1, "layer": "conv2", "unit": 0}, "not both"),
    ({"layer": "conv9", "unit": 0}, "no layer 'conv9'"),
    ({"layer": "conv2", "unit": 20}, "unit 20 is out of range.*0..19"),
    ({"layer": "fc1", "unit": -1}, "unit -1 is out of range.*0..49"),
    ({"layer": "conv2"}, "unit must be one index .* got None: pass a channel of layer 'conv2'"),
    ({"target": [1, 2]}, r"target must be one index \(an int\), got \[1, 2\]"),
    ({"target": 1, "generator": torch.nn.Identity(), "latent_shape": (1, 28, 28),
      "parameterization": "fourier"}, "parameterization applies to images"),
    ({"target": 1, "unit": 3}, "unit= needs layer="),
    ({"target": 1, "tv": -0.1}, "tv=-0.1 is outside 0.0..10.0"),
    ({"target": 1, "l2": float("nan")}, "l2=nan is outside"),
    ({"target": 1, "l2": 1e9}, "l2=1000000000.0 is outside"),
    ({"target": 1, "lr": float("inf")}, "lr=inf is outside"),
    ({"target": 1, "jitter": "2"}, "jitter='2' is outside"),
    ({"target": 1, "blur": 1.0}, r"unknown argument\(s\) \['blur'\]"),
    ({"target": 1, "steps": 0}, "steps must be an int"),
    ({"target": 1, "parameterization": "wavelet"}, "parameterization must be one of"),
    ({"target": 1, "image_shape": (28, 28)}, r"image_shape must be \(C, H, W\)"),
])
def test_bad_arguments_are_input_errors(model, kwargs, message):
    with pytest.raises(InputError, match=message):
        visualize_class(model, **{"steps": 4, **kwargs})


def test_a_regulariser_that_blows_up_names_itself(model, monkeypatch):
    monkeypatch.setattr(visualize_module, "_total_variation",
                        lambda image: image.sum() * float("inf"))
    with pytest.raises(InputError, match=r"the tv term became inf at step 0: lower tv"):
        visualize_class(model, target=1, steps=4)
    assert not any(m._forward_hooks for m in model.modules())


def test_a_model_returning_nan_is_an_input_error():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(16, 3)

        def forward(self, x):
            return self.linear(x.flatten(1)) * float("nan")

    with pytest.raises(InputError, match="the model returned NaN"):
        visualize_class(Broken(), target=0, image_shape=(1, 4, 4), steps=3)


def test_cancel_raises_and_removes_the_hook(model):
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled):
        visualize_class(model, layer="conv2", unit=0, steps=50, cancelled=cancelled)
    assert len(calls) == 6 and not any(m._forward_hooks for m in model.modules())


def test_on_step_reports_progress(model):
    seen = []
    v = visualize_class(model, target=0, steps=20, report_every=5,
                        on_step=lambda *args: seen.append(args))
    assert [s[:2] for s in seen] == [(5, 20), (10, 20), (15, 20), (20, 20)]
    assert all(s[2].shape == (1, 28, 28) and isinstance(s[3], float) for s in seen)
    assert seen[-1][3] == v.history[-1]


@pytest.mark.parametrize(("layer", "unit"), [("conv2", 3), ("fc1", 5)])
def test_a_unit_is_maximised(model, layer, unit):
    v = visualize_class(model, layer=layer, unit=unit, steps=64)
    assert v.history[-1] > 5 * max(v.history[0], 0.1) and v.score > 1
    assert v.target is None and (v.layer, v.unit) == (layer, unit)
    assert repr(v).startswith(f"Visualization({layer}[{unit}], score=")


class TinyRGB(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(16 * 8 * 8, 5)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.mark.parametrize("parameterization", ["pixel", "fourier"])
def test_an_rgb_model_with_preprocess(parameterization):
    torch.manual_seed(0)
    model = TinyRGB().eval()
    v = visualize_class(model, target=2, preprocess=lambda x: (x - MEAN) / STD, steps=64,
                        parameterization=parameterization)
    assert v.image.shape == (3, 32, 32) and 0 <= v.image.min() and v.image.max() <= 1
    # random weights: the logits span little, so p saturates well below 1 (0.2 at the start)
    assert v.probabilities.argmax() == 2 and v.probabilities[2] > 0.5 > v.history[0]


def test_resnet18_needs_image_shape_then_runs():
    from tests.real_models import torchvision_model

    model = torchvision_model("resnet18", 64)
    preprocess = lambda x: (x - MEAN) / STD  # noqa: E731
    with pytest.raises(InputError, match=r"pass image_shape=\(C, H, W\)"):
        visualize_class(model, target=3, preprocess=preprocess, steps=2)
    v = visualize_class(model, target=3, preprocess=preprocess, image_shape=(3, 64, 64),
                        steps=12, jitter=0)  # random weights: shifts change its answer
    assert v.image.shape == (3, 64, 64) and v.probabilities[3] > 0.5 > v.history[0]
    unit = visualize_class(model, layer="layer2.0.conv1", unit=7, preprocess=preprocess,
                           image_shape=(3, 64, 64), steps=8)
    assert unit.history[-1] > 2 * unit.history[0]


def test_the_package_exports_it():
    assert global_views.visualize_class is visualize_class
    assert global_views.Visualization is visualize_module.Visualization


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_model_and_generator_stay_there(model, images, autoencoder):
    gpu, decoder = copy.deepcopy(model).cuda(), copy.deepcopy(autoencoder).cuda()
    for kwargs in ({"parameterization": "fourier"}, {"generator": decoder, "data": images[:50]}):
        a, b = (visualize_class(gpu, target=4, steps=128, **kwargs) for _ in range(2))
        assert a.probabilities[4] >= 0.99 and np.array_equal(a.image, b.image)
    assert next(gpu.parameters()).is_cuda and next(decoder.parameters()).is_cuda
