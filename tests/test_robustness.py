"""Fragility of explanations: max-sensitivity (parity with captum) and the top-k attack."""

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from captum.metrics import sensitivity_max
from torch import nn

from xai_widgets import robustness
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.methods.gradients import seeded


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_sensitivity_equals_captum(demo, method):
    model, images, _, _ = demo
    x = images[3:4]
    target = int(model(x).argmax())
    attr, kw = (Saliency(model), {}) if method == "saliency" else (
        IntegratedGradients(model), dict(n_steps=16, method="gausslegendre"))
    params = {} if method == "saliency" else dict(n_steps=16)
    r = robustness.sensitivity(model, x[0], method=method, epsilon=0.02, n=6, seed=3, **params)
    with seeded(3, torch.device("cpu")):
        expected = sensitivity_max(attr.attribute, x, perturb_radius=0.02, n_perturb_samples=6,
                                   target=target, **kw)
    assert r.target == target and r.n == 6 and r.method == method
    assert r.value == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    assert "max-sensitivity" in str(r)


def test_attack_keeps_class_and_moves_top_k(demo):
    model, images, _, _ = demo
    for i in (0, 1, 2):
        a = robustness.attack_map(model, images[i], method="saliency", epsilon=0.1, top_k=50,
                                  steps=30)
        assert a.kept_class and abs(a.probability_change) <= 0.1 + 1e-6
        assert a.topk_intersection < 1.0
        assert a.linf <= 0.1 + 1e-6 and a.image.min() >= 0 and a.image.max() <= 1
        assert a.map_before.shape == a.map_after.shape == (28, 28)


def test_saliency_attack_moves_top_k_at_8_255(demo, one_thread):
    model, images, _, _ = demo
    inter = []  # one thread: a 28×28 CNN gains nothing from more (~1 s per attack)
    for i in range(5):
        a = robustness.attack_map(model, images[i], method="saliency")  # 8/255, 100 steps
        assert a.kept_class and a.linf <= 8 / 255 + 1e-6
        assert a.image.min() >= 0 and a.image.max() <= 1
        inter.append(a.topk_intersection)
    assert np.median(inter) < 0.5, inter


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2)])
def test_soft_max_pool_tends_to_max(pool):
    x = torch.randn(2, 3, 9, 7)
    soft = robustness._SoftMaxPool2d(pool, beta=1e4)
    assert torch.allclose(soft(x), pool(x), atol=1e-4)


@pytest.mark.parametrize("method", ["integrated_gradients", "smoothgrad"])
def test_attack_other_methods(demo, method):
    model, images, _, _ = demo
    a = robustness.attack_map(model, images[1], method=method, epsilon=0.1, steps=15,
                              nt_samples=4)
    assert a.kept_class and a.topk_intersection <= 1.0 and 1 <= a.steps_run <= 15


def test_errors(demo):
    model, images, _, _ = demo
    x = images[0]
    for kwargs in (dict(epsilon=0), dict(epsilon=1.5), dict(top_k=0), dict(top_k=28 * 28 + 1),
                   dict(method="lime"), dict(steps=0), dict(beta=0), dict(beta_end=-1)):
        with pytest.raises(InputError):
            robustness.attack_map(model, x, **kwargs)
    for kwargs in (dict(n=0), dict(epsilon=-0.1), dict(method="nope")):
        with pytest.raises(InputError):
            robustness.sensitivity(model, x, **kwargs)
    with pytest.raises(InputError):
        robustness.attack_map(model, torch.zeros(2, 3, 5, 28, 28))


def test_model_unchanged_and_cancel(demo):
    model, images, _, _ = demo
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    rng = torch.get_rng_state()
    robustness.attack_map(model, images[0], method="smoothgrad", epsilon=0.05, steps=3,
                          nt_samples=2, progress=lambda s, n: calls.append((s, n)))
    robustness.sensitivity(model, images[0], method="saliency", n=2)
    assert torch.equal(rng, torch.get_rng_state())
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert all(m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks
                   for m in model.modules())
    assert all(isinstance(m, nn.ReLU) for n, m in model.named_modules() if n.startswith("relu"))
    model.eval()
    with pytest.raises(Cancelled):
        robustness.attack_map(model, images[0], steps=5, cancelled=lambda: True)


def test_rgb_with_preprocess():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                        nn.Linear(64, 5)).eval()
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)

    def preprocess(b):
        return (b - mean) / 0.25

    x = torch.rand(3, 32, 32)
    a = robustness.attack_map(net, x, epsilon=0.05, top_k=20, steps=10, preprocess=preprocess,
                              tolerance=0.5)
    assert a.image.shape == (3, 32, 32) and a.map_after.shape == (32, 32)
    assert np.abs(a.image - x.numpy()).max() <= 0.05 + 1e-6
    r = robustness.sensitivity(net, x, method="saliency", n=3, preprocess=preprocess)
    assert r.value >= 0
