"""explain() equals captum called directly, target by target, with the same arguments."""

import copy

import numpy as np
import pytest
import torch
from captum.attr import (
    LRP,
    DeepLift,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from captum.attr._utils import lrp_rules

from tests.conftest import max_relative_difference
from xai_widgets import explain
from xai_widgets.baselines import gaussian_blur

TOLERANCE = 1e-5
TARGETS = list(range(10))


def captum_per_target(make, image, **kwargs):
    """A naive loop of single-target captum calls: the reference numbers."""
    x = image.reshape(1, 1, 28, 28)
    return np.stack([make().attribute(x, target=t, **kwargs)[0].detach().numpy()
                     for t in TARGETS])


@pytest.mark.parametrize("method, make, kwargs, ours", [
    ("saliency", Saliency, {"abs": True}, {}),
    ("saliency", Saliency, {"abs": False}, {"absolute": False}),
    ("input_x_gradient", InputXGradient, {}, {}),
    ("guided_backprop", GuidedBackprop, {}, {}),
])
def test_gradient_methods_match_captum(model, image, method, make, kwargs, ours):
    e = explain(model, image, method=method, **ours)
    reference = captum_per_target(lambda: make(model), image, **kwargs)
    assert max_relative_difference(e.raw, reference) <= TOLERANCE


@pytest.mark.parametrize("baseline", ["zero", "blur"])
def test_integrated_gradients_matches_captum(model, image, baseline):
    e = explain(model, image, method="integrated_gradients", baseline=baseline, n_steps=50)
    x = image.reshape(1, 1, 28, 28)
    b = torch.zeros_like(x) if baseline == "zero" else gaussian_blur(x, 2.8)
    reference = captum_per_target(lambda: IntegratedGradients(model), image, baselines=b,
                                  n_steps=50)
    assert max_relative_difference(e.raw, reference) <= TOLERANCE


def test_deeplift_matches_captum(model, image):
    e = explain(model, image, method="deeplift", baseline="zero")
    reference = captum_per_target(lambda: DeepLift(model), image,
                                  baselines=torch.zeros(1, 1, 28, 28))
    assert max_relative_difference(e.raw, reference) <= TOLERANCE


@pytest.mark.parametrize("window, stride", [(5, 2), (4, 3), (7, 7), (1, 1)])
def test_occlusion_matches_captum(model, image, window, stride):
    e = explain(model, image, method="occlusion", window=window, stride=stride, baseline="zero")
    # one captum call on ten copies of the image, copy t for target t (captum's own
    # per-example targets): the numbers of ten single-target calls, at a tenth of the calls
    copies = image.reshape(1, 1, 28, 28).repeat(len(TARGETS), 1, 1, 1)
    reference = Occlusion(model).attribute(
        copies, target=TARGETS, sliding_window_shapes=(1, window, window),
        strides=(1, stride, stride), baselines=0.0, perturbations_per_eval=16).detach().numpy()
    assert max_relative_difference(e.raw, reference) <= TOLERANCE


def test_grad_cam_matches_captum(model, image):
    e = explain(model, image, method="grad_cam")
    x = image.reshape(1, 1, 28, 28)
    reference = []
    for t in TARGETS:
        cam = LayerGradCam(model, model.conv2).attribute(x, target=t, relu_attributions=True)
        reference.append(LayerAttribution.interpolate(cam, (28, 28), "bilinear")[0].detach())
    assert max_relative_difference(e.raw, np.stack(reference)) <= TOLERANCE


@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha1beta0"])
def test_lrp_matches_captum(model, image, rule):
    e = explain(model, image, method="lrp", rule=rule)

    def make():
        copy_ = copy.deepcopy(model)
        for layer in (copy_.conv1, copy_.conv2):
            layer.rule = {"epsilon": lrp_rules.EpsilonRule(1e-9),
                          "gamma": lrp_rules.GammaRule(0.25),
                          "alpha1beta0": lrp_rules.Alpha1_Beta0_Rule()}[rule]
        for layer in (copy_.fc1, copy_.fc2):
            layer.rule = (lrp_rules.Alpha1_Beta0_Rule() if rule == "alpha1beta0"
                          else lrp_rules.EpsilonRule(1e-9))
        copy_.conv2_drop = torch.nn.Dropout()
        return LRP(copy_.eval())

    reference = captum_per_target(make, image)
    assert max_relative_difference(e.raw, reference) <= TOLERANCE


def test_gradient_shap_matches_captum_same_draws(model, images, image):
    data = images[100:140]
    e = explain(model, image, method="gradient_shap", data=data, n_samples=8, seed=3)
    torch.manual_seed(3)
    np.random.seed(3)
    reference = GradientShap(model).attribute(
        image.reshape(1, 1, 28, 28).expand(10, -1, -1, -1), baselines=data, n_samples=8,
        stdevs=0.0, target=TARGETS)
    assert max_relative_difference(e.raw, reference.detach()) <= TOLERANCE


def test_smoothgrad_matches_captum_noise_tunnel(model, image):
    e = explain(model, image, method="saliency", smoothing="smoothgrad", nt_samples=6,
                nt_stdev=0.2, seed=7)
    torch.manual_seed(7)
    np.random.seed(7)
    reference = NoiseTunnel(Saliency(model)).attribute(
        image.reshape(1, 1, 28, 28).expand(10, -1, -1, -1), nt_type="smoothgrad",
        nt_samples=6, stdevs=0.2, target=TARGETS, abs=True)
    assert max_relative_difference(e.raw, reference.detach()) <= TOLERANCE


def test_gradient_shap_with_many_samples_approaches_integrated_gradients_sum(model, images, image):
    """Expected gradients are complete in expectation: sum ≈ f(x) − E[f(baseline)]."""
    data = images[200:264]
    e = explain(model, image, method="gradient_shap", data=data, n_samples=200)
    with torch.no_grad():
        gap = model(image[None]) - model(data).mean(0, keepdim=True)
    sums = e.attributions.sum(axis=(1, 2))
    assert np.abs(sums - gap[0].numpy()).max() <= 0.1 * np.abs(gap.numpy()).max()


def completeness(model, image, e):
    with torch.no_grad():
        gap = (model(image[None]) - model(torch.tensor(e.baseline_image)[None]))[0].numpy()
    return np.abs(e.attributions.sum(axis=(1, 2)) - gap).max() / np.abs(gap).max()


@pytest.mark.parametrize("baseline, n_steps", [("zero", None), ("blur", None),
                                               ("uniform", 300), ("max", 300)])
def test_integrated_gradients_is_complete_for_every_class(model, images, baseline, n_steps):
    """Within 1 % at the default steps for the zero and blur baselines; far baselines cross
    more ReLU kinks and need more steps, which the Explanation says (completeness_error)."""
    steps = {} if n_steps is None else {"n_steps": n_steps}
    for image in images[:20 if n_steps is None else 6]:
        e = explain(model, image, method="integrated_gradients", baseline=baseline, **steps)
        error = completeness(model, image, e)
        assert error <= 0.01
        assert e.completeness_error == pytest.approx(error, abs=1e-4)


def test_too_few_steps_are_reported(model, image):
    e = explain(model, image, method="integrated_gradients", baseline="max", n_steps=2)
    assert e.completeness_error > 0.01
    assert any("raise n_steps" in note for note in e.notes)


def test_deeplift_is_complete_for_the_zero_baseline(model, images):
    for image in images[:5]:
        e = explain(model, image, method="deeplift", baseline="zero")
        assert completeness(model, image, e) <= 1e-4


def test_deeplift_reports_its_gap_for_other_baselines(model, image):
    """captum's max-pool rule is approximate when the pooled argmax moves: said, not hidden."""
    e = explain(model, image, method="deeplift", baseline="uniform")
    assert e.completeness_error == pytest.approx(completeness(model, image, e), abs=1e-5)
    assert any("max-pool" in note for note in e.notes)
