"""Bad input raises InputError naming the problem and the fix; never a bare
Key/Index/AttributeError."""

import numpy as np
import pytest
import torch
from torch import nn

from xai_widgets import InputError, explain, methods
from xai_widgets.adapter import ModelAdapter, to_chw


@pytest.mark.parametrize("x, match", [
    (torch.rand(3, 28, 28), "3 channel.*expects 1.*grayscale"),
    (torch.rand(5, 1, 28, 28), "batch of 5 images.*images\\[0\\]"),
    (np.full((28, 28), np.nan, dtype=np.float32), "NaN or infinite.*nan_to_num"),
    (np.zeros((2, 3, 4, 5, 6)), "2 to 4 dimensions"),
    (np.array(["a", "b"]), "dtype"),
    (np.zeros((28, 28, 7)), "cannot tell the channels"),
])
def test_bad_images(model, x, match):
    with pytest.raises(InputError, match=match):
        explain(model, x, method="saliency")


@pytest.mark.parametrize("kwargs, match", [
    ({"targets": 10}, "out of range.*0..9"),
    ({"targets": -1}, "out of range"),
    ({"targets": [1, "a"]}, "not a class index"),
    ({"targets": "some"}, "'all', an int or a list"),
    ({"targets": []}, "empty"),
    ({"targets": True}, "not a class index"),
    ({"method": "nope"}, "unknown method 'nope'.*integrated_gradients"),
    ({"method": "integrated_gradients", "n_steps": -5}, "n_steps must be in 1..1000"),
    ({"method": "integrated_gradients", "n_steps": 2.5}, "integer"),
    ({"method": "integrated_gradients", "steps": 5}, "no parameter 'steps'.*n_steps"),
    ({"method": "occlusion", "window": 3, "stride": 5}, "stride.*must not exceed"),
    ({"method": "occlusion", "window": 40}, "larger than the image|must be in"),
    ({"method": "lrp", "rule": "zplus"}, "rule must be one of"),
    ({"method": "grad_cam", "layer": "fc1"}, "not a Conv2d layer.*conv1"),
    ({"baseline": "mean"}, "needs reference images.*data=images"),
    ({"baseline": "sky"}, "unknown baseline 'sky'"),
    ({"baseline": np.zeros((5, 5))}, "baseline array has shape"),
    ({"baseline_alpha": 1.5}, "baseline_alpha must be in 0..1"),
    ({"baseline_alpha": "x"}, "must be a number"),
    ({"data": np.zeros((4, 1, 20, 20))}, "data images have shape"),
    ({"output": "scores"}, "output must be"),
])
def test_bad_arguments(model, image, kwargs, match):
    with pytest.raises(InputError, match=match):
        explain(model, image, **kwargs)


def test_not_a_module(image):
    with pytest.raises(InputError, match=r"torch.nn.Module"):
        explain(lambda x: x, image)


def test_unsupported_method_says_why(image):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))
    reasons = methods.available(net)
    assert reasons["integrated_gradients"] is None
    assert "GELU" in reasons["lrp"] and "GELU" in reasons["deeplift"]
    with pytest.raises(InputError, match=r"lrp cannot explain this model.*GELU"):
        explain(net, image, method="lrp")
    flat = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    assert "Conv2d" in methods.available(flat)["grad_cam"]
    assert "activation modules" in methods.available(flat)["guided_backprop"]


def test_wrong_output_shape(image):
    with pytest.raises(InputError, match="must return \\(batch, n_classes\\)"):
        explain(nn.Conv2d(1, 1, 3), image)


def test_ambiguous_layout_is_stated():
    _, notes = to_chw(np.zeros((3, 32, 32), dtype=np.float32))
    assert any("channels first" in n for n in notes)
    tensor, notes = to_chw(np.zeros((32, 32, 3), dtype=np.uint8))
    assert tensor.shape == (3, 32, 32)
    assert any("channels last" in n for n in notes) and any("0..255" in n for n in notes)


def test_expected_channels_resolve_ambiguity(model):
    adapter = ModelAdapter(nn.Sequential(nn.Conv2d(3, 2, 3)))
    image, _notes = adapter.image(np.zeros((3, 8, 3), dtype=np.float32))
    assert image.shape == (1, 3, 3, 8)


def test_a_baseline_equal_to_the_image_gives_a_zero_map_and_says_why():
    from xai_widgets import explain
    from xai_widgets.zoo import load_demo

    model, images, _labels, _classes = load_demo("mnist")
    e = explain(model, images[0], "integrated_gradients", targets=[1, 4], baseline="blur",
                baseline_alpha=1.0)
    assert not e.attributions.any() and any("baseline equals the image" in n for n in e.notes)
    moved = explain(model, images[0], "integrated_gradients", targets=[4], baseline="blur",
                    baseline_alpha=0.5)
    assert moved.attributions.any() and not any("baseline equals" in n for n in moved.notes)


def test_the_prediction_of_an_image_is_computed_once_per_image_and_model():
    from xai_widgets.adapter import ModelAdapter
    from xai_widgets.compute import compute
    from xai_widgets.zoo import load_demo

    model, images, _labels, _classes = load_demo("mnist")
    adapter = ModelAdapter(model)
    image, _ = adapter.image(images[0])
    seen = []
    handle = model.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    try:
        before = compute(adapter, image, "saliency", [1])
        first = len(seen)
        compute(adapter, image, "input_x_gradient", [1])
        assert len(seen) == first + 1  # its own gradient pass, no new pass for the prediction
        with torch.no_grad():
            model.fc2.bias[1] += 1.0  # a changed model predicts anew
        shifted = compute(adapter, image, "saliency", [1])
        assert shifted.probabilities[1] > before.probabilities[1]
        other, _ = adapter.image(images[1])  # another image is predicted anew
        np.testing.assert_allclose(compute(adapter, other, "saliency", [1]).probabilities,
                                   adapter.probabilities(other)[0].numpy(), rtol=1e-6)
    finally:
        handle.remove()
        with torch.no_grad():
            model.fc2.bias[1] -= 1.0
    assert shifted.probabilities[1] > compute(adapter, image, "saliency", [1]).probabilities[1]
