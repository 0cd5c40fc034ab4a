"""Grad-CAM on vision transformers: patch-token maps, class token dropped, grid upsampled,
and the map depends on the weights (a sanity check)."""

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from tests import real_models
from tests.real_models import blocks_of, hf_vit, rgb_image
from xai_widgets import explain, methods


@pytest.fixture(scope="module")
def vit_b_16():
    return real_models.vit_b_16()


def test_vit_b_16_maps_are_14_by_14_patches_upsampled_to_224(vit_b_16):
    assert methods.available(vit_b_16)["grad_cam"] is None
    x = rgb_image(224)
    e = explain(vit_b_16, x, "grad_cam", targets=[0], upsample="nearest", relu=False)
    cam = e.map(0)
    assert cam.shape == (224, 224) and np.isfinite(cam).all()
    patches = blocks_of(cam, 16)
    assert patches.shape == (14, 14) and np.ptp(patches) > 0
    smooth = explain(vit_b_16, x, "grad_cam", targets=[0]).map(0)  # bilinear, ReLU
    assert smooth.min() >= 0 and np.ptp(smooth) > 0


def test_randomising_the_last_blocks_changes_the_map(vit_b_16):
    x = rgb_image(224)
    before = explain(vit_b_16, x, "grad_cam", targets=[0], relu=False, upsample="nearest").map(0)
    scrambled = copy.deepcopy(vit_b_16)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in list(scrambled.encoder.layers)[-2:]:
            for parameter in block.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    after = explain(scrambled, x, "grad_cam", targets=[0], relu=False, upsample="nearest").map(0)
    correlation = spearmanr(blocks_of(before, 16).ravel(), blocks_of(after, 16).ravel()).statistic
    assert correlation < 0.5, correlation
    assert vit_b_16.encoder.layers[-1].mlp[0].weight.abs().sum() > 0  # the user's model intact


def test_hugging_face_vit_maps_follow_its_patch_grid():
    model = hf_vit(32)  # patches of 8: a 4 × 4 grid
    e = explain(model, torch.rand(3, 32, 32), "grad_cam", targets=[1, 2], upsample="nearest",
                relu=False)
    assert e.attributions.shape == (2, 32, 32)
    for target in (1, 2):
        assert blocks_of(e.map(target), 8).shape == (4, 4)
    assert np.ptp(e.attributions) > 0


def test_an_empty_relu_map_says_why():
    model = hf_vit(32)
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    raw = explain(model, x, "grad_cam", targets=list(range(10)), relu=False)
    assert raw.map(9).max() <= 0 < raw.map(0).max()  # class 9: every patch speaks against it
    assert not any("no positive evidence" in note
                   for note in explain(model, x, "grad_cam", targets=[0]).notes)
    shown = explain(model, x, "grad_cam", targets=[9])
    assert np.all(shown.map(9) == 0)
    assert any("no positive evidence" in note for note in shown.notes)
