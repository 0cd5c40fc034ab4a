"""The libraries' own calls for ``bench_real_models.py``: captum, shap and lime with their
default arguments and our step and sample counts, and the floor each method must pay.

Each call explains one image for one target. A call whose default batching would not fit
in memory raises ``MemoryError`` up front (the table says it was skipped) instead of
risking the machine.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import (
    LRP,
    DeepLift,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

from xai_widgets.budget import available_memory, per_image_bytes
from xai_widgets.superpixels import segment_or_grid


def fits(adapter, image, n_images: int, what: str) -> None:
    need = per_image_bytes(adapter, image) * n_images
    if need > 0.6 * available_memory(image.device):
        raise MemoryError(f"{what} would hold {n_images} images in one pass "
                          f"(~{need / 2**30:.1f} GiB)")


def floor_work(method: str, p: dict) -> tuple[str, int]:
    """("forward" | "backward", images) the method cannot do with less."""
    if method == "integrated_gradients":
        return "backward", p["n_steps"]
    if method == "saliency" and p.get("smoothing", "none") != "none":
        return "backward", p["nt_samples"]
    if method in ("gradient_shap", "gradient_explainer"):
        return "backward", p["n_samples"]
    if method == "occlusion":
        rows = -(-(224 - p["window"]) // p["stride"]) + 1
        return "forward", rows * rows + 1
    if method in ("lime", "kernel_shap"):
        return "forward", p["n_samples"]
    if method == "attention_rollout":
        return "forward", 1
    if method in ("deeplift", "deep_shap"):  # the image and its reference, both propagated
        return "backward", 2
    return "backward", 1


def _zero(image):
    return torch.zeros_like(image)


def integrated_gradients(model, adapter, image, target, p):
    fits(adapter, image, p["n_steps"], "captum's IntegratedGradients (internal_batch_size=None)")
    return IntegratedGradients(model).attribute(image, _zero(image), target=target,
                                                n_steps=p["n_steps"])


def smoothgrad(model, adapter, image, target, p):
    if p.get("smoothing", "none") == "none":
        return Saliency(model).attribute(image, target=target)
    fits(adapter, image, p["nt_samples"], "captum's NoiseTunnel")
    return NoiseTunnel(Saliency(model)).attribute(image, nt_type="smoothgrad",
                                                  nt_samples=p["nt_samples"],
                                                  stdevs=p["nt_stdev"], target=target)


def gradient_shap(model, adapter, image, target, p):
    fits(adapter, image, p["n_samples"], "captum's GradientShap")
    return GradientShap(model).attribute(image, _zero(image), n_samples=p["n_samples"],
                                         target=target)


def occlusion(model, adapter, image, target, p):
    w, s = p["window"], p["stride"]
    return Occlusion(model).attribute(image, (3, w, w), strides=(3, s, s), target=target)


def grad_cam(model, adapter, image, target, p):
    name = list(adapter.conv_layers())[-1]  # the same layer in the library's copy
    layer = dict(model.named_modules())[name]
    cam = LayerGradCam(model, layer).attribute(image, target=target)
    return LayerAttribution.interpolate(cam, image.shape[-2:], "bilinear")


def segments(image, p):
    return segment_or_grid(image, "slic", **p)[0]


def kernel_shap(model, adapter, image, target, p):
    mask = segments(image, p)[None, None].expand_as(image)
    return KernelShap(model).attribute(image, _zero(image), target=target,
                                       n_samples=p["n_samples"], feature_mask=mask)


def lime(model, adapter, image, target, p):
    from lime import lime_image

    labels = segments(image, p).cpu().numpy()

    def classify(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return torch.softmax(model(x), 1).numpy()

    return lime_image.LimeImageExplainer(random_state=0).explain_instance(
        image[0].permute(1, 2, 0).double().numpy(), classify, labels=(target,), top_labels=None,
        hide_color=0, num_samples=p["n_samples"], segmentation_fn=lambda _: labels)


def deep_shap(model, adapter, image, target, p):
    import shap

    return shap.DeepExplainer(model, _zero(image)).shap_values(image)


def gradient_explainer(model, adapter, image, target, p):
    import shap

    fits(adapter, image, 50, "shap's GradientExplainer (batch_size=50)")
    return shap.GradientExplainer(model, _zero(image)).shap_values(
        image, nsamples=p["n_samples"], ranked_outputs=1)


LIBRARY = {
    "saliency": smoothgrad,
    "input_x_gradient": lambda m, a, x, t, p: InputXGradient(m).attribute(x, target=t),
    "integrated_gradients": integrated_gradients,
    "gradient_shap": gradient_shap,
    "guided_backprop": lambda m, a, x, t, p: GuidedBackprop(m).attribute(x, target=t),
    "deeplift": lambda m, a, x, t, p: DeepLift(m).attribute(x, _zero(x), target=t),
    "lrp": lambda m, a, x, t, p: LRP(m).attribute(x, target=t),
    "grad_cam": grad_cam,
    "occlusion": occlusion,
    "lime": lime,
    "kernel_shap": kernel_shap,
    "deep_shap": deep_shap,
    "gradient_explainer": gradient_explainer,
}
