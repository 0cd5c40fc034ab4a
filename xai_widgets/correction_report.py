"""Before and after a correction, on held-out images: clean accuracy, how often the artifact
flips other classes to the shortcut's class, relevance on the artifact, and TCAV.

>>> from xai_widgets import concepts, correct
>>> from xai_widgets.zoo import load_clever_hans, load_demo
>>> demo = load_clever_hans()
>>> _, clean, labels, _ = load_demo()
>>> tagged = demo.masks.flatten(1).any(1)
>>> tag = concepts.Concept.from_region(demo.model, demo.images[tagged][0], demo.masks[tagged][0],
...                                    clean[:60])
>>> table = correct.report(demo.model, correct.project_out(demo.model, tag), clean[500:],
...                        labels[500:], artifact=tag, tcav_runs=0)
>>> table.target, table.values["after"]["flip rate"] < table.values["before"]["flip rate"]
(7, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import InputError

METRICS = ("clean accuracy", "flip rate", "relevance on artifact", "TCAV score",
           "TCAV p-value")


@dataclass(frozen=True)
class CorrectionReport:
    """``values[column][metric]``: columns "before" and one per corrected model; metrics
    ``METRICS`` (fractions in 0..1; the TCAV p-value is one-sided against random directions,
    significant below 0.01; both TCAV rows are None when skipped). ``target``: the shortcut's
    class; ``counts``: how many images each metric was measured on."""

    values: dict
    target: int
    counts: dict

    def rows(self) -> list[dict]:
        return [{"metric": metric, **{column: self.values[column][metric]
                                      for column in self.values}} for metric in METRICS]

    def __str__(self) -> str:
        columns = list(self.values)
        lines = ["metric".ljust(24) + "".join(c.rjust(14) for c in columns)]
        for row in self.rows():
            lines.append(row["metric"].ljust(24) + "".join(
                format_value(row[c], row["metric"]).rjust(14) for c in columns))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return html_table(self)


def format_value(value, metric: str) -> str:
    if value is None:
        return "—"
    if metric == "TCAV p-value":
        return f"{value:.1e}"
    return f"{100 * value:.1f} %"


def html_table(result: CorrectionReport) -> str:
    """The report as an HTML table (the widget's and the notebook's view)."""
    columns = list(result.values)
    head = "".join(f"<th>{c}</th>" for c in ["", *columns])
    body = []
    for row in result.rows():
        cells = [f"<td>{format_value(row[c], row['metric'])}</td>" for c in columns]
        body.append(f"<tr><th>{row['metric']}</th>{''.join(cells)}</tr>")
    note = (f"shortcut class {result.target}; flip rate and relevance over "
            f"{result.counts['artifact']} images of other classes with the artifact pasted in")
    return (f"<table class='xai-report'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table><div class='xai-muted'>{note}</div>")


def report(model: nn.Module, fixed, images, labels, *, artifact, target: int | None = None,
           method: str = "integrated_gradients", n_relevance: int = 200, tcav_runs: int = 30,
           seed: int = 0, before: CorrectionReport | None = None) -> CorrectionReport:
    """Measure ``model`` and ``fixed`` (a model, or a dict name → model; an empty dict
    measures ``model`` alone) on held-out clean
    ``images`` with ``labels``. ``artifact`` is the shortcut's ``Concept``: its patch is
    pasted into the images of the other classes (flip rate: share then predicted as
    ``target``; relevance: mean share of positive ``method`` relevance for ``target`` inside
    the patch, over ``n_relevance`` of them), and it is relearned on each model for TCAV on the
    ``target`` class's images (``tcav_runs=0`` skips TCAV). ``target`` defaults to the class
    ``model`` predicts most for the concept's positives. ``before``: an earlier report of
    ``model`` on the same images and settings, whose "before" column is reused (a live view
    that measures a new correction each time measures only that one)."""
    from xai_widgets.batch import explain_many
    from xai_widgets.concepts import _images
    from xai_widgets.metrics import relevance_mass
    from xai_widgets.tcav import tcav

    adapter = ModelAdapter(model, preprocess=artifact.preprocess)
    images = _images(adapter, images, "images")
    labels = torch.as_tensor(np.asarray(labels)).long()
    if len(labels) != len(images):
        raise InputError(f"{len(images)} images but {len(labels)} labels: pass one label each")
    if target is None:
        target = int(predict(adapter, artifact.positives).mode().values)
    others = images[labels != target]
    if len(others) == 0:
        raise InputError(f"no images of classes other than {target}: the flip rate needs them")
    carrying = artifact.insert(others)
    models = {"before": model, **(dict(fixed) if isinstance(fixed, Mapping)
                                  else {"after": fixed})}
    values = {}
    if before is not None:
        if before.target != target or before.counts["clean"] != len(images):
            raise InputError("before= is a report of other images or another class: measure "
                             "it with the same images, labels and target")
        values["before"] = before.values["before"]
        del models["before"]
    for column, candidate in models.items():
        checked = ModelAdapter(candidate, preprocess=artifact.preprocess)
        row = {"clean accuracy": float((predict(checked, images) == labels).float().mean()),
               "flip rate": float((predict(checked, carrying) == target).float().mean())}
        maps = explain_many(candidate, carrying[:n_relevance], target, method,
                            preprocess=artifact.preprocess)
        row["relevance on artifact"] = float(np.mean([
            relevance_mass(m, artifact.region) for m in maps]))
        row["TCAV score"] = row["TCAV p-value"] = None
        if tcav_runs:
            concept = artifact.relearn(candidate)
            result = tcav(candidate, images[labels == target], concept, target,
                          runs=tcav_runs, seed=seed)
            row["TCAV score"], row["TCAV p-value"] = result.score, result.p_value
        values[column] = row
    counts = {"clean": len(images), "artifact": len(carrying),
              "relevance": min(n_relevance, len(carrying))}
    return CorrectionReport({"before": values.pop("before"), **values}, int(target), counts)


def predict(adapter: ModelAdapter, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([adapter.logits(chunk.to(adapter.device)).argmax(1).cpu()
                      for chunk in images.split(batch_size)])
