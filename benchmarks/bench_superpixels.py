"""LIME and KernelSHAP over superpixels: all classes at once, against the libraries' own paths.

    python benchmarks/bench_superpixels.py

Seed CNN, one 28×28 digit, default slic segments, 1,000 samples, all 10 classes:
- ours: ``explain(..., method="lime" | "kernel_shap")``;
- the ``lime`` package's ``explain_instance`` on the same image and segments (its default
  batch of 10 images per model call, and with one batch of 1,000), all 10 labels;
- captum's ``KernelShap``, one call per class (its loop), and shap's ``KernelExplainer``
  on the segment masks (all classes in one call, every segment kept in the fit: l1_reg=False);
- the floor: one batched forward of the 1,000 perturbed images, built beforehand (and the
  same forward in batches of 200, which is faster on a CPU);
- a superpixel toggle in the widget against one forward pass of one image.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import median_seconds, table
from xai_widgets import ExplainWidget, explain
from xai_widgets.superpixels import compose, segment
from xai_widgets.zoo import load_demo

SAMPLES = 1000


def main() -> None:
    import shap
    from captum.attr import KernelShap
    from lime import lime_image

    model, images, _, _ = load_demo("mnist")
    image = images[0]
    segments = segment(image, "slic", n_segments=50, compactness=0.3)
    n_segments = int(segments.max()) + 1

    def probabilities(batch):
        with torch.no_grad():
            return torch.softmax(model(batch), dim=1)

    keep = torch.rand(SAMPLES, n_segments) > 0.5
    perturbed = compose(image[None], torch.zeros(1, 1, 28, 28), segments, keep)
    floor = median_seconds(lambda: probabilities(perturbed), repeats=9)

    def lime_package(batch_size):
        explainer = lime_image.LimeImageExplainer(random_state=0)
        classify = lambda rgb: probabilities(  # noqa: E731
            torch.from_numpy(rgb[..., :1]).permute(0, 3, 1, 2).float()).numpy()
        return lambda: explainer.explain_instance(
            image[0].double().numpy(), classify, top_labels=10, hide_color=0,
            num_samples=SAMPLES, batch_size=batch_size, segmentation_fn=lambda _: segments.numpy(),
            random_seed=0)

    forward = lambda x: torch.softmax(model(x), dim=1)  # noqa: E731

    def captum_loop():
        for target in range(10):
            KernelShap(forward).attribute(image[None], baselines=0.0, target=target,
                                          feature_mask=segments[None, None], n_samples=SAMPLES,
                                          perturbations_per_eval=SAMPLES)

    def shap_kernel():
        def masked(z):
            return probabilities(compose(image[None], torch.zeros(1, 1, 28, 28), segments,
                                         torch.from_numpy(z > 0.5))).numpy()
        explainer = shap.KernelExplainer(masked, np.zeros((1, n_segments)))
        explainer.shap_values(np.ones((1, n_segments)), nsamples=SAMPLES, silent=True, l1_reg=False)

    chunked = median_seconds(lambda: [probabilities(perturbed[s:s + 200])
                                      for s in range(0, SAMPLES, 200)], repeats=9)
    ours = {m: median_seconds(lambda m=m: explain(model, image, method=m, n_samples=SAMPLES),
                              repeats=9) for m in ("lime", "kernel_shap")}
    rows = []
    references = {
        "lime": [("lime explain_instance, batch 10 (its default)", lime_package(10)),
                 ("lime explain_instance, batch 1000", lime_package(SAMPLES))],
        "kernel_shap": [("captum KernelShap, one call per class", captum_loop),
                        ("shap KernelExplainer, all classes", shap_kernel)],
    }
    for method, refs in references.items():
        for name, run in refs:
            reference = median_seconds(run, repeats=3, warmup=1)
            rows.append({"method": method, "ours (ms)": f"{ours[method] * 1e3:.1f}",
                         "library path": name, "library (ms)": f"{reference * 1e3:.0f}",
                         "library / ours": f"{reference / ours[method]:.1f}×",
                         "floor (ms)": f"{floor * 1e3:.1f}",
                         "ours / floor": f"{ours[method] / floor:.2f}×"})
            print(rows[-1], flush=True)

    w = ExplainWidget(model, image, method="saliency").wait(60)
    on_ink = int(w.segments[image[0].numpy() > 0.5][0])
    states = [[on_ink], []]
    toggles = []
    for i in range(50):
        start = time.perf_counter()
        w.hidden_segments = states[i % 2] if i % 2 == 0 else [on_ink, (on_ink + 1) % n_segments]
        toggles.append(time.perf_counter() - start)
    w.close()
    one_forward = median_seconds(lambda: probabilities(image[None]), repeats=50)
    toggle = float(np.median(toggles))
    print()
    print(f"{SAMPLES} samples, {n_segments} slic segments, seed CNN, one 28×28 digit, 10 classes; "
          f"floor = one forward of all {SAMPLES} images; the same forward in batches of 200 "
          f"(our default): {chunked * 1e3:.1f} ms")
    print(table(rows, list(rows[0])))
    print()
    print(f"superpixel toggle in the widget: {toggle * 1e3:.2f} ms (one forward pass of one image: "
          f"{one_forward * 1e3:.2f} ms; ratio {toggle / one_forward:.1f}×, the rest is masking, "
          "encoding the view and updating the bars)")


if __name__ == "__main__":
    main()
