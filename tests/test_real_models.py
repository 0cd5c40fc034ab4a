"""Every method on real architectures: a finite, non-constant map of the image's shape, or a
reason from ``methods.available`` before anything runs; the user's weights, training flags
and gradients untouched; nothing but InputError reaches the user.

The matrix: torchvision ResNet-18, MobileNetV3-small, EfficientNet-B0, ConvNeXt-tiny and
ViT-B/16 (random weights, 64×64 images, 1000 classes) and a tiny Hugging Face ViT (32×32,
10 classes) × every registered method, with cheap parameters and one target (the
prediction). ``REFUSED`` is the expected outcome table: a method that starts refusing, or
starts running where it should refuse, fails here.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.real_models import hf_vit, import_torchvision, rgb_image, torchvision_model
from xai_widgets import InputError, explain, methods
from xai_widgets.adapter import ModelAdapter
from xai_widgets.budget import measure
from xai_widgets.methods import cam_methods, captum_methods, lrp_methods, registry
from xai_widgets.zoo import load_demo

import_torchvision()  # skips the module when torchvision is missing

SIZES = {"hf_vit": 32}  # the rest: 64×64
ARCHITECTURES = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny",
                 "vit_b_16", "hf_vit"]
TRANSFORMER_ONLY = {"attention_rollout", "attention_relevance"}
REFUSED = {  # architecture -> methods that must give a reason instead of a map
    "resnet18": {"lrp"} | TRANSFORMER_ONLY,
    "mobilenet_v3_small": {"deeplift", "guided_backprop", "lrp", "deep_shap"} | TRANSFORMER_ONLY,
    "efficientnet_b0": {"deeplift", "guided_backprop", "lrp", "deep_shap"} | TRANSFORMER_ONLY,
    "convnext_tiny": {"deeplift", "guided_backprop", "lrp", "deep_shap"} | TRANSFORMER_ONLY,
    "vit_b_16": {"deeplift", "guided_backprop", "lrp", "deep_shap"},
    "hf_vit": {"deeplift", "guided_backprop", "lrp", "deep_shap"},
}
REASON_WORDS = {  # words a reason must contain: it names the cause and where
    ("resnet18", "lrp"): ["LRP here has no rule for the residual addition in layer1.0"],
    ("mobilenet_v3_small", "deep_shap"): ["Hardswish", "SqueezeExcitation"],
    ("efficientnet_b0", "deeplift"): ["SiLU"],
    ("convnext_tiny", "deep_shap"): ["LayerNorm", "features.1.0.block.2"],
    ("vit_b_16", "deep_shap"): ["attention", "encoder.layers.encoder_layer_0.self_attention"],
    ("hf_vit", "deeplift"): ["GELUActivation", "attention"],
    ("hf_vit", "guided_backprop"): ["GELUActivation"],
    ("hf_vit", "lrp"): ["LayerNorm"],
    ("resnet18", "attention_rollout"): ["needs a vision transformer", "no attention layers"],
}


def cheap(method: str, size: int) -> dict:
    """Parameters that keep each method to a fraction of a second on two CPU cores."""
    cell = size // 4
    return {"integrated_gradients": {"n_steps": 4}, "gradient_shap": {"n_samples": 4},
            "occlusion": {"window": cell, "stride": cell},
            "lime": {"n_samples": 50, "segmentation": "grid", "cell": cell},
            "kernel_shap": {"n_samples": 50, "segmentation": "grid", "cell": cell},
            "deep_shap": {"background_size": 2},
            "gradient_explainer": {"background_size": 2, "n_samples": 4},
            # random weights can give no positive evidence at all: the map before the ReLU
            "grad_cam": {"relu": False}}.get(method, {})


@dataclass
class Case:
    model: nn.Module
    image: torch.Tensor
    data: torch.Tensor
    target: int
    reasons: dict


@functools.cache
def case(arch: str) -> Case:
    """The model in a user's state (a gradient on two parameters, one layer in training
    mode), its image, reference images, the predicted class and ``methods.available``."""
    size = SIZES.get(arch, 64)
    model = hf_vit(size) if arch == "hf_vit" else torchvision_model(arch, size)
    params = list(model.parameters())
    for p in (params[0], params[-1]):
        p.grad = torch.full_like(p, 0.5)
    next(m for m in model.modules() if not list(m.children())).train()
    image = rgb_image(size)
    data = torch.stack([image.flip(-1), image.flip(-2)])
    with torch.no_grad():
        target = int(ModelAdapter(model).logits(image[None]).argmax())
    return Case(model, image, data, target, methods.available(model))


def state(model: nn.Module) -> tuple:
    """Weights (storage, version, values), training flags and gradients, for equality."""
    tensors = list(model.state_dict(keep_vars=True).values())
    return (tuple((t.data_ptr(), t._version, float(t.detach().double().abs().sum()))
                  for t in tensors),
            tuple(m.training for m in model.modules()),
            tuple(None if p.grad is None else (id(p.grad), p.grad._version, float(p.grad.sum()))
                  for p in model.parameters()))


@pytest.mark.parametrize("method", methods.names())
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_method_works_or_says_why(arch, method, monkeypatch):
    c = case(arch)
    before = state(c.model)
    size = c.image.shape[-1]
    reason = c.reasons[method]
    kwargs = dict(method=method, targets=[c.target], data=c.data, **cheap(method, size))
    if method in REFUSED[arch]:
        assert reason and len(reason) > 40, reason
        for words in REASON_WORDS.get((arch, method), ()):
            assert words in reason
        spec = registry._REGISTRY[method]

        def never(task):
            raise AssertionError("the method ran although available() refused the model")

        monkeypatch.setitem(registry._REGISTRY, method, dataclasses.replace(spec, compute=never))
        with pytest.raises(InputError, match=f"{method} cannot explain this model"):
            explain(c.model, c.image, **kwargs)
    else:
        assert reason is None
        e = explain(c.model, c.image, **kwargs)
        maps = e.attributions
        assert maps.shape == (1, size, size)
        assert np.isfinite(maps).all()
        assert maps.max() > maps.min(), "a constant map"
    assert state(c.model) == before


# -- what the matrix found, one test each ------------------------------------------------------
def test_lrp_refuses_the_residual_addition_before_running():
    reason = case("resnet18").reasons["lrp"]
    assert reason.startswith("LRP here has no rule for the residual addition in layer1.0 "
                             "(BasicBlock) and 7 more places")


def test_lrp_conservation_check_catches_a_missed_operation(monkeypatch):
    """If the trace missed ResNet's residual additions, the relevance check still refuses
    the map (captum returns values around 1e11 for scores around 1)."""
    c = case("resnet18")
    monkeypatch.setattr(lrp_methods, "lrp_problem", lambda found: None)
    adapter = ModelAdapter(c.model)
    image = c.image[None]
    spec = methods.spec("lrp")
    task = methods.Task(adapter, image, [c.target], spec.resolve({}))
    with (pytest.raises(InputError, match=r"lrp's map sums to .*relevance not conserved"),
          adapter.eval_mode(), torch.enable_grad()):
        spec.compute(task)


@pytest.mark.parametrize("baseline", ["zero", "uniform"])
def test_deeplift_on_resnet_is_complete(baseline):
    """BasicBlock's ReLU(inplace=True) is called twice per block: the copy splits it in two
    out-of-place ReLUs; the overlapping stem max-pool (3, 2, 1) is made non-overlapping.
    Without the split captum's map missed f(x) − f(uniform) by 77 %."""
    c = case("resnet18")
    e = explain(c.model, c.image, method="deeplift", targets=[c.target, 0], baseline=baseline)
    assert e.completeness_error < 1e-3
    relus = [m for m in c.model.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)  # the user's model keeps its own


def test_deep_shap_on_resnet_sums_to_the_gap():
    c = case("resnet18")
    e = explain(c.model, c.image, method="deep_shap", targets=[c.target], data=c.data)
    with torch.no_grad():
        scores = ModelAdapter(c.model).logits(torch.cat([c.image[None], c.data]))[:, c.target]
    gap = float(scores[0] - scores[1:].mean())
    assert abs(float(e.attributions.sum()) - gap) <= 0.01 * abs(gap)
    assert not any("DeepSHAP values sum" in note for note in e.notes)


CALLS: list = []  # module-level: the copies shap receives count here too


class Counted(nn.Module):
    """Wraps a model and counts its forward passes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        CALLS.append(len(x))
        return self.model(x)


@pytest.mark.parametrize("method", ["gradient_explainer", "deep_shap"])
def test_shap_explains_only_the_requested_targets(method):
    """shap explains every output with one pass each: 1000 classes cost 45 s on ResNet-18.
    The model shap sees returns the requested targets only."""
    c = case("resnet18")
    model = Counted(c.model)
    adapter = ModelAdapter(model)
    measure(adapter, adapter.image(c.image)[0])  # the memory budget's one-off probe
    CALLS.clear()
    explain(model, c.image, method=method, targets=[c.target], data=c.data,
            **cheap(method, 64))
    assert len(CALLS) <= 8, CALLS


class FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act = nn.Conv2d(1, 4, 3), nn.ReLU()
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(self.act(F.relu(self.conv(x)) - 0.1).flatten(1))


class Cube(nn.Module):
    """A product of activations (h * h * h) that DeepLift would treat as linear: its map
    would sum to about 3 × f(x) − f(0)."""

    def __init__(self):
        super().__init__()
        self.conv, self.act = nn.Conv2d(1, 4, 3), nn.ReLU()
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        h = self.act(self.conv(x))
        return self.fc((h * h * h).flatten(1))


def test_functional_activations_are_reported_with_their_place(image):
    reasons = methods.available(FunctionalRelu())
    for name in ("deeplift", "deep_shap", "guided_backprop"):
        assert "the functional relu" in reasons[name] and "the model's forward" in reasons[
            name], reasons[name]
    with pytest.raises(InputError, match=r"deeplift cannot explain this model.*functional relu"):
        explain(FunctionalRelu(), image, method="deeplift")
    assert "product of two activations" in methods.available(Cube())["deeplift"]


def test_deeplift_completeness_check_catches_a_missed_operation(image, monkeypatch):
    torch.manual_seed(0)
    model = Cube()
    monkeypatch.setattr(captum_methods, "deeplift_problem", lambda found: None)
    adapter = ModelAdapter(model)
    spec = methods.spec("deeplift")
    x = image.reshape(1, 1, 28, 28)
    task = methods.Task(adapter, x, [0, 1], spec.resolve({}), baseline=torch.zeros_like(x))
    with pytest.raises(InputError, match=r"deeplift's map sums to .*off by"), torch.enable_grad():
        spec.compute(task)


class SharedRelu(nn.Module):
    """One ReLU module called three times, as ResNet's BasicBlock calls its relu twice."""

    def __init__(self, shared: bool):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relus = nn.ModuleList([nn.ReLU(inplace=True)] * 3 if shared else
                                   [nn.ReLU() for _ in range(3)])
        self.fc = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x):
        h = self.relus[0](self.conv1(x))
        h = self.relus[1](self.conv2(h)) + h
        return self.fc(self.relus[2](h).flatten(1))


@pytest.mark.parametrize("method", ["deeplift", "guided_backprop", "deep_shap"])
def test_a_reused_activation_equals_separate_ones(image, method):
    torch.manual_seed(0)
    shared = SharedRelu(shared=True).eval()
    separate = SharedRelu(shared=False).eval()
    separate.load_state_dict(shared.state_dict())
    data = torch.stack([image.flip(-1), image.flip(-2)])
    ours = explain(shared, image, method=method, data=data, baseline="uniform").raw
    reference = explain(separate, image, method=method, data=data, baseline="uniform").raw
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max())


HOOKED = ["deeplift", "guided_backprop", "lrp", "grad_cam", "deep_shap", "saliency"]


def test_compiled_model_equals_the_original(model, images, image):
    """Hook-based methods reach a torch.compile'd model's layers through ``_orig_mod``."""
    compiled = torch.compile(model, backend="eager")
    data = images[100:104]
    assert methods.available(compiled) == methods.available(model)
    for method in HOOKED:
        ours = explain(compiled, image, method=method, data=data, targets=[0, 3])
        reference = explain(model, image, method=method, data=data, targets=[0, 3])
        np.testing.assert_allclose(ours.raw, reference.raw, rtol=1e-4,
                                   atol=1e-6 * np.abs(reference.raw).max(), err_msg=method)
    named = explain(compiled, image, method="grad_cam", layer="conv1", targets=[0])
    assert np.isfinite(named.raw).all()


def test_library_exceptions_become_input_errors(model, image, monkeypatch):
    class Broken:
        def __init__(self, *args):
            pass

        def attribute(self, *args, **kwargs):
            raise RuntimeError("an internal captum failure")

    monkeypatch.setattr(cam_methods, "LayerGradCam", Broken)
    with pytest.raises(InputError, match=r"grad_cam failed on this model: RuntimeError from "
                                         r"captum: an internal captum failure"
                                         r".*integrated_gradients"):
        explain(model, image, method="grad_cam")


def test_available_needs_no_image():
    """available() traces a guessed input (a size the model declares, else 32, 28, 64, 224)."""
    demo_model = load_demo("mnist")[0]
    reasons = methods.available(demo_model)
    assert all(reasons[name] is None for name in reasons if name not in TRANSFORMER_ONLY)
    assert all("no attention layers" in reasons[name] for name in TRANSFORMER_ONLY)
    assert methods.available(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))["lrp"] is None
