"""On a GPU: a model on CUDA is explained on its device end to end, within a memory budget
taken from the GPU's free memory, with the numbers the CPU gives. Skipped without a GPU."""

import copy

import numpy as np
import pytest
import torch

from tests.real_models import resnet18_1000, rgb_image
from xai_widgets import ExplainWidget, explain
from xai_widgets.adapter import ModelAdapter
from xai_widgets.budget import available_memory, default_budget
from xai_widgets.compute import compute

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
METHODS = ["saliency", "integrated_gradients", "grad_cam", "occlusion", "lime", "kernel_shap",
           "deeplift", "guided_backprop"]
RANDOM_ON_DEVICE = ["gradient_shap", "smoothgrad"]  # torch draws on the GPU's generator


@pytest.fixture(scope="module")
def models():
    cpu = resnet18_1000()
    return cpu, copy.deepcopy(cpu).cuda()


@pytest.mark.parametrize("method", METHODS)
def test_cuda_maps_equal_the_cpu_maps(models, method):
    cpu, gpu = models
    x = rgb_image(224)
    target = [int(ModelAdapter(cpu).logits(ModelAdapter(cpu).image(x)[0]).argmax())]
    on_cpu = explain(cpu, x, method, targets=target)
    on_gpu = explain(gpu, x, method, targets=target)
    assert next(gpu.parameters()).is_cuda  # the user's model stays where it was
    scale = np.abs(on_cpu.attributions).max()
    # TF32 and other kernels: equal to a few parts in a thousand of the largest value
    assert np.abs(on_gpu.attributions - on_cpu.attributions).max() <= 5e-3 * scale


@pytest.mark.parametrize("method", RANDOM_ON_DEVICE)
def test_methods_drawing_on_the_gpu_give_finite_maps(models, method):
    _, gpu = models
    params = {"smoothing": "smoothgrad"} if method == "smoothgrad" else {}
    name = "saliency" if method == "smoothgrad" else method
    e = explain(gpu, rgb_image(224), name, targets=[1, 2], **params)
    assert np.isfinite(e.attributions).all() and np.ptp(e.attributions) > 0


def test_budget_comes_from_gpu_memory_and_all_classes_stream_within_it(models):
    _, gpu = models
    device = next(gpu.parameters()).device
    assert default_budget(device) <= 0.5 * available_memory(device) + 1
    adapter = ModelAdapter(gpu)
    image, _ = adapter.image(rgb_image(224))
    budget = 2**30
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    e = compute(adapter, image, "saliency", "all", memory_budget=budget, max_seconds=None)
    peak = torch.cuda.max_memory_allocated(device) - start
    assert e.attributions.shape == (1000, 224, 224)
    # the budget is for activations; the 1000 maps themselves (0.6 GiB) are the result
    assert peak <= budget + e.raw.nbytes, peak / 2**30


def test_progressive_rounds_on_the_gpu(models):
    _, gpu = models
    adapter = ModelAdapter(gpu)
    image, _ = adapter.image(rgb_image(224))
    rounds = []
    final = compute(adapter, image, "integrated_gradients", [1], on_round=rounds.append)
    one_shot = compute(adapter, image, "integrated_gradients", [1])
    assert len(rounds) == 3
    assert np.abs(final.raw - one_shot.raw).max() <= 1e-4 * np.abs(one_shot.raw).max()


def test_widget_on_a_cuda_model(models):
    _, gpu = models
    w = ExplainWidget(gpu, rgb_image(224), method="saliency")
    w.wait(120)
    assert w.error == "" and w.explanation.attributions.shape[1:] == (224, 224)
    w.close()
