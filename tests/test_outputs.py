"""Outputs and conventions users bring: tuple/dict/ModelOutput returns, one binary logit,
float64 and half models, channels-last models, two-input forwards, NaN scores, torchvision
``weights=``. Every form is read without a wrapper and gives the maps of the plain model."""

from collections import OrderedDict, namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import max_relative_difference
from tests.real_models import import_torchvision
from xai_widgets import InputError, explain
from xai_widgets.adapter import ModelAdapter

METHODS = ["saliency", "integrated_gradients", "occlusion", "deeplift", "lrp"]
OPTIONS = {"integrated_gradients": {"n_steps": 16}, "occlusion": {"window": 3, "stride": 2}}


def small_net(channels: int = 1, classes: int = 4, seed: int = 0) -> nn.Sequential:
    """Conv, ReLU, max-pool, linear: every method above applies (LRP included)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, classes)).eval()


@pytest.fixture(scope="module")
def net():
    return small_net()


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.rand(1, 12, 12)


@dataclass
class FakeModelOutput(OrderedDict):
    """Like a Hugging Face ModelOutput: a dict whose entries are also attributes."""

    logits: torch.Tensor = None
    hidden_states: tuple = None

    def __post_init__(self):
        self["logits"] = self.logits
        if self.hidden_states is not None:
            self["hidden_states"] = self.hidden_states


Named = namedtuple("Named", ["features", "logits"])


class Returns(nn.Module):
    """The plain net, returning its scores in another container."""

    def __init__(self, net: nn.Module, form: str):
        super().__init__()
        self.net, self.form = net, form

    def forward(self, x):
        scores = self.net(x)
        features = x.flatten(1)  # a second output that uses no layer twice (LRP)
        return {
            "tuple": lambda: (scores, features),
            "list": lambda: [scores, features],
            "dict logits": lambda: {"features": features, "logits": scores, "n": 3},
            "dict single": lambda: {"scores": scores, "name": "net"},
            "ModelOutput": lambda: FakeModelOutput(logits=scores, hidden_states=(features,)),
            "namedtuple": lambda: Named(features, scores),  # .logits, not the first element
        }[self.form]()


FORMS = {"tuple": "a tuple: its first element", "list": "a list: its first element",
         "dict logits": "'logits' entry", "dict single": "only tensor, 'scores'",
         "ModelOutput": "FakeModelOutput: its .logits", "namedtuple": "Named: its .logits"}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("form", list(FORMS))
def test_wrapped_outputs_give_the_plain_maps(net, x, form, method):
    plain = explain(net, x, method=method, **OPTIONS.get(method, {}))
    e = explain(Returns(net, form), x, method=method, **OPTIONS.get(method, {}))
    assert max_relative_difference(e.raw, plain.raw) <= 1e-5
    np.testing.assert_allclose(e.probabilities, plain.probabilities, rtol=1e-6)
    assert any(FORMS[form] in note and "class scores" in note for note in e.notes), e.notes


def test_unreadable_outputs_name_what_they_got(net, x):
    class Both(nn.Module):
        def forward(self, x):
            return {"a": net(x), "b": net(x)}

    with pytest.raises(InputError, match=r"keys \['a', 'b'\] and no 'logits' entry"
                                         r".*model\(x\)\[key\]"):
        explain(Both(), x, method="saliency")

    class Named(nn.Module):
        def forward(self, x):
            return ("scores", net(x))

    with pytest.raises(InputError, match="first element is str, not a tensor"):
        explain(Named(), x, method="saliency")

    class Text(nn.Module):
        def forward(self, x):
            return "cat"

    with pytest.raises(InputError, match=r"returned a str.*\(batch, n_classes\) tensor"):
        explain(Text(), x, method="saliency")


# -- one binary logit --------------------------------------------------------------------------
def test_single_logit_is_a_binary_classifier(x):
    binary = small_net(classes=1)
    z = float(binary(x[None])[0, 0].detach())
    e = explain(binary, x, method="saliency", absolute=False)
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(e.probabilities, [1 - p, p], rtol=1e-5)
    assert e.targets == [0, 1] and e.attributions.shape == (2, 12, 12)
    assert np.abs(e.attributions[0]).max() == 0  # class 0's score is the constant 0
    image = x[None].clone().requires_grad_(True)
    binary(image)[0, 0].backward()
    np.testing.assert_allclose(e.attributions[1], image.grad[0, 0].numpy(), rtol=1e-5, atol=1e-7)
    assert any("binary classifier's logit z" in note for note in e.notes)


def test_single_logit_integrated_gradients_is_complete(x):
    e = explain(small_net(classes=1), x, method="integrated_gradients", n_steps=64)
    assert e.completeness_error < 0.01


def test_squeezed_logit_and_trailing_sigmoid(x):
    binary = small_net(classes=1)

    class Squeezed(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = binary

        def forward(self, x):
            return self.net(x).squeeze(1)

    reference = explain(binary, x, method="saliency", absolute=False)
    squeezed = explain(Squeezed(), x, method="saliency", absolute=False)
    np.testing.assert_allclose(squeezed.probabilities, reference.probabilities, rtol=1e-6)
    np.testing.assert_allclose(squeezed.raw, reference.raw, rtol=1e-6)
    # a Sequential that ends in Sigmoid: the logit before it is attributed, p is the model's
    with_sigmoid = nn.Sequential(*binary, nn.Sigmoid())
    p = float(with_sigmoid(x[None])[0, 0].detach())
    e = explain(with_sigmoid, x, method="saliency", absolute=False)
    np.testing.assert_allclose(e.probabilities, [1 - p, p], rtol=1e-5)
    np.testing.assert_allclose(e.raw, reference.raw, rtol=1e-6)
    assert any("ends in Sigmoid" in note for note in e.notes)


def test_single_probability_declared(x):
    binary = small_net(classes=1)

    class Probability(nn.Module):
        def forward(self, x):
            return torch.sigmoid(binary(x))

    p = float(torch.sigmoid(binary(x[None]))[0, 0].detach())
    e = explain(Probability(), x, method="saliency", output="probabilities", absolute=False)
    np.testing.assert_allclose(e.probabilities, [1 - p, p], rtol=1e-5)
    np.testing.assert_allclose(e.attributions[0], -e.attributions[1], rtol=1e-6)
    assert any("[1 − p, p]" in note for note in e.notes)
    # undeclared, the same output is read as a logit, and the notes suggest the declaration
    undeclared = explain(Probability(), x, method="saliency")
    assert any("pass output='probabilities'" in note for note in undeclared.notes)
    with torch.no_grad():
        binary[-1].bias -= 3  # a logit outside 0..1: no suggestion
    assert not any("pass output=" in note for note in explain(binary, x, method="saliency").notes)


def test_multi_label_sigmoid_is_left_alone(x):
    net = nn.Sequential(*small_net(classes=3), nn.Sigmoid())
    scores = net(x[None])[0].detach()
    e = explain(net, x, method="saliency")
    np.testing.assert_allclose(e.probabilities, torch.softmax(scores, 0).numpy(), rtol=1e-5)


# -- dtypes ------------------------------------------------------------------------------------
def test_float64_model(net, x):
    wide = small_net().double()
    before = [p.clone() for p in wide.parameters()]
    # integrated gradients: float32 path points near max-pool ties may pick another pixel
    for method, tolerance in (("saliency", 1e-6), ("integrated_gradients", 2e-3)):
        plain = explain(net, x, method=method)
        e = explain(wide, x, method=method)
        assert e.attributions.dtype == np.float32 and e.raw.dtype == np.float32
        assert max_relative_difference(e.raw, plain.raw) <= tolerance
        np.testing.assert_allclose(e.probabilities, plain.probabilities, rtol=1e-5)
        if method == "integrated_gradients":
            assert e.completeness_error < 0.01
    assert all(p.dtype == torch.float64 and torch.equal(p, b)
               for p, b in zip(wide.parameters(), before, strict=True))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_models(net, x, dtype):
    half = small_net().to(dtype)
    plain = explain(net, x, method="saliency")
    e = explain(half, x, method="saliency")
    assert e.attributions.dtype == np.float32 and np.isfinite(e.raw).all()
    # half precision flips some max-pool winners: the maps agree, not to the last digit
    assert np.corrcoef(e.raw.ravel(), plain.raw.ravel())[0, 1] > 0.95
    np.testing.assert_allclose(e.probabilities, plain.probabilities, atol=0.02)


# -- channels last -----------------------------------------------------------------------------
class ChannelsLast(nn.Module):
    """A model that takes (N,H,W,C) batches, as ported Keras/TF models do."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        assert x.shape[-1] == 3, f"expected (N,H,W,3), got {tuple(x.shape)}"
        return self.net(x.permute(0, 3, 1, 2))


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "occlusion", "grad_cam"])
def test_channels_last_model(method):
    net = small_net(channels=3)
    torch.manual_seed(2)
    image = torch.rand(3, 12, 12)
    plain = explain(net, image, method=method, **OPTIONS.get(method, {}))
    hwc = image.permute(1, 2, 0).numpy()  # what a channels-last user holds
    e = explain(ChannelsLast(net), hwc, method=method, layout="NHWC", **OPTIONS.get(method, {}))
    assert e.image.shape == (3, 12, 12) and e.raw.shape == plain.raw.shape
    assert max_relative_difference(e.raw, plain.raw) <= 1e-5
    assert any("channels-last" in note for note in e.notes)


def test_channels_last_with_preprocess_and_passed_on():
    net = small_net(channels=3)
    image = torch.rand(3, 12, 12)
    def preprocess(batch):  # runs on (N,C,H,W)
        return (batch - 0.5) / 0.25
    plain = explain(net, image, method="saliency", preprocess=preprocess)
    e = explain(ChannelsLast(net), image, method="saliency", layout="nhwc", preprocess=preprocess)
    assert max_relative_difference(e.raw, plain.raw) <= 1e-6
    # adapter.preprocess carries the permute: an adapter built from it (as sanity checks do)
    # calls the model the same way
    adapter = ModelAdapter(ChannelsLast(net), preprocess=preprocess, layout="NHWC")
    again = ModelAdapter(ChannelsLast(net), preprocess=adapter.preprocess)
    batch = image[None]
    torch.testing.assert_close(again.logits(batch), adapter.logits(batch))
    torch.testing.assert_close(adapter.logits(batch), ModelAdapter(net, preprocess).logits(batch))


def test_layout_is_validated(net, x):
    with pytest.raises(InputError, match=r"layout must be 'NCHW'.*or 'NHWC'.*got 'CHW'"):
        explain(net, x, layout="CHW")
    with pytest.raises(InputError, match="layout must be"):
        ModelAdapter(net, layout=None)


# -- two inputs --------------------------------------------------------------------------------
def test_two_input_forward_is_refused_with_the_fix(net, x):
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, mask):
            return self.net(x * mask)

    with pytest.raises(InputError, match=r"forward takes 2 inputs \(x, mask\): wrap it in a "
                                         r"Module whose forward takes one image batch, e\.g\."):
        explain(Masked(), x, method="saliency")

    class Optional(Masked):
        def forward(self, x, mask=None, *, scale=1.0):
            return self.net(x if mask is None else x * mask) * scale

    e = explain(Optional(), x, method="saliency")
    assert e.attributions.shape == (4, 12, 12)


# -- NaN and infinite scores -------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_scores_raise(net, x, bad):
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            scores = self.net(x)
            return scores + torch.tensor([0.0, bad, 0.0, 0.0])

    with pytest.raises(InputError, match=r"the model returned NaN or infinite scores for this "
                                         r"image: .*check its weights"):
        explain(Broken(), x, method="integrated_gradients")


# -- torchvision weights= ----------------------------------------------------------------------
class FakeWeights:
    """A WeightsEnum member's interface without weights to download."""

    def __init__(self, categories):
        self.meta = {"categories": categories, "num_params": 0}

    def transforms(self):
        presets = import_torchvision().transforms._presets
        return presets.ImageClassification(crop_size=224, resize_size=232)


def rgb_net(classes: int = 5) -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(64, classes)).eval()


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(0).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)


def test_weights_resize_crop_and_classes(photo):
    tv = import_torchvision()
    tf = tv.transforms.functional
    weights = FakeWeights(["tench", "goldfish", "shark", "tiger shark", "hammerhead"])
    adapter = ModelAdapter(rgb_net(), weights=weights)
    image, notes = adapter.image(photo)
    assert tuple(image.shape) == (1, 3, 224, 224)
    assert adapter.classes == weights.meta["categories"]
    assert any("resized to 232×309 and centre-cropped to 224×224" in n for n in notes), notes
    # the same geometry as torchvision's functional resize and centre crop
    chw = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    manual = tf.center_crop(tf.resize(chw, [232], antialias=True), [224])
    torch.testing.assert_close(image[0], manual, rtol=0, atol=1e-6)
    # and, through the normalisation, the input weights.transforms() gives the model
    # (torchvision resizes the uint8 photo and rounds: within half a grey level / std)
    preset = weights.transforms()(torch.from_numpy(photo).permute(2, 0, 1))
    torch.testing.assert_close(adapter.preprocess(image)[0], preset, rtol=0, atol=0.6 / 255 / 0.224)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "grad_cam"])
def test_weights_maps_equal_manual_preprocessing(photo, method):
    tf = import_torchvision().transforms.functional
    weights = FakeWeights(list("abcde"))
    model = rgb_net()
    options = {"n_steps": 8} if method == "integrated_gradients" else {}
    e = explain(model, photo, method=method, weights=weights, targets=[0, 3], **options)
    chw = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    manual = tf.center_crop(tf.resize(chw, [232], antialias=True), [224])
    def normalise(b):
        return tf.normalize(b, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    reference = explain(model, manual, method=method, preprocess=normalise, targets=[0, 3],
                        **options)
    assert e.raw.shape == (2, 3, 224, 224) and e.classes == list("abcde")
    assert max_relative_difference(e.raw, reference.raw) <= 1e-5
    np.testing.assert_allclose(e.probabilities, reference.probabilities, rtol=1e-5)


def test_weights_data_and_errors(photo):
    weights = FakeWeights(list("abcde"))
    e = explain(rgb_net(), photo, method="integrated_gradients", weights=weights, n_steps=4,
                baseline="mean", data=[photo, photo[::-1].copy()], targets=0)
    assert e.baseline_image.shape == (3, 224, 224)
    with pytest.raises(InputError, match=r"either weights=.*or preprocess=, not both"):
        explain(rgb_net(), photo, weights=weights, preprocess=lambda b: b)
    with pytest.raises(InputError, match="weights must be a torchvision weights member"):
        explain(rgb_net(), photo, weights="IMAGENET1K_V1")
    # an image already of the crop size is explained as it is (never processed twice)
    adapter = ModelAdapter(rgb_net(), weights=weights)
    shown, _ = adapter.image(photo)
    again, notes = adapter.image(shown)
    torch.testing.assert_close(again, shown)
    assert any("already 224×224" in n for n in notes)
