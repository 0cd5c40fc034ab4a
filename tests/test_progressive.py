"""Progressive results: slow methods refine in rounds, each round a usable map, the last
round equal to the one-shot computation, and no image is scored twice."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from tests.real_models import resnet18_1000, rgb_image
from xai_widgets import ExplainWidget
from xai_widgets.adapter import ModelAdapter
from xai_widgets.compute import compute
from xai_widgets.methods.progressive import grid_rounds, node_rounds, sample_rounds
from xai_widgets.zoo import load_demo

PROGRESSIVE = [
    ("integrated_gradients", {}),
    ("integrated_gradients", {"integration": "riemann_trapezoid", "n_steps": 50}),
    ("saliency", {"smoothing": "smoothgrad", "nt_samples": 16}),
    ("input_x_gradient", {"smoothing": "smoothgrad_sq", "nt_samples": 16}),
    ("saliency", {"smoothing": "vargrad", "nt_samples": 16, "absolute": False}),
    ("gradient_shap", {}),
    ("occlusion", {}),
    ("lime", {}),
    ("kernel_shap", {}),
]
IDS = [f"{m}-{'-'.join(map(str, p.values())) or 'default'}" for m, p in PROGRESSIVE]


@pytest.fixture(scope="module")
def setting():
    model, images, _labels, _classes = load_demo("mnist")
    adapter = ModelAdapter(model)
    image, _ = adapter.image(images[0])
    return model, adapter, image, adapter.batch(images[100:140], image)


def counting(model):
    """A forward hook counting the images the model scores."""
    seen = [0]
    handle = model.register_forward_hook(
        lambda m, args, out: seen.__setitem__(0, seen[0] + len(args[0])))
    return seen, handle


@pytest.mark.parametrize("method,params", PROGRESSIVE, ids=IDS)
def test_rounds_refine_to_the_one_shot_result_at_the_same_cost(setting, method, params):
    model, adapter, image, data = setting
    predicted = int(adapter.logits(image).argmax())
    targets = [predicted, (predicted + 3) % 10, (predicted + 7) % 10]
    compute(adapter, image, method, targets, params, data=data)  # warm the caches
    seen, handle = counting(model)
    try:
        one_shot = compute(adapter, image, method, targets, params, data=data)
        images_one_shot = seen[0]
        rounds = []
        final = compute(adapter, image, method, targets, params, data=data, on_round=rounds.append)
        images_progressive = seen[0] - images_one_shot
    finally:
        handle.remove()
    scale = np.abs(one_shot.raw).max()
    assert np.abs(final.raw - one_shot.raw).max() <= 1e-5 * scale
    assert images_progressive == images_one_shot  # each round reuses the last
    assert len(rounds) >= (1 if method == "occlusion" else 2) and not final.refining
    done = [int(r.refining.split(": ")[1].split()[0]) for r in rounds]
    assert done == sorted(done) and len(set(done)) == len(done)
    assert all(r.refining.startswith(f"round {i + 1}: ") for i, r in enumerate(rounds))
    for interim in rounds:
        assert interim.attributions.shape == final.attributions.shape
        assert np.isfinite(interim.attributions).all()
    # the first round is already a usable map of the same evidence
    first = spearmanr(rounds[0].attributions[0].ravel(), final.attributions[0].ravel()).statistic
    assert first > 0.4, first


def test_without_a_listener_nothing_is_delivered_and_the_order_is_one_shot(setting):
    _model, adapter, image, _data = setting
    assert compute(adapter, image, "integrated_gradients", [3]).refining == ""


@pytest.mark.parametrize("n", [1, 5, 16, 50, 64, 200])
def test_round_plans_cover_every_unit_once(n):
    nodes = [i for r in node_rounds(n) for i in r]
    assert sorted(nodes) == list(range(n))
    assert sample_rounds(n)[-1] == n and sample_rounds(n) == sorted(set(sample_rounds(n)))
    cells = [i for _, r in grid_rounds(n, n + 2) for i in r]
    assert sorted(cells) == list(range(n * (n + 2)))


def test_the_widget_shows_each_round_then_the_final_map(setting):
    model, adapter, image, _data = setting
    w = ExplainWidget(model, image[0], method="saliency")
    w.wait(60)
    shown = []
    w.state.observe(lambda change: shown.append((change["new"].refining, w.status)), "explanation")
    w.params = {"smoothing": "smoothgrad", "nt_samples": 64}
    w.wait(60)
    refining = [r for r, _ in shown if r]
    assert refining and refining[0].startswith("round 1: 8 of 64")
    assert all("showing round" in status for r, status in shown if r)
    assert shown[-1][0] == "" and not w.explanation.refining and "ms" in w.status
    final = compute(adapter, image, "saliency", w.explanation.targets,
                    {"smoothing": "smoothgrad", "nt_samples": 64})
    assert np.abs(w.explanation.raw - final.raw).max() <= 1e-5 * np.abs(final.raw).max()
    w.close()


def test_a_newer_request_stops_the_refinement(setting):
    model, _adapter, image, _data = setting
    w = ExplainWidget(model, image[0], method="occlusion", window=3, stride=1)
    applied = []
    w.state.observe(lambda change: applied.append(change["new"].method), "explanation")
    w.method = "saliency"
    w.wait(60)
    assert applied[-1] == "saliency" and w.explanation.method == "saliency"
    assert "occlusion" not in applied[applied.index("saliency"):]
    w.close()


def blocks(a: np.ndarray, side: int = 32) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // side, side, w // side, side).mean((1, 3)).ravel()


@pytest.mark.slow  # 729 occlusion windows through a ResNet-18 at 224 px
def test_occlusion_on_resnet18_at_224_px_refines_coarse_to_fine():
    model = resnet18_1000()
    adapter = ModelAdapter(model)
    image, _ = adapter.image(rgb_image(224))
    target = int(adapter.logits(image).argmax())
    rounds = []
    final = compute(adapter, image, "occlusion", [target], on_round=rounds.append)
    assert [r.refining.split(": ")[1] for r in rounds] == ["49 of 729 windows",
                                                          "196 of 729 windows"]
    coarse = rounds[0].attributions[0]
    assert coarse.shape == (224, 224) and np.isfinite(coarse).all()
    # every pixel lies under a widened window: no hole of zeros in the coarse map
    assert (np.abs(coarse) > 0).mean() > 0.99
    fine = blocks(final.attributions[0])
    agreement = [spearmanr(blocks(r.attributions[0]), fine).statistic for r in rounds]
    assert 0.4 < agreement[0] < agreement[1], agreement  # the same regions, sharper each round
