"""The shipped CFRL actor of the MNIST demo CNN: one-pass counterfactuals.

Reproduce it with ``python -m xai_widgets.zoo.train_cfrl``.

>>> from xai_widgets.zoo.cfrl_actor import load_cfrl_actor
>>> from xai_widgets.methods.cfrl import fingerprint
>>> from xai_widgets.zoo import load_demo
>>> actor = load_cfrl_actor("mnist")
>>> actor.model_fingerprint == fingerprint(load_demo("mnist")[0])
True
"""

from __future__ import annotations

import functools
from pathlib import Path

from xai_widgets.errors import InputError

WEIGHTS = Path(__file__).parent / "weights"


@functools.lru_cache(maxsize=1)
def _load(path: Path):
    from xai_widgets.methods.cfrl import CFRLActor

    return CFRLActor.load(path)


def load_cfrl_actor(name: str = "mnist"):
    """The shipped ``CFRLActor`` for ``load_demo("mnist")``'s CNN (with the shipped MNIST
    autoencoder attached), in eval mode; one instance per process."""
    if name != "mnist":
        raise InputError(f"unknown CFRL actor {name!r}: the shipped one is 'mnist'; train "
                         "others with xai_widgets.methods.cfrl.train_cfrl(model, images)")
    return _load(WEIGHTS / "mnist_cfrl_actor.pt")
