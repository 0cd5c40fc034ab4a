import pytest
import torch
from captum.influence import NaiveInfluenceFunction, TracInCPFast
from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import assert_untouched, checksum
from xai_widgets import InputError
from xai_widgets.errors import Cancelled
from xai_widgets.influence import Influencer, proponents
from xai_widgets.influence_functions import choose_method
from xai_widgets.zoo import load_clever_hans, load_clever_hans_training

pytestmark = pytest.mark.usefixtures("one_thread")  # captum's many small ops


@pytest.fixture(scope="module")
def training():
    images, labels, tagged, _ = load_clever_hans_training()
    return images[:500], labels[:500], tagged[:500]


def test_scores_equal_captum_and_model_untouched(training):
    images, labels, _ = training
    model = load_clever_hans().model.train()  # training mode on purpose: must stay so
    before = checksum(model)
    twin_state = load_clever_hans_training(twin=True)[3]
    checkpoints = [twin_state[0], twin_state[-1]]
    influencer = Influencer(model, images, labels, checkpoints, batch_size=128,
                            normalize=False)
    result = influencer.query(images[3], k=5, target=7)
    assert result.target == 7 and result.scores.shape == (500,)
    assert torch.equal(result.proponents, torch.argsort(result.scores, descending=True)[:5])
    assert torch.equal(result.opponents, torch.argsort(result.scores)[:5])
    assert isinstance(influencer.tracin, TracInCPFast)
    theirs = influencer.tracin.influence((images[3:4], torch.tensor([7])), k=None)[0]
    torch.testing.assert_close(result.scores, theirs, rtol=1e-4, atol=1e-4)
    # renormalised: each checkpoint's term over the training image's gradient norm
    renormalised = Influencer(model, images, labels, checkpoints, batch_size=128)
    one = Influencer(model, images, labels, checkpoints[-1:], normalize=False)
    grads, inputs = renormalised.cache[-1]
    alone = Influencer(model, images, labels, checkpoints[-1:]).scores(images[3], 7)[0]
    norms = (grads.norm(dim=1) * inputs.norm(dim=1)).clamp_min(1e-12)
    torch.testing.assert_close(alone, one.scores(images[3], 7)[0] / norms, rtol=1e-4, atol=1e-6)
    assert renormalised.scores(images[3], 7)[0].shape == (500,)
    assert_untouched(model, before)


def test_default_target_is_prediction_and_single_checkpoint(training):
    images, labels, _ = training
    model = load_clever_hans().model
    result = proponents(model, images[0], images[:200], labels[:200], k=3)  # auto: naive
    with torch.no_grad():
        assert result.target == int(model(images[:1]).argmax(1))
    assert len(result.proponents) == len(result.opponents) == 3


def test_checkpoint_paths(training, tmp_path):
    images, labels, _ = training
    model = load_clever_hans().model
    torch.save(model.state_dict(), tmp_path / "final.pt")
    by_path = proponents(model, images[1], images, labels, checkpoints=[tmp_path / "final.pt"])
    default = proponents(model, images[1], images, labels, method="tracin")
    torch.testing.assert_close(by_path.scores, default.scores)


def test_progress_and_cancel(training):
    images, labels = training[0][:250], training[1][:250]
    model = load_clever_hans().model
    calls = []
    Influencer(model, images, labels, batch_size=50, method="tracin",
               progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (5, 5)
    with pytest.raises(Cancelled):
        Influencer(model, images, labels, method="tracin", cancelled=lambda: True)
    calls.clear()  # naive: one Hessian pass, then one embedding pass, over 5 batches
    Influencer(model, images, labels, batch_size=50, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(d, 10) for d in range(1, 11)]
    for after in (0, 3, 7):  # before, during the Hessian, during the embeddings
        asked = []
        with pytest.raises(Cancelled):
            Influencer(model, images, labels, batch_size=50,
                       cancelled=lambda asked=asked, after=after: asked.append(1)
                       or len(asked) > after)
        assert len(asked) == after + 1


def test_errors(training):
    images, labels, _ = training
    model = load_clever_hans().model
    with pytest.raises(InputError, match="N,C,H,W"):
        Influencer(model, images[:, 0], labels)
    with pytest.raises(InputError, match="missing"):
        Influencer(model, images, None)
    with pytest.raises(InputError, match="one per"):
        Influencer(model, images, labels[:-1])
    bad = dict(model.state_dict())
    bad["fc2.weight"] = torch.zeros(3, 50)
    with pytest.raises(InputError, match=r"checkpoint 0 does not fit.*fc2\.weight"):
        Influencer(model, images, labels, [bad])
    with pytest.raises(InputError, match=r"checkpoint 0 does not fit.*missing conv1.weight"):
        Influencer(model, images, labels, [{"fc2.bias": torch.zeros(10)}])
    with pytest.raises(InputError, match="no file"):
        Influencer(model, images, labels, ["/nonexistent.pt"])
    influencer = Influencer(model, images[:50], labels[:50])
    with pytest.raises(InputError, match="shaped like"):
        influencer.query(torch.zeros(1, 14, 14))
    with pytest.raises(InputError, match="k must be"):
        influencer.query(images[0], k=0)
    with pytest.raises(InputError, match="unknown method 'lissa'"):
        Influencer(model, images, labels, method="lissa")
    state = model.state_dict()
    with pytest.raises(InputError, match="at most one checkpoint"):
        Influencer(model, images, labels, [state, state], method="naive")
    with pytest.raises(InputError, match="no learning_rates"):
        Influencer(model, images, labels, [state], method="arnoldi", learning_rates=[0.1])
    with pytest.raises(InputError, match=r"nn\.Linear or nn\.Conv2d.*'relu3' is a ReLU"):
        Influencer(model, images, labels, method="naive", layer="relu3")
    with pytest.raises(InputError, match=r"nn\.Linear layer; 'conv1' is a Conv2d"):
        Influencer(model, images, labels, [state], layer="conv1")
    with pytest.raises(InputError, match="too large"):
        choose_method("naive", None, torch.nn.Linear(320, 64))
    with pytest.raises(InputError, match="batch_size"):
        Influencer(model, images, labels, batch_size=0)


def test_shipped_training_data():
    images, labels, tagged, checkpoints = load_clever_hans_training()
    assert images.shape == (4000, 1, 28, 28) and checkpoints is None
    assert bool((labels[tagged] == 7).all())
    assert int(tagged.sum()) == round(0.9 * (labels == 7).sum().item())
    assert bool((images[tagged][:, 0, 1:5, 1:5] == 1).all())
    clean, _, none, twin = load_clever_hans_training(twin=True)
    assert not none.any() and len(twin) == 4
    assert torch.equal(clean[~tagged], images[~tagged])
    shipped = load_clever_hans().twin.state_dict()
    assert all(torch.equal(shipped[k], twin[-1][k]) for k in shipped)


@pytest.mark.parametrize("method, size", [("naive", 200), ("arnoldi", 40)])
def test_influence_functions_equal_captum(training, method, size):
    images, labels = training[0][:size], training[1][:size]
    model = load_clever_hans().model.train()
    before, rng = checksum(model), torch.random.get_rng_state()
    influencer = Influencer(model, images, labels, method=method, normalize=False,
                            batch_size=size // 2)
    kind = NaiveInfluenceFunction if method == "naive" else ArnoldiInfluenceFunction
    assert influencer.method == method and isinstance(influencer.captum, kind)
    result = influencer.query(images[3], k=5, target=7)
    assert torch.equal(rng, torch.random.get_rng_state())  # captum seeds; we fork the RNG
    theirs = influencer.captum.influence((images[3:4], torch.tensor([7])))[0]
    torch.testing.assert_close(result.scores, theirs, rtol=1e-4, atol=1e-5)
    # renormalised (RelatIF): over sqrt(captum's self-influence of each training image)
    self_influence = influencer.captum.self_influence(
        DataLoader(TensorDataset(images, labels), batch_size=size))
    torch.testing.assert_close(influencer.norms ** 2, self_influence, rtol=1e-4, atol=1e-5)
    influencer.normalize = True
    torch.testing.assert_close(influencer.scores(images[3], 7)[0],
                               theirs / self_influence.sqrt(), rtol=1e-4, atol=1e-5)
    assert_untouched(model, before)


def test_auto_choice(training):
    images, labels, _ = training
    model = load_clever_hans().model
    auto = Influencer(model, images[:100], labels[:100])
    assert auto.method == "naive" and isinstance(auto.captum, NaiveInfluenceFunction)
    tracin = Influencer(model, images[:100], labels[:100], [model.state_dict()])
    assert tracin.method == "tracin" and isinstance(tracin.captum, TracInCPFast)
    assert choose_method("auto", None, model.fc1) == "tracin"  # 16050 parameters
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2))
    torch.nn.init.zeros_(flat[1].weight)
    flat[1].bias.data = torch.tensor([30.0, 0.0])  # a constant, confident model: H ~ 0
    zeros = torch.zeros(20, dtype=torch.long)
    assert Influencer(flat, images[:20], zeros).method == "tracin"  # auto falls back
    with pytest.raises(InputError, match="no positive eigenvalues"):
        Influencer(flat, images[:20], zeros, method="naive")
    one = Influencer(model, images[:100], labels[:100], [model.state_dict()], method="naive")
    torch.testing.assert_close(one.scores(images[0], 7)[0], auto.scores(images[0], 7)[0])
