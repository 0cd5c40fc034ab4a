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


TARGETS = (9, 3, 7, 1, 5, 8)  # the class searched for images[i]


@pytest.fixture(scope="module")
def search(demo, reference):
    """``search(method, i)``: the counterfactual of images[i] for TARGETS[i] with the
    reference images, computed once for the module (the searches are deterministic). Each
    search is checked when it runs: x and the model untouched, no gradient left on it."""
    model, images = demo[0], demo[1]
    found = {}

    def run(method: str, i: int):
        if (method, i) not in found:
            x = images[i]
            x_before, model_before = x.clone(), checksum(model)
            found[method, i] = counterfactual(model, x, target=TARGETS[i], method=method,
                                              data=reference)
            assert torch.equal(x, x_before) and checksum(model) == model_before
            assert all(p.grad is None for p in model.parameters())
        return found[method, i]

    return run


def assert_honest(model, cf, target: int) -> None:
    """Success (x′ is the target class, and the message says in how many steps) or a failure
    that says why: out of budget, and what the model still says. A search may run out of
    steps (its numerics differ between torch versions); it must never claim a success that
    is not one, nor fail without saying why."""
    final = int(cf.path_probabilities[-1].argmax())
    with torch.no_grad():
        assert int(model(torch.tensor(cf.image)[None]).argmax()) == final
    if cf.success:
        assert final == target and f"→ {target} in" in cf.message, cf.message
    else:
        assert final != target, cf.message
        assert f"no counterfactual for class {target}" in cf.message, cf.message
        assert f"within {cf.params['max_steps']} steps" in cf.message, cf.message
        assert f"still says {final}" in cf.message and "max_steps" in cf.message, cf.message


@pytest.mark.parametrize("method", METHODS)
def test_a_reported_success_is_real(model, images, search, method):
    for i in range(4):
        x, target = images[i], TARGETS[i]
        cf = search(method, i)
        assert_honest(model, cf, target)
        assert 0.0 <= cf.image.min() and cf.image.max() <= 1.0  # the input's value range
        assert cf.path.shape == (21, 1, 28, 28) and cf.path_probabilities.shape == (21, 10)
        np.testing.assert_allclose(cf.path[0], x.numpy(), atol=1e-6)
        np.testing.assert_allclose(cf.path[-1], cf.image, atol=1e-6)
        assert cf.l1 == pytest.approx(np.abs(cf.image - x.numpy()).sum(), rel=1e-4)
        assert cf.seconds > 0
        if cf.success:
            assert cf.l0 > 0


def test_target_already_predicted_returns_x(model, image):
    predicted = int(model(image[None]).argmax())
    cf = counterfactual(model, image, target=predicted)
    assert cf.success and cf.l1 == 0 and "already" in cf.message
    np.testing.assert_array_equal(cf.image, image.numpy())


@pytest.mark.parametrize("method", METHODS)
def test_an_impossible_budget_returns_failure_not_an_exception(model, image, reference, method):
    cf = counterfactual(model, image, target=7, method=method, data=reference, max_steps=1)
    assert not cf.success and "max_steps" in cf.message


def test_prototype_counterfactuals_are_more_in_distribution(model, search):
    """Lower reconstruction error under the autoencoder than Wachter's, on average."""
    prototype = [search("prototype", i).reconstruction_error for i in range(len(TARGETS))]
    assert None not in prototype  # the prototype search measures it with its autoencoder
    # wachter has no autoencoder of its own: measure it with the shipped one
    from xai_widgets.zoo import load_autoencoder
    ae = load_autoencoder()
    with torch.no_grad():
        wachter = []
        for i in range(len(TARGETS)):
            image = torch.tensor(search("wachter", i).image)[None]
            wachter.append(torch.nn.functional.mse_loss(ae(image), image).item())
    assert np.mean(prototype) < np.mean(wachter)


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
    try:
        e = explain(model, image, method="integrated_gradients",
                    baseline=f"counterfactual:{b}", data=reference, n_steps=200)
    except InputError as error:  # no x′ within the search's budget: said so, not a bad x′
        assert f"no counterfactual baseline for class {b}" in str(error), str(error)
        assert "max_steps" in str(error), str(error)
        return
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
