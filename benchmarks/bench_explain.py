"""All-class attribution time per method against the floor and a naive captum loop.

    python benchmarks/bench_explain.py

For the seed CNN and one 28×28 digit, per method: our all-class time (10 targets); the floor,
one batched forward+backward over exactly the images the method must evaluate (a forward
only for occlusion); a naive loop of single-target captum calls; and the ratios.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from captum.attr import (
    LRP,
    DeepLift,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import median_seconds, table
from xai_widgets import explain
from xai_widgets.adapter import ModelAdapter
from xai_widgets.methods.lrp_methods import lrp_model
from xai_widgets.methods.occlusion_methods import occlusion_windows
from xai_widgets.zoo import load_demo

TARGETS = list(range(10))


def floor_backward(model, n_images: int) -> float:
    """One batched forward+backward of n_images, gradients w.r.t. the input only."""
    x = torch.rand(n_images, 1, 28, 28)
    targets = torch.arange(n_images) % 10

    def run():
        inputs = x.clone().requires_grad_(True)
        scores = model(inputs).gather(1, targets[:, None]).sum()
        torch.autograd.grad(scores, inputs)

    return median_seconds(run)


def floor_forward(model, n_images: int) -> float:
    x = torch.rand(n_images, 1, 28, 28)

    def run():
        with torch.no_grad():
            model(x)

    return median_seconds(run)


def naive_loop(make, x, **kwargs) -> float:
    def run():
        for t in TARGETS:
            make().attribute(x, target=t, **kwargs)

    return median_seconds(run, repeats=5, warmup=1)


def main() -> None:
    torch.manual_seed(0)
    model, images, _, _ = load_demo("mnist")
    image = images[0]
    x = image[None]
    zero = torch.zeros_like(x)
    windows = len(occlusion_windows(28, 28, 5, 2, torch.device("cpu")))
    adapter = ModelAdapter(model)
    cases = [
        # method, explain kwargs, floor (kind, images), naive captum factory and kwargs
        ("saliency", {}, ("backward", 10), lambda: Saliency(model), {}),
        ("input_x_gradient", {}, ("backward", 10), lambda: InputXGradient(model), {}),
        ("guided_backprop", {}, ("backward", 10), lambda: GuidedBackprop(model), {}),
        ("deeplift", {}, ("backward", 20), lambda: DeepLift(model), {"baselines": zero}),
        ("grad_cam", {}, ("backward", 10), lambda: LayerGradCam(model, model.conv2), {}),
        ("lrp", {}, ("backward", 10),
         lambda: LRP(lrp_model(adapter, {"rule": "epsilon", "epsilon": 1e-9, "gamma": 0.25})), {}),
        ("integrated_gradients", {"n_steps": 64}, ("backward", 640),
         lambda: IntegratedGradients(model), {"baselines": zero, "n_steps": 64}),
        ("gradient_shap", {"n_samples": 20}, ("backward", 200), lambda: GradientShap(model),
         {"baselines": images[:50], "n_samples": 20}),
        ("saliency+smoothgrad", {"smoothing": "smoothgrad", "nt_samples": 10}, ("backward", 100),
         lambda: NoiseTunnel(Saliency(model)), {"nt_samples": 10, "stdevs": 0.15}),
        ("occlusion", {"window": 5, "stride": 2}, ("forward", windows + 1),
         lambda: Occlusion(model), {"sliding_window_shapes": (1, 5, 5), "strides": (1, 2, 2),
                                    "baselines": 0.0}),
    ]
    rows = []
    for name, kwargs, (kind, n_images), make, captum_kwargs in cases:
        method = name.split("+")[0]
        ours = median_seconds(lambda: explain(model, image, method=method, data=images[:50],
                                              **kwargs))
        floor = (floor_backward if kind == "backward" else floor_forward)(model, n_images)
        naive = naive_loop(make, x, **captum_kwargs)
        rows.append({"method": name, "ours (ms)": f"{ours * 1e3:.1f}",
                     "floor (ms)": f"{floor * 1e3:.1f}", "floor work": f"{kind} ×{n_images}",
                     "naive loop (ms)": f"{naive * 1e3:.1f}",
                     "ours / floor": f"{ours / floor:.2f}×",
                     "naive / ours": f"{naive / ours:.1f}×"})
        print(f"{name:22s} ours {ours * 1e3:7.1f} ms  floor {floor * 1e3:7.1f} ms  naive "
              f"{naive * 1e3:8.1f} ms  ours/floor {ours / floor:5.2f}  "
              f"naive/ours {naive / ours:6.1f}",
              flush=True)
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, seed CNN, "
          "one 28×28 digit, 10 targets")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
