"""CFRL: one-pass counterfactuals from a trained actor (the shipped one for the demo CNN)."""

import copy

import numpy as np
import pytest
import torch

from tests.conftest import assert_untouched, checksum
from xai_widgets import InputError, counterfactual
from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import Cancelled
from xai_widgets.methods.cfrl import (
    CFRLActor,
    all_classes,
    cfrl_counterfactuals,
    fingerprint,
    train_cfrl,
)
from xai_widgets.zoo import MnistCNN, load_autoencoder
from xai_widgets.zoo.cfrl_actor import load_cfrl_actor


@pytest.fixture(scope="module")
def actor():
    return load_cfrl_actor("mnist")


@pytest.fixture(scope="module")
def tiny(demo):
    """An actor trained for 3 steps: it barely moves x, so most of its x′ fail."""
    calls = []
    trained = train_cfrl(demo[0], demo[1][500:564], steps=3, batch_size=8,
                         progress=lambda *a: calls.append(a))
    return trained, calls


def test_shipped_actor_is_valid_on_held_out_digits(model, images, actor):
    adapter = ModelAdapter(model)
    rng = np.random.default_rng(1)
    with torch.no_grad():
        predicted = model(images[:50]).argmax(1).tolist()
    found = [cfrl_counterfactuals(adapter, images[i:i + 1],
                                  [int(rng.choice([c for c in range(10) if c != p]))], actor)[0]
             for i, p in enumerate(predicted)]
    assert np.mean([cf.success for cf in found]) >= 0.85
    for cf in found:
        assert 0.0 <= cf.image.min() and cf.image.max() <= 1.0
        assert cf.path.shape == (21, 1, 28, 28) and cf.reconstruction_error is not None


def test_all_classes_equals_single_calls(model, image, actor):
    batch = all_classes(model, image, actor=actor)
    predicted = int(model(image[None]).argmax())
    assert sorted(batch) == [c for c in range(10) if c != predicted]
    for target, cf in batch.items():
        single = counterfactual(model, image, target=target, method="cfrl")
        assert cf.success == single.success and cf.target == single.target == target
        np.testing.assert_allclose(cf.image, single.image, atol=1e-5)
        np.testing.assert_allclose(cf.path_probabilities, single.path_probabilities, atol=1e-5)
        assert cf.l0 == single.l0 and cf.l1 == pytest.approx(single.l1, rel=1e-4)


def test_counterfactual_uses_the_shipped_actor(model, images, actor):
    for i, target in ((0, 3), (1, 8)):
        shipped = counterfactual(model, images[i], target=target, method="cfrl")
        given = counterfactual(model, images[i], target=target, method="cfrl", actor=actor)
        direct = cfrl_counterfactuals(ModelAdapter(model), images[i][None], [target], actor)[0]
        for other in (given, direct):
            np.testing.assert_array_equal(shipped.image, other.image)
            assert shipped.success == other.success and shipped.method == "cfrl"
        assert int(model(torch.tensor(shipped.image)[None]).argmax()) == int(
            shipped.path_probabilities[-1].argmax())
        np.testing.assert_allclose(shipped.path[0], images[i].numpy(), atol=1e-6)
        np.testing.assert_allclose(shipped.path[-1], shipped.image, atol=1e-6)


def test_other_model_raises_input_error_naming_the_fix(image, actor):
    with pytest.raises(InputError, match=r"train_cfrl\(model, images\)"):
        counterfactual(MnistCNN(), image, target=3, method="cfrl")
    with pytest.raises(InputError, match="other model weights"):
        counterfactual(MnistCNN(), image, target=3, method="cfrl", actor=actor)
    with pytest.raises(InputError, match="CFRLActor"):
        counterfactual(MnistCNN(), image, target=3, method="cfrl", actor="mnist")


def test_a_failure_says_so(model, images, tiny):
    found = [counterfactual(model, images[i], target=t, method="cfrl", actor=tiny[0])
             for i, t in ((0, 1), (1, 5), (2, 4))]
    failed = [cf for cf in found if not cf.success]
    assert failed
    for cf in failed:
        final = int(cf.path_probabilities[-1].argmax())
        assert final != cf.target and f"still class {final}" in cf.message
        assert int(model(torch.tensor(cf.image)[None]).argmax()) == final


def test_target_already_predicted_returns_x(model, image):
    predicted = int(model(image[None]).argmax())
    cf = counterfactual(model, image, target=predicted, method="cfrl")
    assert cf.success and cf.l1 == 0 and "already" in cf.message


def test_model_and_input_untouched(demo, image, actor):
    model = copy.deepcopy(demo[0]).train()
    before, x = checksum(model), image.clone()
    counterfactual(model, image, target=5, method="cfrl")
    all_classes(model, image)
    train_cfrl(model, demo[1][:16], steps=1, batch_size=4)
    assert_untouched(model, before)
    assert torch.equal(image, x)


def test_training_reports_progress_and_can_be_cancelled(demo, tiny):
    trained, calls = tiny
    assert [c[:2] for c in calls] == [(3, 3)] and 0.0 <= calls[0][2] <= 1.0
    assert trained.model_fingerprint == fingerprint(demo[0]) and len(trained.history) == 3
    with pytest.raises(Cancelled):
        train_cfrl(demo[0], demo[1][:16], steps=5, batch_size=4, cancelled=lambda: True)
    with pytest.raises(InputError, match="sparsity must be in"):
        train_cfrl(demo[0], demo[1][:16], steps=1, sparsity=-1.0)


def test_save_and_load(tmp_path, model, image, tiny):
    path = tmp_path / "actor.pt"
    tiny[0].save(path)
    loaded = CFRLActor.load(path)
    assert loaded.model_fingerprint == tiny[0].model_fingerprint
    a = counterfactual(model, image, target=4, method="cfrl", actor=tiny[0])
    b = counterfactual(model, image, target=4, method="cfrl", actor=loaded)
    np.testing.assert_allclose(a.image, b.image, atol=1e-6)
    other = load_autoencoder("mnist")
    with torch.no_grad():
        other.decoder[0].bias.add_(1.0)
    with pytest.raises(InputError, match="another autoencoder"):
        CFRLActor.load(path, autoencoder=other)


def test_bad_parameter(model, image):
    with pytest.raises(InputError, match="no parameter 'max_steps'"):
        counterfactual(model, image, target=3, method="cfrl", max_steps=3)
