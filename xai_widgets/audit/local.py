"""The local engine: each unfinished chunk is read, explained in shared batched passes,
resized, written and marked done, in row order, in this process.

For saliency and input × gradient the predictions come from the same forward pass whose
gradient is the map (one pass per batch); integrated gradients and Grad-CAM need one extra
forward without gradients for the predictions. The maps are ``xai_widgets.batch``'s (the
same ``_attribute``), resized to ``map_size`` with area interpolation.

>>> import torch
>>> from xai_widgets.adapter import ModelAdapter
>>> from xai_widgets.audit.local import Plan, explain_rows
>>> from xai_widgets.audit.sources import open_source
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> rows = next(open_source(images[:4], labels=labels[:4]).read([(0, 4)]))
>>> out = explain_rows(ModelAdapter(model), rows, Plan("saliency", map_size=14, top_k=3))
>>> out["maps"].shape, out["topk_classes"].shape, (out["predictions"] == labels[:4].numpy()).all()
((4, 14, 14), (4, 3), np.True_)
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from xai_widgets.batch import _attribute
from xai_widgets.errors import Cancelled, InputError

FUSED = ("saliency", "input_x_gradient")  # the map's own forward pass gives the prediction


@dataclass(frozen=True)
class Plan:
    """What to compute for every row (everything but the model and the rows)."""

    method: str = "integrated_gradients"
    targets: str | int = "predicted"  # "predicted", "labels" (unknown → predicted) or a class
    n_steps: int = 32
    batch_size: int = 256
    map_size: int = 64
    top_k: int = 5

    def dict(self) -> dict:
        return asdict(self)


def explain_rows(adapter, rows, plan: Plan, cancelled: Callable[[], bool] | None = None) -> dict:
    """The store's columns for one ``Rows`` read from a source (failed rows: zero map,
    prediction -1)."""
    m, size = len(rows.labels), plan.map_size
    out = {"maps": np.zeros((m, size, size), np.float32),
           "predictions": np.full(m, -1, np.int64), "labels": np.asarray(rows.labels),
           "topk_classes": np.full((m, plan.top_k), -1, np.int64),
           "topk_probabilities": np.zeros((m, plan.top_k), np.float32), "failed": rows.failed}
    ok = np.array([rows.start + i not in rows.failed for i in range(m)], bool)
    if not ok.any():
        return out
    x = rows.images[torch.from_numpy(ok)].to(adapter.device)
    logits, maps = _forward_explain(adapter, x, np.asarray(rows.labels)[ok], plan, cancelled)
    probabilities = adapter.to_probabilities(logits)
    k = min(plan.top_k, probabilities.shape[1])
    top = probabilities.topk(k, dim=1)
    out["predictions"][ok] = logits.argmax(1).cpu().numpy()
    out["topk_classes"][ok, :k] = top.indices.cpu().numpy()
    out["topk_probabilities"][ok, :k] = top.values.float().cpu().numpy()
    out["maps"][ok] = resize(maps, size).numpy()
    return out


def resize(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(M,H,W) maps to (M,size,size) by area interpolation, as float32 on the CPU."""
    maps = maps.detach().float()
    if tuple(maps.shape[-2:]) != (size, size):
        maps = F.interpolate(maps[:, None], size=(size, size), mode="area")[:, 0]
    return maps.cpu()


def _targets(plan: Plan, labels: np.ndarray, predicted: torch.Tensor,
             n_classes: int) -> torch.Tensor:
    if plan.targets == "predicted":
        return predicted
    if plan.targets == "labels":
        known = torch.as_tensor(labels, device=predicted.device)
        target = torch.where(known >= 0, known, predicted)
    else:
        target = torch.full_like(predicted, int(plan.targets))
    if int(target.min()) < 0 or int(target.max()) >= n_classes:
        raise InputError(f"targets must be in 0..{n_classes - 1}: check targets= and the labels")
    return target


def _check_scores(out: torch.Tensor, n: int) -> None:
    if out.ndim != 2 or out.shape[0] != n:
        raise InputError(f"the model returned shape {tuple(out.shape)} for {n} image(s); an "
                         "image classifier must return (batch, n_classes) scores")


def _forward_explain(adapter, x: torch.Tensor, labels: np.ndarray, plan: Plan,
                     cancelled) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, maps) of a batch of images, in passes of at most ``batch_size`` images
    (of ``batch_size // n_steps`` images for integrated gradients)."""
    module = adapter.forward_module
    logits, maps = [], []
    with torch.enable_grad(), adapter.eval_mode():
        if plan.method in FUSED:
            for start in range(0, len(x), plan.batch_size):
                _check_cancelled(cancelled)
                chunk = x[start:start + plan.batch_size].detach().requires_grad_(True)
                scores = module(chunk)
                _check_scores(scores, len(chunk))
                target = _targets(plan, labels[start:start + len(chunk)], scores.argmax(1),
                                  scores.shape[1])
                grad = torch.autograd.grad(scores.gather(1, target[:, None]).sum(), chunk)[0]
                maps.append(grad.abs().sum(1) if plan.method == "saliency"
                            else (chunk * grad).sum(1))
                logits.append(scores.detach())
            return torch.cat(logits), torch.cat(maps)
        with torch.no_grad():
            for start in range(0, len(x), plan.batch_size):
                scores = module(x[start:start + plan.batch_size])
                _check_scores(scores, len(scores))
                logits.append(scores)
        logits_all = torch.cat(logits)
        target = _targets(plan, labels, logits_all.argmax(1), logits_all.shape[1])
        per_pass = max(1, plan.batch_size // (plan.n_steps if plan.method ==
                                              "integrated_gradients" else 1))
        for start in range(0, len(x), per_pass):
            _check_cancelled(cancelled)
            maps.append(_attribute(adapter, x[start:start + per_pass],
                                   target[start:start + per_pass], plan.method,
                                   plan.n_steps).detach())
    return logits_all, torch.cat(maps)


def _check_cancelled(cancelled) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled()


def run(adapter, source, store, plan: Plan, progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None) -> None:
    """Explain and store every chunk that is not done yet; progress(rows done, rows).

    A pipeline of three: one thread reads the next chunk and one writes the previous chunk
    while this thread explains (torch releases the GIL), so reading and writing hide behind
    the passes; at most one chunk waits on each side, so memory stays flat."""
    done = store.rows_done()
    if progress is not None:
        progress(done, store.n)
    rows_iter = source.read(store.pending())
    with ThreadPoolExecutor(1, "audit-read") as reader, \
            ThreadPoolExecutor(1, "audit-write") as writer:
        ahead, writing = reader.submit(next, rows_iter, None), None
        try:
            while (rows := ahead.result()) is not None:
                ahead = reader.submit(next, rows_iter, None)
                _check_cancelled(cancelled)
                out = explain_rows(adapter, rows, plan, cancelled)
                if writing is not None:
                    previous, writing = writing, None
                    done = _finish(previous, done, store.n, progress)
                writing = writer.submit(store.write, rows.start, out["maps"],
                                        out["predictions"], out["labels"], out["topk_classes"],
                                        out["topk_probabilities"], out["failed"])
        finally:
            ahead.cancel()
            if writing is not None:  # a chunk already explained is kept (and reported)
                done = _finish(writing, done, store.n, progress)


def _finish(writing: Future, done: int, total: int, progress) -> int:
    start, stop = writing.result()
    done += stop - start
    if progress is not None:
        progress(done, total)
    return done
