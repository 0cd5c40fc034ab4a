"""Counterfactual search and one-vs-one attribution."""

import numpy as np
import pytest
import torch

from tests.conftest import checksum
from xai_widgets import InputError, counterfactual, explain

METHODS = ["wachter", "prototype", "adversarial"]


@pytest.fixture(scope="module")
def reference(demo):
    return demo[1][500:]


@pytest.mark.parametrize("method", METHODS)
def test_a_reported_success_is_real(model, images, reference, method):
    for x, target in zip(images[:4], (9, 3, 7, 1)):
        x_before, model_before = x.clone(), checksum(model)
        cf = counterfactual(model, x, target=target, method=method, data=reference)
        assert cf.success, cf.message
        with torch.no_grad():
            assert int(model(torch.tensor(cf.image)[None]).argmax()) == target
        assert 0.0 <= cf.image.min() and cf.image.max() <= 1.0  # the input's value range
        assert cf.path.shape == (21, 1, 28, 28) and cf.path_probabilities.shape == (21, 10)
        np.testing.assert_allclose(cf.path[0], x.numpy(), atol=1e-6)
        np.testing.assert_allclose(cf.path[-1], cf.image, atol=1e-6)
        assert cf.path_probabilities[-1].argmax() == target
        assert cf.l1 == pytest.approx(np.abs(cf.image - x.numpy()).sum(), rel=1e-4)
        assert cf.l0 > 0 and cf.seconds > 0
        assert torch.equal(x, x_before) and checksum(model) == model_before
        assert all(p.grad is None for p in model.parameters())


def test_target_already_predicted_returns_x(model, image):
    predicted = int(model(image[None]).argmax())
    cf = counterfactual(model, image, target=predicted)
    assert cf.success and cf.l1 == 0 and "already" in cf.message
    np.testing.assert_array_equal(cf.image, image.numpy())


@pytest.mark.parametrize("method", METHODS)
def test_an_impossible_budget_returns_failure_not_an_exception(model, image, reference, method):
    cf = counterfactual(model, image, target=7, method=method, data=reference, max_steps=1)
    assert not cf.success and "max_steps" in cf.message


def test_prototype_counterfactuals_are_more_in_distribution(model, images, reference):
    """Lower reconstruction error under the autoencoder than Wachter's, on average."""
    errors = {}
    for method in ("wachter", "prototype"):
        errors[method] = np.mean([
            counterfactual(model, x, target=t, method=method, data=reference).reconstruction_error
            or 0.0 for x, t in zip(images[:6], (9, 3, 7, 1, 5, 8))])
    # wachter has no autoencoder of its own: measure it with the shipped one
    from xai_widgets.zoo import load_autoencoder
    ae = load_autoencoder()
    with torch.no_grad():
        wachter = [torch.nn.functional.mse_loss(ae(torch.tensor(cf.image)[None]), torch.tensor(cf.image)[None]).item()
                   for cf in (counterfactual(model, x, target=t, method="wachter")
                              for x, t in zip(images[:6], (9, 3, 7, 1, 5, 8)))]
    assert errors["prototype"] < np.mean(wachter)


@pytest.mark.parametrize("kwargs, match", [
    ({"target": 10}, "out of range"),
    ({"target": 3, "method": "dice"}, "unknown counterfactual method"),
    ({"target": 3, "method": "prototype"}, "needs reference images"),
    ({"target": 3, "lam": -1.0}, "lam must be in"),
    ({"target": 3, "steps": 3}, "no parameter 'steps'"),
])
def test_bad_requests(model, image, kwargs, match):
    with pytest.raises(InputError, match=match):
        counterfactual(model, image, **kwargs)


def test_one_vs_one_integrated_gradients_is_complete(model, image, reference):
    """Why A, not B: IG from B's counterfactual x′ sums to f(x) − f(x′) for A and for B."""
    a = int(model(image[None]).argmax())
    b = 9
    e = explain(model, image, method="integrated_gradients", baseline=f"counterfactual:{b}",
                data=reference, n_steps=200)
    x_prime = torch.tensor(e.baseline_image)[None]
    assert int(model(x_prime).argmax()) == b
    with torch.no_grad():
        gap = (model(image[None]) - model(x_prime))[0].numpy()
    sums = e.attributions.sum(axis=(1, 2))
    for cls in (a, b):
        assert abs(sums[cls] - gap[cls]) <= 0.01 * np.abs(gap).max()
    assert e.baseline == f"counterfactual:{b}"


def test_counterfactual_baseline_errors(model, image):
    with pytest.raises(InputError, match="counterfactual:B"):
        explain(model, image, method="deeplift", baseline="counterfactual:x")
    with pytest.raises(InputError, match="out of range"):
        explain(model, image, method="deeplift", baseline="counterfactual:12")
    with pytest.raises(InputError, match="unknown counterfactual method"):
        explain(model, image, method="deeplift", baseline="counterfactual:3:dice")
