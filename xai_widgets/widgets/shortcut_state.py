"""ShortcutState: what the concept and fix panels of a ``DatasetWidget`` share.

The dataset (the images as shown, their clusters and the model's predictions), the labelled
images a fix is fine-tuned on and measured on (``holdout``: one half each), one engine for
every job that runs the model (newest request per channel wins), and the results as
read-only traits: ``concept``, ``tcav_result``, ``target`` (the shortcut's class) and
``fixed_model`` (the accepted correction). Panels write only their own part.

>>> import torch
>>> from xai_widgets.widgets.shortcut_state import ShortcutState
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> state = ShortcutState(model, images[:40], torch.arange(40) % 2, labels=labels[:40])
>>> state.members(1)[:3].tolist(), len(state.train_images) + len(state.test_images)
([1, 3, 5], 40)
>>> state.close()
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import traitlets

from xai_widgets.adapter import ModelAdapter
from xai_widgets.correction_report import predict
from xai_widgets.engine import Engine, model_lock
from xai_widgets.errors import InputError

CHANNELS = ("concept", "fix", "finetune", "report")
FIX_METHODS = {"project": "project out (P-ClArC, no training)",
               "a_clarc": "fine-tune (A-ClArC)",
               "rrr": "fine-tune (RRR, the concept's region as mask)"}


class ShortcutState(traitlets.HasTraits):
    """Settable: ``chosen`` (the clusters a concept is made of), ``fix_method`` (one of
    ``FIX_METHODS``), ``strength`` (of the projection, 0..1). Read-only: ``concept``,
    ``tcav_result``, ``target`` (the shortcut's class), ``positives`` (the indices of the
    images the concept was learned from), ``fixed_model``, ``error``."""

    chosen = traitlets.Tuple((0,))
    fix_method = traitlets.Enum(list(FIX_METHODS), "project")
    strength = traitlets.Float(1.0)
    concept = traitlets.Any(None, read_only=True)
    tcav_result = traitlets.Any(None, read_only=True)
    target = traitlets.Int(-1, read_only=True)
    positives = traitlets.Any(None, read_only=True)
    fixed_model = traitlets.Any(None, read_only=True)
    error = traitlets.Unicode("", read_only=True)

    def __init__(self, model, images: torch.Tensor, clusters, *, labels=None,
                 target: int | None = None, method: str = "input_x_gradient",
                 preprocess: Callable | None = None, output: str = "auto",
                 classes=None, holdout: tuple | None = None):
        super().__init__()
        self.model, self.images, self.method = model, images, method
        self.preprocess, self.output = preprocess, output
        self.adapter = ModelAdapter(model, preprocess=preprocess, output=output)
        self.clusters = np.asarray(clusters)
        self.labels = None if labels is None else np.asarray(labels)
        self.user_target, self.classes = target, classes
        with model_lock(model):
            self.predictions = predict(self.adapter, images).numpy()
        self.n_classes = self.adapter.n_classes
        self.engine = Engine(self.adapter, CHANNELS)
        self.apply_lock = self.engine.apply_lock
        self._split(holdout)

    def _split(self, holdout) -> None:
        """Half of the labelled images to fine-tune on, half to measure (shuffled, seed 0);
        without ``holdout`` the dataset's own images with their labels when those are class
        ids, else with the model's predictions."""
        if holdout is None:
            images, labels = self.images, self.labels
            usable = (labels is not None and np.issubdtype(labels.dtype, np.integer)
                      and len(labels) and 0 <= labels.min() and labels.max() < self.n_classes)
            self.holdout_note = ("the dataset's images and labels" if usable else
                                 "the dataset's images, labelled by the model's predictions")
            labels = labels if usable else self.predictions
        else:
            images, labels = holdout
            self.holdout_note = f"{len(images)} held-out labelled images"
        labels = torch.as_tensor(np.asarray(labels)).long()
        order = torch.as_tensor(np.random.default_rng(0).permutation(len(images)))
        half = len(images) // 2
        self.train_images, self.train_labels = images[order[:half]], labels[order[:half]]
        self.test_images, self.test_labels = images[order[half:]], labels[order[half:]]

    # -- reading ---------------------------------------------------------------------------
    def n_clusters(self) -> int:
        return int(self.clusters.max()) + 1 if len(self.clusters) else 0

    def members(self, clusters) -> np.ndarray:
        """The indices of the images in one cluster or any of several."""
        return np.flatnonzero(np.isin(self.clusters, clusters))

    def label(self, index: int) -> str:
        return str(self.classes[index]) if self.classes is not None else str(index)

    def shortcut_class(self, clusters) -> int:
        """The DatasetWidget's target, else the class most of the clusters' images are
        predicted as."""
        if self.user_target is not None:
            return int(self.user_target)
        values, counts = np.unique(self.predictions[self.members(clusters)], return_counts=True)
        return int(values[counts.argmax()]) if len(values) else 0

    def most(self, cluster: int) -> str:
        """The cluster's most common label (or predicted class), for the cluster picker."""
        members = self.members(cluster)
        if self.labels is not None and len(members):
            values, counts = np.unique(self.labels[members], return_counts=True)
            return f"most: {values[counts.argmax()]}, {counts.max() / len(members):.0%}"
        return f"most predicted as {self.label(self.shortcut_class(cluster))}"

    # -- writing ---------------------------------------------------------------------------
    def set_result(self, name: str, value) -> None:
        with self.apply_lock:
            self.set_trait(name, value)

    def set(self, name: str, value) -> None:
        """Set a trait from a control; a bad value shows, it is not raised."""
        try:
            setattr(self, name, value)
        except (InputError, traitlets.TraitError) as error:
            self.fail(str(error))

    def fail(self, message: str) -> None:
        self.set_result("error", message)

    def submit(self, channel: str, work, apply, on_error, on_progress=None,
               supersedes: tuple = ()) -> None:
        self.engine.submit(channel, work, apply, on_error, on_progress=on_progress,
                           supersedes=supersedes)

    def wait(self, timeout: float = 120.0) -> ShortcutState:
        if not self.engine.wait(timeout):
            raise TimeoutError(f"the concept and fix panels did not settle within {timeout} s")
        return self

    def close(self) -> None:
        self.engine.close()
