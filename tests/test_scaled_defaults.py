"""Defaults that scale with the image, and segmentations that never collapse to one segment."""

import numpy as np
import torch
from torch import nn

from xai_widgets import explain, methods
from xai_widgets.superpixels import MIN_SEGMENTS, segment_or_grid


def small_rgb_cnn(n_classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(128, n_classes)).eval()


def test_defaults_scale_with_the_image_and_keep_the_digit_defaults():
    occlusion, lime = methods.spec("occlusion"), methods.spec("lime")
    assert occlusion.defaults((28, 28))["window"] == occlusion.defaults()["window"] == 5
    assert occlusion.defaults((28, 28))["stride"] == 2
    assert (occlusion.defaults((224, 224))["window"],
            occlusion.defaults((224, 224))["stride"]) == (16, 8)
    assert lime.defaults((28, 28))["n_segments"] == 50
    assert lime.defaults((224, 224))["n_segments"] == 100
    assert lime.defaults((224, 224))["cell"] == 32  # a 7 × 7 grid


def test_explanations_use_the_effective_defaults():
    model, x = small_rgb_cnn(), torch.rand(3, 224, 224)
    e = explain(model, x, "occlusion", targets=[0])
    assert (e.params["window"], e.params["stride"]) == (16, 8)  # 27 × 27 windows, not 12,100
    assert explain(model, x, "occlusion", targets=[0], window=9).params["window"] == 9


def test_a_segmenter_that_finds_one_segment_falls_back_to_a_grid():
    noise = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels, note = segment_or_grid(noise, "slic", n_segments=50, compactness=0.3)  # 1 segment
    assert int(labels.max()) + 1 >= MIN_SEGMENTS and "grid" in note


def test_lime_and_kernel_shap_on_a_small_noise_image_give_real_maps():
    model = small_rgb_cnn()
    noise = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    for method in ("lime", "kernel_shap"):
        e = explain(model, noise, method, targets=[0], n_samples=200)  # SLIC finds 1 segment
        assert np.isfinite(e.attributions).all() and np.ptp(e.attributions) > 0, method
        assert any("grid" in note for note in e.notes), e.notes
