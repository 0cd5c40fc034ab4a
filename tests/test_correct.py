"""Corrections of a shortcut: projection (P-ClArC), fine-tuning (A-ClArC, RRR), the report;
the user's model is never changed."""

import numpy as np
import pytest
import torch

from tests.conftest import assert_untouched, checksum
from tests.real_models import torchvision_model
from xai_widgets import InputError, concepts, correct
from xai_widgets.correction_report import METRICS
from xai_widgets.errors import Cancelled


@pytest.fixture(scope="module")
def tag(hans, clean):
    carrier = hans.masks.flatten(1).any(1)
    return concepts.Concept.from_region(hans.model, hans.images[carrier][0],
                                        hans.masks[carrier][0], clean[0][:60])


def called_seven(model, images) -> float:
    with torch.no_grad():
        return float((model(images).argmax(1) == 7).float().mean())


def test_projection_removes_the_shortcut_and_keeps_the_rest(hans, tag, clean):
    images, labels = clean
    others = tag.insert(images[labels != 7])
    fixed = correct.project_out(hans.model, tag, strength=1.0)
    assert called_seven(hans.model, others) > 0.2
    assert called_seven(fixed, others) <= 0.02
    with torch.no_grad():
        accuracy = (fixed(images).argmax(1) == labels).float().mean()
        before = (hans.model(images).argmax(1) == labels).float().mean()
    assert abs(float(accuracy - before)) <= 0.01
    assert type(fixed) is type(hans.model)  # the user's architecture, one layer wrapped


def test_projection_strength_zero_is_the_model_and_strength_is_live(hans, tag, clean):
    images = clean[0][:50]
    fixed = correct.project_out(hans.model, tag, strength=0.0)
    with torch.no_grad():
        assert torch.allclose(fixed(images), hans.model(images), atol=1e-5)
    edit = correct.edit_of(fixed)
    assert edit is not None and correct.edit_of(hans.model) is None
    others = tag.insert(clean[0][clean[1] != 7][:300])
    edit.strength = 1.0
    assert called_seven(fixed, others) < called_seven(hans.model, others)
    assert float(along_concept(fixed, edit, others, tag).abs().max()) < 1e-3


def along_concept(model, edit, images, concept) -> torch.Tensor:
    """The edited layer's output along the concept, relative to the clean images' mean."""
    kept = []
    handle = edit.register_forward_hook(lambda _m, _i, out: kept.append(out.flatten(1)))
    with torch.no_grad():
        model(images)
    handle.remove()
    return (kept[0].double() - concept.clean_mean) @ concept.cav


def test_fine_tuning_is_seeded_reports_progress_and_can_be_cancelled(hans, tag):
    images, labels = hans.images[:64], hans.labels[:64]
    steps = []
    first = correct.finetune(hans.model, images, labels, concept=tag, epochs=1,
                             progress=lambda step, total: steps.append((step, total)))
    again = correct.finetune(hans.model, images, labels, concept=tag, epochs=1, progress=None)
    assert checksum(first) == checksum(again) != checksum(hans.model)
    assert steps[-1][0] == steps[-1][1] == len(steps) >= 2
    assert correct.edit_of(first) is None  # the training-time edit is gone
    with pytest.raises(Cancelled):
        correct.finetune(hans.model, images, labels, concept=tag, progress=None,
                         cancelled=lambda: True)


@pytest.mark.parametrize("method", ["a_clarc", "rrr"])
def test_corrections_leave_the_users_model_unchanged(hans, tag, clean, method):
    model = hans.model
    model.train()
    before = checksum(model)
    try:
        correct.project_out(model, tag, 0.5)
        correct.finetune(model, hans.images[:40], hans.labels[:40], concept=tag,
                         method=method, epochs=1, progress=None)
        correct.report(model, correct.project_out(model, tag), clean[0][:80], clean[1][:80],
                       artifact=tag, n_relevance=8, tcav_runs=2)
        assert_untouched(model, before)
    finally:
        model.eval()


def test_rrr_takes_one_mask_or_one_per_image(hans, tag):
    images, labels = hans.images[:32], hans.labels[:32]
    shared = correct.finetune(hans.model, images, labels, mask=tag.region[0], method="rrr",
                              epochs=1, progress=None)
    per_image = correct.finetune(hans.model, images, labels, mask=tag.region.expand(32, -1, -1, -1),
                                 method="rrr", epochs=1, progress=None)
    assert checksum(shared) == checksum(per_image)
    from_concept = correct.finetune(hans.model, images, labels, concept=tag, method="rrr",
                                    epochs=1, progress=None)
    assert checksum(from_concept) == checksum(shared)


@pytest.mark.parametrize(("options", "message"), [
    ({"method": "magic"}, "unknown correction method"),
    ({"method": "a_clarc"}, "a_clarc needs concept="),
    ({"method": "rrr"}, "rrr needs mask="),
    ({"method": "rrr", "mask": torch.ones(5, 5, dtype=torch.bool)}, "mask of the images' size"),
])
def test_bad_fine_tuning_input_gets_a_clear_error(hans, options, message):
    with pytest.raises(InputError, match=message):
        correct.finetune(hans.model, hans.images[:10], hans.labels[:10], progress=None,
                         **options)


def test_bad_correction_input_gets_a_clear_error(hans, tag, clean):
    with pytest.raises(InputError, match="10 images but 9 labels"):
        correct.finetune(hans.model, hans.images[:10], hans.labels[:9], concept=tag)
    with pytest.raises(InputError, match=r"strength must be in 0\.\.2"):
        correct.project_out(hans.model, tag, strength=5)
    with pytest.raises(InputError, match="no images of classes other than 7"):
        sevens = clean[0][clean[1] == 7][:10]
        correct.report(hans.model, hans.model, sevens, torch.full((10,), 7), artifact=tag,
                       tcav_runs=0)


def test_report_measures_before_and_after(hans, tag, clean):
    images, labels = clean[0][500:700], clean[1][500:700]
    fixed = correct.project_out(hans.model, tag)
    result = correct.report(hans.model, {"projected": fixed}, images, labels, artifact=tag,
                            n_relevance=40, tcav_runs=4)
    assert result.target == 7 and list(result.values) == ["before", "projected"]
    assert [row["metric"] for row in result.rows()] == list(METRICS)
    before, after = result.values["before"], result.values["projected"]
    with torch.no_grad():
        accuracy = float((hans.model(images).argmax(1) == labels).float().mean())
    assert before["clean accuracy"] == pytest.approx(accuracy)
    assert before["flip rate"] == pytest.approx(called_seven(hans.model,
                                                             tag.insert(images[labels != 7])))
    assert after["flip rate"] < before["flip rate"]
    assert after["relevance on artifact"] < 0.5 * before["relevance on artifact"]
    assert before["TCAV score"] > 0.9
    assert "<table" in result._repr_html_() and "flip rate" in str(result)
    reused = correct.report(hans.model, {"half": correct.project_out(hans.model, tag, 0.5)},
                            images, labels, artifact=tag, n_relevance=40, tcav_runs=4,
                            before=result)
    assert reused.values["before"] is before and list(reused.values) == ["before", "half"]
    with pytest.raises(InputError, match="before= is a report of other images"):
        correct.report(hans.model, fixed, images[:50], labels[:50], artifact=tag,
                       tcav_runs=0, before=result)
    assert result.counts == {"clean": 200, "artifact": int((labels != 7).sum()),
                             "relevance": 40}


def test_projection_on_a_resnet(clean):
    """A 1000-class ResNet: the concept at layer4, projected out, the copy runs."""
    model = torchvision_model("resnet18")
    photos = torch.rand(12, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[:16, :16] = True
    concept = concepts.Concept.from_region(model, torch.ones(3, 64, 64), mask, photos)
    fixed = correct.project_out(model, concept)
    with torch.no_grad():
        assert fixed(concept.positives[:2]).shape == (2, 1000)
    edit = correct.edit_of(fixed)
    assert edit is fixed.layer4
    along = along_concept(fixed, edit, concept.positives, concept)
    assert np.abs(along.numpy()).max() < 1e-3 * concept.clean_mean.abs().max().item()


def test_each_correction_meets_the_goals_on_held_out_digits(hans, tag, clean):
    """Fine-tuning on the first 500 held-out digits (tagged as in training), measured on the
    last 500, clean: what benchmarks/bench_correction.py reports."""
    fixes = {"project_out": correct.project_out(hans.model, tag)}
    for method in correct.METHODS:
        fixes[method] = correct.finetune(hans.model, hans.images[:500], hans.labels[:500],
                                         concept=tag, method=method, progress=None)
    result = correct.report(hans.model, fixes, clean[0][500:], clean[1][500:], artifact=tag,
                            n_relevance=100, tcav_runs=0)
    before = result.values["before"]
    assert before["flip rate"] > 0.2 and before["relevance on artifact"] > 0.5
    for name in fixes:
        after = result.values[name]
        assert after["flip rate"] <= 0.02, (name, after)
        assert after["clean accuracy"] >= before["clean accuracy"] - 0.01, (name, after)
        assert after["relevance on artifact"] <= 0.15, (name, after)
