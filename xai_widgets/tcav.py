"""TCAV (Kim et al. 2018) on captum's ``TCAV``: the share of images whose ``target`` score
rises along a concept's direction, tested against directions learned from random splits.

Each of ``runs`` experiments learns the concept's CAV from a random 80 % of its positives and
negatives (captum's default linear classifier); each random experiment learns a CAV from the
same images with the labels shuffled. The p-value is a Welch t-test between the two groups
of scores, one-sided by default (``alternative="greater"``: does the class's score rise
along the concept more often than along random directions?); a concept the class does not
use scores like the random directions. ``"two-sided"`` also flags a concept that lowers the
score, as Kim et al. test it.

>>> from xai_widgets.concepts import Concept
>>> from xai_widgets.tcav import concept_sets
>>> import torch
>>> sets = concept_sets(torch.zeros(10, 1, 4, 4), torch.ones(10, 1, 4, 4), runs=2, seed=0)
>>> [tuple(len(s) for s in pair) for pair in sets.concept], len(sets.random)
([(8, 8), (8, 8)], 2)
"""

from __future__ import annotations

import contextlib
import itertools
import random
import tempfile
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from xai_widgets.adapter import ModelAdapter
from xai_widgets.errors import InputError
from xai_widgets.methods.gradients import seeded


@dataclass(frozen=True)
class TCAVResult:
    """``score``: mean TCAV score of the concept's runs (share of images whose target score
    rises along the CAV); ``p_value`` against ``random_scores``; ``significant`` at
    ``alpha``."""

    score: float
    p_value: float
    scores: tuple[float, ...]
    random_scores: tuple[float, ...]
    layer: str
    target: int
    alpha: float = 0.01

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def random_spread(self) -> tuple[float, float]:
        """Mean and standard deviation of the random directions' scores."""
        return float(np.mean(self.random_scores)), float(np.std(self.random_scores))

    def __str__(self) -> str:
        mean, spread = self.random_spread
        verdict = "significant" if self.significant else "not significant"
        return (f"TCAV score {self.score:.2f} for class {self.target} at {self.layer!r} "
                f"(random directions {mean:.2f} ± {spread:.2f}; p = {self.p_value:.1e}, "
                f"{verdict})")


class ConceptSets(NamedTuple):
    concept: list[tuple[torch.Tensor, torch.Tensor]]  # (positives, negatives) per run
    random: list[tuple[torch.Tensor, torch.Tensor]]  # the same images, labels shuffled


def concept_sets(positives: torch.Tensor, negatives: torch.Tensor, runs: int, seed: int,
                 share: float = 0.8) -> ConceptSets:
    """The image sets of each experiment, drawn from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    n_pos, n_neg = max(2, round(share * len(positives))), max(2, round(share * len(negatives)))
    concept, random = [], []
    for _ in range(runs):
        pos = positives[rng.choice(len(positives), n_pos, replace=False)]
        neg = negatives[rng.choice(len(negatives), n_neg, replace=False)]
        concept.append((pos, neg))
        mixed = torch.cat([pos, neg])[rng.permutation(n_pos + n_neg)]
        random.append((mixed[:n_pos], mixed[n_pos:]))
    return ConceptSets(concept, random)


def tcav(model, images, concept, target: int, *, runs: int = 30, seed: int = 0,
         alpha: float = 0.01, alternative: str = "greater",
         batch_size: int = 64) -> TCAVResult:
    """TCAV of ``concept`` (an ``xai_widgets.concepts.Concept``) for class ``target`` over
    (N,C,H,W) ``images``, with ``runs`` concept and ``runs`` random experiments."""
    from captum.concept import TCAV
    from captum.concept import Concept as CaptumConcept
    from captum.concept._utils.classifier import DefaultClassifier

    from xai_widgets.concepts import _images, layer_module

    if alternative not in ("greater", "two-sided"):
        raise InputError(f"alternative must be 'greater' or 'two-sided'; got {alternative!r}")
    if runs < 2:
        raise InputError(f"runs must be at least 2 for a p-value; got {runs}")
    adapter = ModelAdapter(model, preprocess=concept.preprocess)
    layer_module(model, concept.layer)
    inputs = _images(adapter, images, "images")
    n_classes = adapter.logits(inputs[:1].to(adapter.device)).shape[1]
    if not 0 <= int(target) < n_classes:
        raise InputError(f"target must be a class index in 0..{n_classes - 1}; got {target}")
    sets = concept_sets(concept.positives, concept.negatives, runs, seed)
    ids = itertools.count()
    device = adapter.device

    def pair(pos, neg):
        return [CaptumConcept(next(ids), "positives", [pos.to(device)]),
                CaptumConcept(next(ids), "negatives", [neg.to(device)])]

    experiments = [pair(*s) for s in sets.concept] + [pair(*s) for s in sets.random]
    totals = np.zeros(len(experiments))
    state = random.getstate()  # captum's classifier shuffles with Python's generator
    random.seed(seed)
    with tempfile.TemporaryDirectory() as folder, seeded(seed, device), _restored(state), \
            warnings.catch_warnings(), torch.enable_grad(), adapter.eval_mode():
        warnings.simplefilter("ignore")  # captum warns that its classifier keeps data in memory
        explainer = TCAV(adapter.forward_module, layers=[f"model.{concept.layer}"],
                         model_id="model", classifier=DefaultClassifier(), save_path=folder)
        for chunk in inputs.split(batch_size):
            scores = explainer.interpret(chunk.to(device), experiments, target=int(target))
            totals += len(chunk) * np.array([
                float(next(iter(scores[f"{a.id}-{b.id}"].values()))["sign_count"][0])
                for a, b in experiments])
    totals /= len(inputs)
    concept_scores, random_scores = totals[:runs], totals[runs:]
    return TCAVResult(float(concept_scores.mean()),
                      p_value(concept_scores, random_scores, alternative),
                      tuple(concept_scores.tolist()), tuple(random_scores.tolist()),
                      concept.layer, int(target), alpha)


@contextlib.contextmanager
def _restored(state):
    try:
        yield
    finally:
        random.setstate(state)


def p_value(scores: np.ndarray, random_scores: np.ndarray, alternative: str = "greater") -> float:
    """Welch's t-test of the concept's scores against the random ones; for two constant
    groups 0 when they differ in the tested direction, else 1."""
    from scipy.stats import ttest_ind

    if np.ptp(scores) == 0 and np.ptp(random_scores) == 0:
        differ = (scores[0] > random_scores[0] if alternative == "greater"
                  else scores[0] != random_scores[0])
        return 0.0 if differ else 1.0
    with warnings.catch_warnings():  # a constant group is fine: Welch's test handles it
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(scores, random_scores, equal_var=False,
                               alternative=alternative).pvalue)
