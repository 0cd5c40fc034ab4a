"""The superpixel panel: hide segments, watch the probabilities move, one forward pass each."""

import numpy as np
import pytest
import torch

from tests.test_widget import TIMEOUT, CountingModel
from xai_widgets import ExplainWidget, InputError
from xai_widgets.superpixels import segment
from xai_widgets.widgets.superpixel_panel import segment_weights


@pytest.fixture
def counted(model, image):
    counting = CountingModel(model)
    w = ExplainWidget(counting, image).wait(TIMEOUT)
    w.tab = "superpixels"
    w.wait(TIMEOUT)
    yield w, counting
    w.close()


def test_segments_trait_is_the_label_map(counted, image):
    w, _ = counted
    assert w.segmentation == "slic" and w.hidden_segments == []
    np.testing.assert_array_equal(w.segments, segment(image, "slic").numpy())
    assert w.segments.shape == (28, 28)
    np.testing.assert_array_equal(w.probabilities, w.explanation.probabilities)
    assert w.shown == "the image"


def test_segments_are_computed_only_when_on_screen(model, image):
    w = ExplainWidget(model, image, method="saliency").wait(TIMEOUT)
    assert w.segments is None  # the superpixel tab is closed
    w.tab = "superpixels"
    assert w.wait(TIMEOUT).segments is not None
    w.close()


def test_hiding_or_showing_a_segment_costs_one_forward_pass(counted, model, image):
    w, counting = counted
    for hidden in ([3], [3, 7], [7]):
        before = counting.calls
        w.hidden_segments = hidden
        w.wait(TIMEOUT)
        assert counting.calls - before == 1
    before = counting.calls
    w.hidden_segments = []  # all shown again: the explanation's own probabilities
    w.wait(TIMEOUT)
    assert counting.calls == before
    w.hidden_segments = [0, 1, 2]
    w.wait(TIMEOUT)
    keep = ~np.isin(w.segments, [0, 1, 2])
    masked = image * torch.from_numpy(keep).float()  # the zero baseline
    with torch.no_grad():
        expected = torch.softmax(model(masked[None]), 1)[0].numpy()
    np.testing.assert_allclose(w.probabilities, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w.panels["bars"].bars.y, expected, rtol=1e-5, atol=1e-7)
    assert "3 segment(s) hidden" in w.panel("superpixels").view.caption
    assert w.shown == "the image with 3 segment(s) hidden"


def test_hidden_segments_take_a_counterfactual_baseline(counted, images):
    w, _ = counted
    w.baseline = "counterfactual:9"  # was "unknown baseline 'counterfactual:9'" in the mask
    w.hidden_segments = [0, 1, 2]
    w.wait(TIMEOUT)
    assert w.error == "" and w.masked.baseline == "counterfactual:9"


def test_a_click_in_the_front_end_hides_a_segment(counted, image):
    w, _ = counted
    on_ink = int(w.segments[image[0].numpy() > 0.5][0])  # a segment over the digit
    w.panel("superpixels").view.hidden = [on_ink]  # what superpixels.js sends on a click
    assert w.hidden_segments == [on_ink]
    w.wait(TIMEOUT)
    assert not np.array_equal(w.probabilities, w.explanation.probabilities)


def test_top_k_buttons(counted):
    w, _ = counted
    panel = w.panel("superpixels")
    weights = segment_weights(w.state)
    top = sorted(np.argsort(-weights)[:5].tolist())
    assert w.top_segments(5) == top
    panel.press("remove")  # the button, with k = 5 in its box
    assert w.hidden_segments == top
    panel.press("keep")
    assert set(w.hidden_segments) == set(range(len(weights))) - set(top)
    w.hide_top_segments(2)
    assert len(w.hidden_segments) == 2 and set(w.hidden_segments) <= set(top)
    panel.press("reset")
    w.wait(TIMEOUT)
    assert w.hidden_segments == []
    np.testing.assert_array_equal(w.probabilities, w.explanation.probabilities)


def test_removing_lime_top_segments_lowers_the_target(model, image):
    w = ExplainWidget(model, image, method="lime").wait(TIMEOUT)
    p0 = w.probabilities[w.target]
    w.hide_top_segments(5)
    w.wait(TIMEOUT)
    assert w.probabilities[w.target] < p0
    w.close()


def test_segmentation_changes_reset_hidden_and_errors(counted):
    w, _ = counted
    w.hidden_segments = [1]
    w.segmentation = "grid"
    w.wait(TIMEOUT)
    assert w.hidden_segments == [] and int(w.segments.max()) + 1 == 49
    with pytest.raises(InputError, match="unknown segmentation"):
        w.segmentation = "watershed"
    with pytest.raises(InputError, match="do not exist"):
        w.hidden_segments = [999]


def test_a_superpixel_method_brings_its_own_segmentation(counted):
    w, _ = counted
    w.method = "kernel_shap"
    w.params = {"segmentation": "grid", "cell": 7, "n_samples": 100}
    w.wait(TIMEOUT)
    assert w.segmentation == "grid" and int(w.segments.max()) + 1 == 16


def test_lime_reports_progress_in_the_widget(model, image):
    w = ExplainWidget(model, image, method="saliency").wait(TIMEOUT)
    seen = []
    w.panels["status"].progress.observe(lambda change: seen.append(change["new"]), "value")
    w.method = "lime"
    w.params = {"n_samples": 2000, "batch_size": 100}
    w.wait(TIMEOUT)
    assert seen and seen[-1] == 1.0 and len(seen) >= 10
    assert w.panels["status"].progress.layout.visibility == "hidden"
    w.close()
