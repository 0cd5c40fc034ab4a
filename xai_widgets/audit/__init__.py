"""Dataset audits: attribution maps, predictions and top-k classes of every image of a
dataset, streamed in chunks into a Zarr store, resumable after a crash.

``audit(model, dataset, store=...)`` reads the dataset a chunk at a time (memory does not
grow with it), explains each chunk in batched passes and writes it; a chunk counts only
once its ``done`` flag is written, after its data. Calling ``audit`` again with the same
arguments continues where a killed run stopped; with another model, method or parameter
it refuses (``overwrite=True`` starts over). ``Audit`` reads the results lazily.

>>> import tempfile
>>> from xai_widgets import audit      # the module is callable: audit(...) is audit.audit(...)
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> path = tempfile.mkdtemp() + "/run.zarr"
>>> a = audit(model, images[:40], store=path, method="saliency", map_size=14,
...           labels=labels[:40], chunk_size=16)
>>> len(a), a.progress, a.maps[0:8].shape, a.topk_classes.shape
(40, Progress(done=40, total=40), (8, 14, 14), (40, 5))
>>> bool((a.predictions == a.labels).mean() > 0.8), a.failed
(True, {})
"""

from __future__ import annotations

import hashlib
import platform
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from xai_widgets.adapter import ModelAdapter
from xai_widgets.audit import clusters, local
from xai_widgets.audit.local import Plan
from xai_widgets.audit.sources import open_source
from xai_widgets.audit.store import AuditStore, check_writable, zarr_module
from xai_widgets.batch import BATCHED_METHODS
from xai_widgets.errors import InputError
from xai_widgets.spray import SprayResult

__all__ = ["Audit", "Progress", "audit"]
ENGINES = ("local", "ray")


class Progress(NamedTuple):
    """Rows whose chunk is finished, of all rows."""

    done: int
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


class Audit:
    """The results in an audit store, read lazily (``Audit(path)`` opens one)."""

    def __init__(self, path):
        self.path = Path(path)
        self._store = AuditStore.read(self.path)
        self.metadata: dict = self._store.meta
        self.model = self.source = self.preprocess = None  # set by audit() in this session

    def __len__(self) -> int:
        return self._store.n

    def __repr__(self) -> str:
        done, total = self.progress
        return (f"Audit({str(self.path)!r}, {self.metadata['identity']['method']}, "
                f"{done}/{total} rows)")

    @property
    def progress(self) -> Progress:
        return Progress(self._store.rows_done(), self._store.n)

    @property
    def complete(self) -> bool:
        done, total = self.progress
        return done == total

    @property
    def rows_done(self) -> np.ndarray:
        """(N,) bool: rows whose chunk is finished (the other rows hold fill values)."""
        flags = np.repeat(self._store.done(), self._store.chunk)[:self._store.n]
        return flags

    @property
    def maps(self):
        """(N, map_size, map_size) float16 maps, sliced lazily: ``a.maps[0:100]``."""
        return self._store.arrays["maps"]

    def _column(self, name: str) -> np.ndarray:
        return np.asarray(self._store.arrays[name][:])

    @property
    def predictions(self) -> np.ndarray:
        return self._column("predictions")

    @property
    def labels(self) -> np.ndarray:
        return self._column("labels")

    @property
    def topk_classes(self) -> np.ndarray:
        return self._column("topk_classes")

    @property
    def topk_probabilities(self) -> np.ndarray:
        return self._column("topk_probabilities")

    @property
    def failed(self) -> dict[int, str]:
        """{row: reason} for the rows that could not be read (zero map, prediction -1)."""
        return self._store.failed_rows()

    def spray(self, k: int | str = "auto", size: int = 14, n_neighbors: int = 10,
              classes=None, progress: Callable[[int, int], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> SprayResult:
        """SpRAy over the stored maps, out of core (``spray_large``), of a finished audit:
        the failed rows are skipped and ``classes`` (a class or a list) keeps the rows
        predicted as one of them. Stored as ``clusters`` (-1: not clustered) and
        ``embedding`` (NaN), one row per audit row, replacing an earlier result."""
        return clusters.spray(self, k, size, n_neighbors, classes, progress, cancelled)

    @property
    def clusters(self) -> np.ndarray | None:
        """(N,) int32 SpRAy cluster per row (-1: not clustered), None before ``spray()``."""
        return clusters.read(self.path, "clusters")

    @property
    def embedding(self) -> np.ndarray | None:
        """(N, 2) float32 SpRAy embedding (NaN: not clustered), None before ``spray()``."""
        return clusters.read(self.path, "embedding")


def model_fingerprint(model) -> str:
    """sha256 of the model's state_dict (names and tensor bytes)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        array = tensor.detach().cpu().contiguous().view(-1)
        digest.update(str(array.dtype).encode())
        digest.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return digest.hexdigest()


def _versions() -> dict:
    import captum

    import xai_widgets

    return {"xai_widgets": xai_widgets.__version__, "torch": torch.__version__,
            "captum": captum.__version__, "numpy": np.__version__,
            "zarr": zarr_module().__version__, "python": platform.python_version()}


def _name(fn) -> str | None:
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _check(method, targets, map_size, engine, batch_size, n_steps, top_k, chunk_size) -> None:
    if method not in BATCHED_METHODS:
        raise InputError(f"method {method!r} cannot audit a dataset; choose one of "
                         f"{', '.join(BATCHED_METHODS)}")
    if engine not in ENGINES:
        raise InputError(f"engine must be 'local' or 'ray', got {engine!r}")
    if not (targets in ("predicted", "labels") or (isinstance(targets, (int, np.integer))
                                                    and not isinstance(targets, bool))):
        raise InputError(f"targets must be 'predicted', 'labels' or one class index, got "
                         f"{targets!r}")
    for name, value in (("map_size", map_size), ("batch_size", batch_size),
                        ("n_steps", n_steps), ("top_k", top_k), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name} must be a positive int, got {value!r}")


def audit(model, dataset: Any, store, method: str = "integrated_gradients",
          targets: str | int = "predicted", map_size: int = 64, engine: str = "local",
          batch_size: int = 256, n_steps: int = 32, preprocess: Callable | None = None,
          top_k: int = 5, progress: Callable[[int, int], None] | None = None,
          cancelled: Callable[[], bool] | None = None, *, labels: Any = None,
          chunk_size: int = 1024, output: str = "auto", overwrite: bool = False,
          actors: int | None = None) -> Audit:
    """Explain every image of ``dataset`` into the Zarr store at ``store``; see the module.

    ``dataset``: a torch Dataset or (unshuffled) DataLoader, an array/tensor (N,C,H,W) with
    optional ``labels=``, a folder of images or an IDX images file. ``targets``:
    ``"predicted"``, ``"labels"`` (the predicted class where unknown) or one class.
    ``chunk_size`` rows are written (and resumed) together; ``batch_size`` images share a
    pass. ``engine="ray"`` runs ``actors`` model copies on Ray (``pip install
    xai_widgets[scale]``). ``progress(rows done, rows)``; ``cancelled()`` → ``Cancelled``
    (the store stays resumable).
    """
    _check(method, targets, map_size, engine, batch_size, n_steps, top_k, chunk_size)
    zarr_module()
    if engine == "ray":
        from xai_widgets.audit.ray_engine import ray_module

        ray_module()
    path = Path(store)
    check_writable(path)
    adapter = ModelAdapter(model, preprocess=preprocess, output=output)
    source = open_source(dataset, labels=labels, channels=adapter.expected_channels)
    plan = Plan(method, targets if isinstance(targets, str) else int(targets), int(n_steps),
                int(batch_size), int(map_size), int(top_k))
    identity = {"model": model_fingerprint(model), "method": method, "targets": plan.targets,
                "n_steps": plan.n_steps if method == "integrated_gradients" else None,
                "map_size": plan.map_size, "top_k": plan.top_k, "chunk_size": int(chunk_size),
                "preprocess": _name(preprocess), "output": output,
                "dataset_kind": source.kind, "dataset_length": len(source),
                "dataset_fingerprint": source.fingerprint()}
    meta = {"identity": identity, "n": len(source), "map_size": plan.map_size,
            "top_k": plan.top_k, "chunk_size": int(chunk_size),
            "parameters": {**plan.dict(), "engine": engine, "chunk_size": int(chunk_size),
                           "output": output, "preprocess": _name(preprocess)},
            "model_class": type(model).__qualname__, "versions": _versions()}
    opened = AuditStore.open(path, meta, overwrite=overwrite)
    if engine == "ray":
        from xai_widgets.audit import ray_engine

        ray_engine.run(adapter, source, opened, plan, progress, cancelled, actors=actors)
    else:
        local.run(adapter, source, opened, plan, progress, cancelled)
    result = Audit(path)  # with what made it, for DatasetWidget(a) to open images
    result.model, result.source, result.preprocess = model, source, preprocess
    return result


class _CallableModule(types.ModuleType):
    """``from xai_widgets import audit; audit(model, dataset, store=...)`` calls ``audit``,
    while ``xai_widgets.audit.Audit`` and the submodules stay importable."""

    def __call__(self, *args, **kwargs) -> Audit:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
