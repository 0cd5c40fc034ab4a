"""Properties every method keeps: shapes, finiteness, determinism, nothing of the user's touched."""

import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn

from tests.conftest import checksum, max_relative_difference
from xai_widgets import InputError, explain, methods

# every method that explains the demo CNN (the attention methods need a vision transformer:
# tests/test_attention_methods.py)
ALL_METHODS = [m for m in methods.names() if m not in ("attention_rollout", "attention_relevance")]
DETERMINISTIC = [m for m in ALL_METHODS if not methods.spec(m).stochastic]


def input_forms(image: torch.Tensor):
    """The same digit in every form a user may pass."""
    hw = image[0]
    uint8 = (hw.numpy() * 255).round().astype(np.uint8)
    return {
        "tensor HW": hw, "tensor CHW": image, "tensor 1CHW": image[None],
        "numpy HW float": hw.numpy(), "numpy HWC float": hw.numpy()[..., None],
        "numpy CHW float": image.numpy(), "numpy HW uint8": uint8,
        "PIL L": PIL.Image.fromarray(uint8),
    }


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_gives_finite_maps_of_the_right_shape(model, images, method):
    e = explain(model, images[0], method=method, data=images[:16])
    assert e.attributions.shape == (10, 28, 28) and e.attributions.dtype == np.float32
    assert e.raw.shape == (10, 1, 28, 28) and e.raw.dtype == np.float32
    assert np.isfinite(e.raw).all()
    assert e.targets == list(range(10))
    assert e.probabilities.shape == (10,) and e.probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert e.method == method and e.seconds > 0
    assert set(e.params) == {p.name for p in methods.spec(method).params}
    assert np.abs(e.attributions).max() > 0


@pytest.mark.parametrize("form", list(input_forms(torch.zeros(1, 28, 28))))
def test_every_input_form_gives_the_same_map(model, image, form):
    reference = explain(model, image, method="saliency")
    x = input_forms(image)[form]
    e = explain(model, x, method="saliency")
    assert e.attributions.shape == (10, 28, 28)
    tolerance = 1e-5 if "uint8" not in form and "PIL" not in form else 0.05
    assert np.abs(e.attributions - reference.attributions).max() <= tolerance * np.abs(
        reference.attributions).max()


@pytest.mark.parametrize("method", ALL_METHODS)
def test_model_input_and_data_are_unchanged(model, images, method):
    x, data = images[0].clone(), images[:8].clone()
    before = checksum(model), x.clone(), data.clone()
    model.train()
    try:
        explain(model, x, method=method, data=data)
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()
    assert checksum(model) == before[0]
    assert torch.equal(x, before[1]) and torch.equal(data, before[2])
    assert all(p.grad is None for p in model.parameters())
    assert not hasattr(model.conv1, "rule")


class BatchNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(self.drop(self.relu(self.bn(self.conv(x))).flatten(1)))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_train_mode_batchnorm_model_left_as_it_was(image, method):
    torch.manual_seed(0)
    net = BatchNormNet().train()
    running = net.bn.running_mean.clone()
    before = checksum(net)
    first = explain(net, image, method=method)
    second = explain(net, image, method=method)
    assert net.training and net.bn.training and net.drop.training
    assert checksum(net) == before and torch.equal(net.bn.running_mean, running)
    np.testing.assert_array_equal(first.attributions, second.attributions)


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_deterministic_methods_repeat_exactly(model, image, method):
    a, b = explain(model, image, method=method), explain(model, image, method=method)
    np.testing.assert_array_equal(a.raw, b.raw)


def test_seeded_methods_repeat_and_leave_the_global_rng_alone(model, images, image):
    torch.manual_seed(123)
    np.random.seed(123)
    expected_torch, expected_numpy = torch.rand(1), np.random.rand()
    torch.manual_seed(123)
    np.random.seed(123)
    a = explain(model, image, method="gradient_shap", data=images[:10], seed=5)
    b = explain(model, image, method="gradient_shap", data=images[:10], seed=5)
    assert torch.rand(1) == expected_torch and np.random.rand() == expected_numpy
    np.testing.assert_array_equal(a.raw, b.raw)
    c = explain(model, image, method="gradient_shap", data=images[:10], seed=6)
    assert not np.array_equal(a.raw, c.raw)


def test_explanation_is_immutable(model, image):
    e = explain(model, image, method="saliency")
    with pytest.raises(ValueError):
        e.attributions[0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        e.method = "other"


def test_targets_forms(model, image):
    assert explain(model, image, method="saliency", targets=3).targets == [3]
    e = explain(model, image, method="saliency", targets=[7, 2])
    assert e.targets == [7, 2]
    full = explain(model, image, method="saliency")
    assert max_relative_difference(e.map(2), full.map(2)) <= 1e-5
    with pytest.raises(InputError, match="not explained"):
        e.map(5)


def test_baseline_alpha_blends_toward_the_image(model, image):
    e0 = explain(model, image, method="integrated_gradients", baseline="zero", baseline_alpha=0)
    e1 = explain(model, image, method="integrated_gradients", baseline="zero",
                 baseline_alpha=0.5)
    np.testing.assert_allclose(e1.baseline_image, 0.5 * image.numpy(), atol=1e-6)
    assert np.abs(e1.attributions).sum() < np.abs(e0.attributions).sum()
    e_full = explain(model, image, method="integrated_gradients", baseline_alpha=1.0)
    assert np.abs(e_full.attributions).max() == 0


def test_baseline_array_and_named_baselines(model, images, image):
    custom = torch.full((1, 28, 28), 0.25)
    e = explain(model, image, method="deeplift", baseline=custom)
    assert e.baseline == "array"
    np.testing.assert_allclose(e.baseline_image, custom.numpy())
    mean = explain(model, image, method="deeplift", baseline="mean", data=images[:50])
    np.testing.assert_allclose(mean.baseline_image, images[:50].mean(0).numpy(), atol=1e-6)
    maxed = explain(model, image, method="deeplift", baseline="max")
    assert maxed.baseline_image.min() == 1.0
    blurred = explain(model, image, method="deeplift", baseline="blur").baseline_image
    assert blurred.std() < image.numpy().std()
    u1 = explain(model, image, method="deeplift", baseline="uniform").baseline_image
    u2 = explain(model, image, method="deeplift", baseline="uniform").baseline_image
    np.testing.assert_array_equal(u1, u2)
    assert 0 <= u1.min() and u1.max() <= 1


def test_probability_model_ending_in_softmax_is_attributed_on_logits(image):
    torch.manual_seed(0)
    logits = nn.Sequential(nn.Conv2d(1, 3, 5), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 24 * 24, 10))
    with_softmax = nn.Sequential(*logits, nn.Softmax(dim=1))
    a = explain(logits, image, method="saliency", absolute=False)
    b = explain(with_softmax, image, method="saliency", absolute=False)
    np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-5)
    assert any("Softmax" in note for note in b.notes)


def test_probability_output_without_softmax_module_is_detected(image):
    class Probabilities(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return torch.softmax(self.fc(x.flatten(1)), dim=1)

    torch.manual_seed(0)
    net = Probabilities()
    e = explain(net, image, method="saliency")
    assert any("probabilities" in note for note in e.notes)
    with torch.no_grad():
        expected = net(image[None])[0].numpy()
    np.testing.assert_allclose(e.probabilities, expected, rtol=1e-6)  # not softmaxed twice


def test_preprocess_is_applied_and_attributions_stay_in_image_space(model, image):
    mean, std = 0.1307, 0.3081

    class Normalised(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, z):
            return self.inner(z * std + mean)

    e = explain(Normalised(), image, method="saliency",
                preprocess=lambda x: (x - mean) / std, absolute=False)
    reference = explain(model, image, method="saliency", absolute=False)
    np.testing.assert_allclose(e.raw, reference.raw, rtol=1e-4, atol=1e-6)
