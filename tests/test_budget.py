"""Memory budget: many classes stream in chunks within the budget, long work is refused up
front, and the chunks give exactly the one-pass numbers."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from xai_widgets import InputError, explain
from xai_widgets.adapter import ModelAdapter
from xai_widgets.budget import images_per_pass, per_image_bytes


def wide_cnn(n_classes: int = 1000) -> nn.Module:
    """A small CNN with many classes whose activations at 224 px are a few MiB per image."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(256, n_classes)).eval()


def test_the_per_image_cost_grows_with_the_image():
    model = wide_cnn(10)
    adapter = ModelAdapter(model)
    small = per_image_bytes(adapter, adapter.image(torch.rand(3, 32, 32))[0])
    large = per_image_bytes(adapter, adapter.image(torch.rand(3, 128, 128))[0])
    assert 12 < large / small < 20  # 16× the pixels
    image = adapter.image(torch.rand(3, 128, 128))[0]
    # each image counts a quarter more than autograd saves (the backward's working memory)
    assert images_per_pass(adapter, image, budget=5 * large, most=1000) == 4
    assert images_per_pass(adapter, image, budget=5 * large - 8, most=1000) == 3


@pytest.mark.parametrize("method, params", [("saliency", {}),
                                            ("integrated_gradients", {"n_steps": 8}),
                                            ("input_x_gradient", {})])
def test_chunks_give_the_one_pass_numbers(method, params):
    model, x = wide_cnn(40), torch.rand(3, 32, 32)
    whole = explain(model, x, method, targets="all", **params)
    per_image = per_image_bytes(ModelAdapter(model), ModelAdapter(model).image(x)[0])
    chunked = explain(model, x, method, targets="all", memory_budget=3 * per_image, **params)
    np.testing.assert_allclose(chunked.attributions, whole.attributions, rtol=1e-5, atol=1e-7)


def test_chunks_report_progress_to_the_end():
    model, x = wide_cnn(40), torch.rand(3, 32, 32)
    per_image = per_image_bytes(ModelAdapter(model), ModelAdapter(model).image(x)[0])
    seen = []
    explain(model, x, "saliency", memory_budget=5 * per_image,
            progress=lambda done, total: seen.append(done / total))
    assert len(seen) >= 8 and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)


def test_too_long_is_refused_with_an_estimate():
    model = wide_cnn()
    with pytest.raises(InputError, match=r"integrated_gradients for 1000 classes would take about"
                                         r".*targets=\[\.\.\.\]"):
        explain(model, torch.rand(3, 224, 224), "integrated_gradients", max_seconds=5)


PEAK = textwrap.dedent("""
    import json, resource, sys, torch
    sys.path.insert(0, {root!r})
    from tests.test_budget import wide_cnn
    from xai_widgets import explain
    model, x = wide_cnn(), torch.rand(3, 224, 224)
    explain(model, x, "saliency", targets=[0, 1])            # warm up: libraries, allocator
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    e = explain(model, x, "saliency", targets="all", memory_budget={budget})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({{"before": before, "peak": peak, "shape": list(e.attributions.shape)}}))
""")


@pytest.mark.slow  # 1000 backward passes at 224 px: about a minute on two cores
def test_all_of_1000_classes_at_224_px_stay_within_the_budget(tmp_path):
    """In a subprocess (peak resident memory is per process): without the budget the 1000
    repeated images and their activations would take ~13 GiB (about 13 MiB each)."""
    from pathlib import Path

    budget = 256 * 2**20
    script = PEAK.format(root=str(Path(__file__).resolve().parent.parent), budget=budget)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [1000, 224, 224]
    # the maps themselves (1000 × 3 × 224² float32 raw + channel sums: 0.8 GiB) are the
    # output; the Explanation keeps its own frozen copy of them
    output = 1000 * 4 * 224 * 224 * 4
    grown = result["peak"] - result["before"]
    assert grown < budget + 2 * output + 256 * 2**20, f"grew {grown / 2**20:.0f} MiB"
