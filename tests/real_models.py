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


def rgb_image(size: int = 224) -> torch.Tensor:
    """scikit-image's cat photo (chelsea) as a float (3, size, size) tensor in 0..1."""
    from skimage import data

    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255.0
    resized = F.interpolate(photo, size=(size, size), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized[0].clamp(0.0, 1.0).contiguous()
