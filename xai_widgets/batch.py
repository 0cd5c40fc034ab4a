"""Attribution maps for many images at once (one target each), batched over images.

Used by the dataset view (SpRAy). Never a Python loop of single-image ``explain()`` calls:
the images (and, for integrated gradients, their path points) go through the model in
shared batches of at most ``batch_size`` images.

>>> from xai_widgets.batch import explain_many
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> explain_many(model, images[:8], method="saliency").shape
(8, 28, 28)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam

from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.methods.captum_methods import path_weights
from xai_widgets.methods.gradients import input_gradients

BATCHED_METHODS = ("integrated_gradients", "saliency", "input_x_gradient", "grad_cam")


def explain_many(model, images, targets=None, method: str = "integrated_gradients",
                 n_steps: int = 32, batch_size: int = 256,
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None, *,
                 preprocess: Callable | None = None, output: str = "auto") -> np.ndarray:
    """(N, H, W) maps: ``targets`` None = each image's predicted class, an int = the same
    class for all, or one class per image. Integrated gradients use the zero baseline;
    ``preprocess`` and ``output`` as in ``explain()``."""
    if method not in BATCHED_METHODS:
        raise InputError(f"{method!r} is not batched over images; choose one of "
                         f"{', '.join(BATCHED_METHODS)}")
    adapter = ModelAdapter(model, preprocess=preprocess, output=output)
    first, _ = adapter.image(images[0])
    batch = adapter.batch(images, first)
    with torch.no_grad():
        predicted = torch.cat([adapter.logits(chunk).argmax(1)
                               for chunk in batch.split(batch_size)])
    if targets is None:
        target = predicted
    elif np.ndim(targets) == 0:
        target = torch.full((len(batch),), int(targets), device=batch.device)
    else:
        target = torch.as_tensor(np.asarray(targets), device=batch.device).long()
        if len(target) != len(batch):
            raise InputError(f"{len(target)} targets for {len(batch)} images: pass one per image")
    if int(target.min()) < 0 or int(target.max()) >= adapter.n_classes:
        raise InputError(f"targets must be in 0..{adapter.n_classes - 1}")
    per_image = n_steps if method == "integrated_gradients" else 1
    images_per_pass = max(1, batch_size // per_image)
    maps = []
    with torch.enable_grad(), adapter.eval_mode():
        for start in range(0, len(batch), images_per_pass):
            if cancelled is not None and cancelled():
                raise Cancelled()
            chunk, chunk_targets = (batch[start:start + images_per_pass],
                                    target[start:start + images_per_pass])
            maps.append(_attribute(adapter, chunk, chunk_targets, method, n_steps).detach())
            if progress is not None:
                progress(min(start + images_per_pass, len(batch)), len(batch))
    return torch.cat(maps).float().cpu().numpy()


def _attribute(adapter, x: torch.Tensor, targets: torch.Tensor, method: str,
               n_steps: int) -> torch.Tensor:
    module = adapter.forward_module
    if method == "saliency":
        return input_gradients(module, x, targets).abs().sum(1)
    if method == "input_x_gradient":
        return (x * input_gradients(module, x, targets)).sum(1)
    if method == "grad_cam":
        layer = list(adapter.conv_layers().values())[-1]
        cam = LayerGradCam(module, layer).attribute(x, target=targets.tolist(),
                                                    relu_attributions=True)
        return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")[:, 0]
    step_sizes, alphas = path_weights("gausslegendre", n_steps)
    alphas_t = torch.tensor(alphas, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
    points = (alphas_t * x[None]).flatten(0, 1)  # (steps·B, C, H, W), zero baseline
    grads = input_gradients(module, points, targets.repeat(n_steps))
    weights = torch.tensor(step_sizes, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
    total = (grads.view(n_steps, *x.shape) * weights).sum(0)
    return (total * x).sum(1)


def downsize(maps: np.ndarray, size: int = 14) -> np.ndarray:
    """Average-pool maps to size×size and scale each to unit length (SpRAy's preprocessing)."""
    pooled = F.adaptive_avg_pool2d(torch.as_tensor(maps)[:, None], size)[:, 0].flatten(1)
    norms = pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (pooled / norms).numpy()
