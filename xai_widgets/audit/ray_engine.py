"""The Ray engine: Ray Data hands the unfinished chunks to a pool of actors (one model copy
each, ``map_batches`` with a callable class) that read their rows from the source and
explain them exactly as the local engine does; the driver is the store's only writer.

Ray is optional (``pip install xai_widgets[scale]``). ``audit(..., engine="ray")`` uses the
running Ray instance, or starts a local one (``ray.init()``); ``actors`` defaults to the
cluster's CPUs (GPUs: one actor per GPU).

>>> from xai_widgets.audit.ray_engine import pad
>>> import numpy as np
>>> pad(np.ones((2, 3)), 4).tolist()
[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from xai_widgets.audit.local import Plan, explain_rows
from xai_widgets.errors import Cancelled, InputError

COLUMNS = ("maps", "predictions", "labels", "topk_classes", "topk_probabilities")


def ray_module():
    """ray (with Ray Data), imported on first use (an optional dependency)."""
    try:
        import ray
        import ray.data  # Ray Data is the part the engine needs
    except ImportError:
        raise InputError("engine='ray' needs Ray Data, which is not installed: "
                         "pip install xai_widgets[scale]") from None
    return ray


def pad(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with zero rows appended up to ``rows`` (chunks travel with one shape)."""
    if len(array) == rows:
        return array
    out = np.zeros((rows, *array.shape[1:]), array.dtype)
    out[:len(array)] = array
    return out


class Explainer:
    """One actor: its own copy of the adapter (and model) and of the source reader."""

    def __init__(self, adapter, source, plan: Plan, chunk: int):
        import torch

        torch.set_num_threads(1)
        self.adapter, self.source, self.plan, self.chunk = adapter, source, plan, chunk

    def __call__(self, batch: dict) -> dict:
        results = {name: [] for name in (*COLUMNS, "start", "rows", "failed")}
        ranges = list(zip(batch["start"].tolist(), batch["stop"].tolist(), strict=True))
        for rows in self.source.read(ranges):
            out = explain_rows(self.adapter, rows, self.plan)
            for name in COLUMNS:
                results[name].append(pad(out[name], self.chunk))
            results["maps"][-1] = results["maps"][-1].astype(np.float16)
            results["start"].append(rows.start)
            results["rows"].append(len(rows.labels))
            results["failed"].append(json.dumps({str(k): v for k, v in out["failed"].items()}))
        return {name: np.stack(values) if name in COLUMNS else np.array(values)
                for name, values in results.items()}


def run(adapter, source, store, plan: Plan, progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None, actors: int | None = None) -> None:
    """Explain every chunk that is not done on Ray actors; write each as it arrives."""
    ray = ray_module()
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    done = store.rows_done()
    if progress is not None:
        progress(done, store.n)
    pending = store.pending()
    if not pending:
        return
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    use_gpu = gpus > 0 and adapter.device.type == "cuda"
    size = actors or (gpus if use_gpu else max(1, cpus))
    items = [{"start": start, "stop": stop} for start, stop in pending]
    chunks = ray.data.from_items(items, override_num_blocks=len(items))
    results = chunks.map_batches(
        Explainer, fn_constructor_kwargs={"adapter": adapter, "source": source, "plan": plan,
                                          "chunk": store.chunk},
        batch_size=1, batch_format="numpy", concurrency=size,
        num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1)
    for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
        for i, start in enumerate(batch["start"].tolist()):
            rows = int(batch["rows"][i])
            failed = {int(k): v for k, v in json.loads(str(batch["failed"][i])).items()}
            store.write(start, *(batch[name][i][:rows] for name in COLUMNS), failed)
            done += rows
            if progress is not None:
                progress(done, store.n)
        if cancelled is not None and cancelled():
            raise Cancelled()
