"""Real-size models for tests and benchmarks: torchvision's ResNet-18 (1000 classes, random
weights, no download) and a 224×224 RGB photo from scikit-image.

The torchvision wheel on the registry is built for CUDA; with the CPU build of torch its
compiled ops (``torchvision::nms`` …) do not load, and ``import torchvision`` then fails in
its fake-tensor registrations ("operator torchvision::nms does not exist").
``import_torchvision()`` defines the schemas of those operators first (once, and only when
the compiled ops cannot load), so the import works; classification models never call them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

# The operators torchvision registers fake (meta) kernels for at import time, without a
# guard on whether its compiled library loaded.
SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

# The Library that owns the defined schemas: it must live as long as the process (the
# definitions are removed when it is garbage-collected).
_LIB: torch.library.Library | None = None


def _compiled_ops_load(package: Path) -> bool:
    """Whether torchvision's own compiled ops load with this torch (then they define the
    schemas themselves and defining them here would clash)."""
    for library in sorted(package.glob("_C.*")):
        try:
            torch.ops.load_library(str(library))
            return True
        except OSError:
            return False
    return False


def _define_schemas(package: Path) -> None:
    """Define the missing ``torchvision::`` schemas once; a second call (or another copy
    of this module) finds them defined and does nothing."""
    global _LIB
    missing = [name for name in SCHEMAS if not hasattr(torch.ops.torchvision, name)]
    if not missing or _compiled_ops_load(package):
        return
    missing = [name for name in missing if not hasattr(torch.ops.torchvision, name)]
    if _LIB is None:
        _LIB = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        _LIB.define(SCHEMAS[name])


def import_torchvision():
    """``torchvision``, imported so that it works with the CPU build of torch; skips the
    calling test when torchvision is not installed."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        pytest.skip("torchvision is not installed (pip install torch==<torch's version> "
                    "torchvision)", allow_module_level=True)
    _define_schemas(Path(next(iter(spec.submodule_search_locations))))
    import torchvision

    return torchvision


def resnet18_1000() -> torch.nn.Module:
    """torchvision's ResNet-18 with random weights (seed 0), 1000 classes, in eval mode."""
    torchvision = import_torchvision()
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def blocks_of(cam: np.ndarray, patch: int) -> np.ndarray:
    """The (side, side) patch values of a map upsampled with 'nearest'; asserts each patch
    is constant."""
    side = cam.shape[0] // patch
    tiles = cam.reshape(side, patch, side, patch)
    assert np.allclose(tiles, tiles[:, :1, :, :1]), "not constant within patches"
    return tiles[:, 0, :, 0]


def vit_b_16() -> torch.nn.Module:
    """torchvision's ViT-B/16 with random weights (seed 0) and a usable head: torchvision
    zero-initialises the head, which would make every map zero."""
    torchvision = import_torchvision()
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


def rgb_image(size: int = 224) -> torch.Tensor:
    """scikit-image's cat photo (chelsea) as a float (3, size, size) tensor in 0..1."""
    from skimage import data

    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255.0
    resized = F.interpolate(photo, size=(size, size), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized[0].clamp(0.0, 1.0).contiguous()


def calibrate_batch_norm(model: torch.nn.Module, size: int) -> torch.nn.Module:
    """Set every BatchNorm's running statistics from one batch of photo variants, then eval.

    With random weights and the default statistics (mean 0, variance 1) the activations of
    deep nets fade layer by layer: MobileNetV3's and EfficientNet's logits then vary by
    1e-11 across images and every map is flat. Real statistics keep them input-dependent,
    as trained weights would."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms:
        x = rgb_image(size)
        batch = torch.stack([x, x.flip(-1), x.flip(-2), x.roll(size // 4, -1), 0.7 * x, 1 - x])
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: this one batch
        model.train()
        with torch.no_grad():
            model(batch)
    return model.eval()


def torchvision_model(name: str, size: int = 64) -> torch.nn.Module:
    """A torchvision classifier with random weights (seed 0, no download), 1000 classes,
    batch norm calibrated, in eval mode. ``vit_b_16`` is built for ``size`` (its default is
    224) and its zero-initialised head is re-initialised, else every logit is 0."""
    torchvision = import_torchvision()
    torch.manual_seed(0)
    if name == "vit_b_16":
        model = torchvision.models.vit_b_16(weights=None, image_size=size)
        torch.nn.init.normal_(model.heads.head.weight, std=0.01)
        return model.eval()
    return calibrate_batch_norm(getattr(torchvision.models, name)(weights=None), size)


def hf_vit(size: int = 32) -> torch.nn.Module:
    """A tiny Hugging Face ViTForImageClassification (2 layers, width 32, patches of 8, 10
    classes) from a config, random weights (seed 0); skips when transformers is missing."""
    import_torchvision()  # transformers imports torchvision, which needs the CPU shim first
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(image_size=size, patch_size=8, num_channels=3,
                                    hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=64, num_labels=10)
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(config).eval()
