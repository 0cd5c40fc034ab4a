"""``counterfactual()``: the smallest change that makes the model say another class.

>>> from xai_widgets import counterfactual
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> cf = counterfactual(model, images[0], target=9, method="prototype", data=images[100:600])
>>> cf.success and int(cf.path_probabilities[-1].argmax()) == 9
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xai_widgets.adapter import ModelAdapter
from xai_widgets.methods.counterfactuals import Counterfactual, search_counterfactual


def counterfactual(model, x, target: int, method: str = "wachter", *, data: Any = None,
                   classes: Sequence[str] | None = None, preprocess: Callable | None = None,
                   output: str = "auto", autoencoder=None,
                   progress: Callable[[int, int], None] | None = None, actor=None,
                   **params) -> Counterfactual:
    """Search x′ near ``x`` that the model assigns to ``target``.

    ``method`` is ``wachter``, ``prototype`` (needs ``data=`` reference images; uses the
    shipped MNIST autoencoder for 1×28×28 images, else trains a small one on ``data``) or
    ``adversarial``, or ``cfrl``: one forward pass of ``actor`` (a ``CFRLActor`` from
    ``xai_widgets.methods.cfrl.train_cfrl``; default the shipped one, for the MNIST demo CNN
    only). Remaining keyword arguments are the method's parameters
    (``xai_widgets.methods.counterfactuals.PARAMS``). The model and x are never modified.
    """
    adapter = ModelAdapter(model, preprocess=preprocess, classes=classes, output=output)
    image, _ = adapter.image(x)
    data_batch = adapter.batch(data, image) if data is not None else None
    return search_counterfactual(adapter, image, target, method, params, data_batch,
                                 autoencoder=autoencoder, progress=progress, actor=actor)
