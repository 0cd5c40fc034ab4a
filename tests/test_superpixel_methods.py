"""SHAP and LIME backends: parity with the raw libraries, additivity, superpixels."""

import numpy as np
import pytest
import shap
import torch
from captum.attr import KernelShap
from lime import lime_image

from tests.conftest import max_relative_difference
from xai_widgets import InputError, explain
from xai_widgets.superpixels import SEGMENTATIONS, segment


def probabilities_of(model):
    def classify(batch):
        with torch.no_grad():
            return torch.softmax(model(batch), dim=1)
    return classify


def test_lime_equals_the_lime_package(model, image):
    """Same samples (seed), segments, kernel and hidden colour: the same weights per class."""
    e = explain(model, image, method="lime", n_samples=300, seed=11, baseline="zero")
    segments = segment(image, "slic", n_segments=50, compactness=0.3).numpy()
    classify = probabilities_of(model)

    def classifier_fn(rgb_batch):  # lime hands over (N, H, W, 3) copies of the gray digit
        return classify(torch.from_numpy(rgb_batch[..., :1]).permute(0, 3, 1, 2).float()).numpy()

    explainer = lime_image.LimeImageExplainer(random_state=11)
    reference = explainer.explain_instance(
        image[0].double().numpy(), classifier_fn, top_labels=10, hide_color=0,
        num_samples=300, batch_size=300, segmentation_fn=lambda _: segments, random_seed=0)
    for target in range(10):
        weights = dict(reference.local_exp[target])
        expected = np.vectorize(weights.get)(segments)
        assert max_relative_difference(e.map(target), expected) <= 1e-4, target


def test_kernel_shap_equals_captum(model, image):
    e = explain(model, image, method="kernel_shap", n_samples=200, seed=5, segmentation="grid",
                cell=7)
    segments = segment(image, "grid", cell=7)
    forward = lambda x: torch.softmax(model(x), dim=1)  # noqa: E731
    for target in (0, 4, 9):
        torch.manual_seed(5)
        reference = KernelShap(forward).attribute(
            image[None], baselines=0.0, target=target, feature_mask=segments[None, None],
            n_samples=200, perturbations_per_eval=200)
        assert max_relative_difference(e.map(target), reference[0, 0].numpy()) <= 1e-3


def test_kernel_shap_is_additive(model, image):
    e = explain(model, image, method="kernel_shap", baseline="zero")
    with torch.no_grad():
        gap = (torch.softmax(model(image[None]), 1)
               - torch.softmax(model(torch.zeros(1, 1, 28, 28)), 1))[0]
    segments = segment(image, "slic", n_segments=50, compactness=0.3)
    per_segment = np.stack([[e.map(t)[segments.numpy() == s][0]
                             for s in range(int(segments.max()) + 1)]
                            for t in range(10)])
    np.testing.assert_allclose(per_segment.sum(1), gap.numpy(), atol=1e-3)


def test_deep_shap_equals_shap_and_is_additive(model, images, image):
    data = images[100:140]
    e = explain(model, image, method="deep_shap", data=data, background_size=40)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    values = shap.DeepExplainer(model, data[order]).shap_values(image[None])
    expected = np.moveaxis(np.asarray(values)[0], -1, 0)
    assert max_relative_difference(e.raw, expected) <= 1e-5
    with torch.no_grad():
        gap = (model(image[None])[0] - model(data).mean(0)).numpy()
    np.testing.assert_allclose(e.attributions.sum(axis=(1, 2)), gap, atol=1e-3)


def test_gradient_explainer_equals_shap(model, images, image):
    data = images[100:130]
    e = explain(model, image, method="gradient_explainer", data=data, background_size=30,
                n_samples=40, seed=3)
    order = torch.randperm(30, generator=torch.Generator().manual_seed(3))
    values = shap.GradientExplainer(model, data[order]).shap_values(image[None], nsamples=40,
                                                                    rseed=3)
    expected = np.moveaxis(np.asarray(values)[0], -1, 0)
    assert max_relative_difference(e.raw, expected) <= 1e-5


def test_background_falls_back_to_the_baseline_and_says_so(model, image):
    e = explain(model, image, method="deep_shap", baseline="blur")
    assert any("background is the chosen baseline" in note for note in e.notes)


@pytest.mark.parametrize("method", SEGMENTATIONS)
def test_default_segmentations_are_meaningful_on_a_digit(image, method):
    labels = segment(image, method)
    count = int(labels.max()) + 1
    assert 8 <= count <= 100, count
    assert set(np.unique(labels.numpy())) == set(range(count))


def test_segmentation_is_cached(image):
    assert segment(image, "slic") is segment(image, "slic")
    assert segment(image, "slic", n_segments=20) is not segment(image, "slic")


def test_superpixel_methods_are_seeded(model, image):
    a = explain(model, image, method="lime", n_samples=100, seed=1)
    b = explain(model, image, method="lime", n_samples=100, seed=1)
    c = explain(model, image, method="lime", n_samples=100, seed=2)
    np.testing.assert_array_equal(a.raw, b.raw)
    assert not np.array_equal(a.raw, c.raw)


def test_unknown_segmentation(model, image):
    with pytest.raises(InputError, match="segmentation must be one of"):
        explain(model, image, method="lime", segmentation="watershed")


def test_progress_is_reported(model, image):
    seen = []
    explain(model, image, method="lime", n_samples=400, batch_size=100,
            progress=lambda done, total: seen.append((done, total)))
    assert seen == [(100, 400), (200, 400), (300, 400), (400, 400)]
