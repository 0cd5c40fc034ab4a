"""``explain()``: attribution maps for one image and every class, from a script or a cell.

>>> from xai_widgets import explain
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> e = explain(model, images[0], method="integrated_gradients", targets="all", n_steps=50)
>>> e.attributions.shape, len(e.targets)
((10, 28, 28), 10)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xai_widgets.adapter import ModelAdapter
from xai_widgets.compute import MAX_SECONDS, compute
from xai_widgets.explanation import Explanation
from xai_widgets.methods import DEFAULT_METHOD


def explain(model, x, method: str = DEFAULT_METHOD, targets: Any = "all", *,
            baseline: Any = "zero", baseline_alpha: float = 0.0, data: Any = None,
            classes: Sequence[str] | None = None, preprocess: Callable | None = None,
            output: str = "auto", weights: Any = None, layout: str = "NCHW",
            progress: Callable[[int, int], None] | None = None,
            memory_budget: int | None = None, max_seconds: float | None = MAX_SECONDS,
            **params) -> Explanation:
    """Explain the model's scores for ``x`` with ``method`` for ``targets``.

    ``targets`` is ``"all"``, an int or a list of ints. ``baseline`` is ``zero``, ``blur``,
    ``uniform``, ``mean`` (of ``data``), ``max`` or an array of the image's shape, blended
    toward the image by ``baseline_alpha`` (0 = baseline, 1 = image). ``data`` are reference
    images (mean baseline, expected-gradient baselines). Remaining keyword arguments are the
    method's parameters (see ``methods.spec(method)``). ``weights`` is a torchvision weights
    member (class names, resize and crop of ``x``, normalisation); ``layout="NHWC"`` declares
    a model that takes channels-last batches. Classes are computed in chunks that fit
    ``memory_budget`` bytes of activations (default 2 GiB, less on a smaller machine), and
    work estimated above ``max_seconds`` raises ``InputError`` with the estimate before it
    starts. The model, ``x`` and ``data`` are never modified; bad input raises ``InputError``
    with the fix in its message.
    """
    adapter = ModelAdapter(model, preprocess=preprocess, classes=classes, output=output,
                           weights=weights, layout=layout)
    image, notes = adapter.image(x)
    data_batch = adapter.batch(data, image) if data is not None else None
    return compute(adapter, image, method, targets, params, baseline, baseline_alpha,
                   data_batch, notes=notes, progress=progress, memory_budget=memory_budget,
                   max_seconds=max_seconds)
