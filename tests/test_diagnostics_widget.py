"""The sanity & faithfulness tab uses the view's adapter, preprocess, baseline and engine."""

import time

import numpy as np
import pytest
from torch import nn

from tests.test_widget import TIMEOUT
from xai_widgets import ExplainWidget, explain
from xai_widgets.adapter import ModelAdapter
from xai_widgets.baselines import make_baseline


class Denormalised(nn.Module):
    """The demo CNN behind a normalisation it expects to be undone: needs preprocess=."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x * 0.3081 + 0.1307)


def normalise(x):
    return (x - 0.1307) / 0.3081


@pytest.fixture
def diagnosed(model, image):
    wrapped = Denormalised(model)
    w = ExplainWidget(wrapped, image, method="saliency", baseline="blur", preprocess=normalise)
    w.method = "integrated_gradients"
    w.params = {"n_steps": 16}
    w.tab = "diagnostics"
    w.wait(TIMEOUT)
    yield w, wrapped
    w.close()


def test_curves_use_the_preprocess_and_the_baseline(diagnosed, image):
    w, wrapped = diagnosed
    target = w.target
    deletion = w.faithfulness["deletion"]
    shown = w.state.base_probabilities[target]
    assert deletion.probabilities[0] == pytest.approx(shown, rel=1e-5)  # was 0.20 vs 0.9997
    adapter = ModelAdapter(wrapped, preprocess=normalise)
    blurred = make_baseline("blur", image[None])
    expected_end = adapter.probabilities(blurred)[0, target].item()
    assert deletion.probabilities[-1] == pytest.approx(expected_end, rel=1e-4)


def test_sanity_check_uses_the_views_map(diagnosed, image):
    w, wrapped = diagnosed
    check = w.sanity
    expected = explain(wrapped, image, "integrated_gradients", targets=w.target, baseline="blur",
                       preprocess=normalise, n_steps=16).map(w.target)
    np.testing.assert_allclose(check.maps[0], expected, rtol=1e-4, atol=1e-6)
    assert len(check.layers) == 5 and w.panel("diagnostics").view.title.startswith("randomised")


def test_switching_methods_with_the_tab_open_never_hangs(model, image):
    w = ExplainWidget(model, image, method="saliency").wait(TIMEOUT)
    w.tab = "diagnostics"
    for method in ["deeplift", "guided_backprop", "lrp", "saliency", "grad_cam",
                   "integrated_gradients", "deeplift", "lrp", "guided_backprop", "occlusion"] * 2:
        w.method = method
        time.sleep(0.01)
    w.wait(TIMEOUT)
    assert w.error == "" and w.explanation.method == "occlusion"
    assert w.faithfulness and w.sanity is not None and w.sanity.method == "occlusion"
    assert "computing" not in w.status
    w.close()

