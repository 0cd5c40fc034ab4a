"""The GlobalWidget driven as a user would, without a browser: the class visualisation
updates while it runs, stops on request and restarts on a change; the tree refits at a new
depth; a pick opens an ExplainWidget; bad values read as messages; the model is unchanged
and closing stops every job."""

import io
import itertools
import time

import numpy as np
import pytest
import torch
import traitlets
from PIL import Image

from tests.conftest import checksum
from xai_widgets import ExplainWidget, InputError
from xai_widgets.encoding import decode
from xai_widgets.widgets.global_widget import GlobalWidget

TIMEOUT = 120
N_IMAGES = 120


def until(condition, timeout: float = 60.0) -> None:
    """Poll ``condition()`` until it holds (the widget works on its own thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not hold in time")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def made(demo):
    model, images, _labels, classes = demo
    before = checksum(model)
    flags = [p.requires_grad for p in model.parameters()]
    gw = GlobalWidget(model, images[:N_IMAGES], classes=classes, target=3, steps=48, depth=2,
                      budget=6).wait(TIMEOUT)
    yield gw, before, flags
    gw.close()


def test_the_first_views(made):
    gw, _, _ = made
    assert gw.errors == {} and gw.error == ""
    v = gw.visualization
    assert v.target == 3 and v.steps == 48 and int(np.argmax(v.probabilities)) == 3
    panel = gw.panel("visualize")
    assert "✓" in panel.note.value and "class 3: p = " in panel.note.value
    assert panel.view.title == f"class 3 · step 48 of 48 · p = {v.score:.1%}"
    assert decode(panel.view.image).shape == (1, 28, 28)
    assert "<svg" in panel.curve.value and "<polyline" in panel.curve.value
    assert panel.stop.disabled and not gw.running
    tree = gw.panel("tree")
    assert f"fidelity <b>{gw.tree.fidelity:.1%}</b>" in tree.fidelity.value
    assert tree.drawing.value and "xai-error" not in tree.note.value
    picks = gw.panel("picks")
    assert len(gw.picks.indices) == 6 and len(picks.tiles.captions) == 6
    assert "cover" in picks.note.value and len(picks.tiles.groups[0]["indices"]) == 6


def test_the_image_updates_during_a_run(made):
    gw, _, _ = made
    panel = gw.panel("visualize")
    steps, images = [], []
    gw.state.observe(lambda change: steps.append(change["new"].step), "frame")
    panel.view.observe(lambda change: images.append(decode(change["new"]).copy()), "image")
    panel.steps.value = 96  # the front end's box: a new run
    assert gw.running and not panel.stop.disabled
    gw.wait(TIMEOUT)
    assert steps[-1] == 96 and len([s for s in steps if s < 96]) >= 10
    assert steps[:-1] == sorted(steps[:-1])  # in order, every few steps
    assert len(images) >= 10 and any((a != b).any() for a, b in itertools.pairwise(images))
    assert gw.visualization.steps == 96 and gw.frame.points[-1][0] == 96
    assert "step 96 of 96" in panel.view.title


def test_a_change_of_class_supersedes_the_run(made):
    gw, _, _ = made
    gw.steps = 3000
    until(lambda: gw.frame is not None and gw.frame.target == 3 and gw.frame.step < 3000)
    gw.panel("visualize").picker.value = 5  # the front end's class picker
    gw.state.steps = 40
    gw.wait(TIMEOUT)
    assert gw.visualization.target == 5 and gw.visualization.steps == 40
    assert gw.frame.target == 5 and gw.panel("visualize").view.title.startswith("class 5 ·")


def test_stop_keeps_the_last_image_and_can_run_again(made):
    gw, _, _ = made
    panel = gw.panel("visualize")
    gw.steps = 4000
    until(lambda: gw.frame is not None and gw.frame.steps == 4000 and gw.frame.step >= 250)
    panel.stop.click()
    assert not gw.running and panel.stop.disabled
    gw.wait(TIMEOUT)
    stopped = gw.frame
    assert 250 <= stopped.step < 4000 and gw.visualization is None
    assert f"stopped at step {stopped.step} of 4000" in panel.note.value
    assert f"step {stopped.step} of 4000" in panel.view.title
    time.sleep(0.3)
    assert gw.frame is stopped  # nothing arrives after the stop
    gw.steps = 32  # usable: a change runs again
    gw.wait(TIMEOUT)
    assert gw.visualization.steps == 32 and gw.visualization.target == 5
    panel.run.click()  # and so does "run again", with the same settings
    gw.wait(TIMEOUT)
    assert gw.visualization.steps == 32 and "✓" in panel.note.value


def test_bad_values_read_as_messages(made):
    gw, _, _ = made
    with pytest.raises(InputError, match=r"target 12 is out of range: the model has 10 classes"):
        gw.target = 12
    with pytest.raises(InputError, match=r"regulariser l2 must be a number in 0..10"):
        gw.regularisers = {**gw.regularisers, "l2": -1.0}
    with pytest.raises(InputError, match="unknown regulariser 'sharpness'"):
        gw.regularisers = {"sharpness": 1.0}
    with pytest.raises(InputError, match=r"depth must be in 1\.\.8"):
        gw.depth = 9
    with pytest.raises(traitlets.TraitError):
        gw.visualization = None  # read-only
    panel = gw.panel("visualize")
    gw.state.set("target", 12)  # as a control would: shown, not raised
    assert "out of range" in panel.note.value and "xai-error" in panel.note.value
    assert "Traceback" not in panel.note.value and gw.errors == {"visualize": gw.error}
    gw.state.set("regularisers", {**gw.regularisers, "tv": float("nan")})
    assert "regulariser tv must be a number in 0..10" in panel.note.value
    assert gw.target == 5 and np.isfinite(gw.regularisers["tv"])  # the last good values
    panel.controls["tv"].value = 0.2  # a good value clears the message and runs
    gw.wait(TIMEOUT)
    assert gw.regularisers["tv"] == pytest.approx(0.2) and gw.errors == {}
    assert "xai-error" not in panel.note.value and gw.visualization.settings["tv"] == 0.2


def test_a_failing_model_shows_its_message_in_every_panel(demo):
    class Broken(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x) * (x.sum() * 0 + float("nan"))

    model, images, _labels, classes = demo
    gw = GlobalWidget(Broken(model), images[:12], classes=classes, steps=8, budget=2)
    gw.wait(TIMEOUT)
    note = gw.panel("visualize").note.value
    assert "the model returned NaN or infinite scores" in note and "xai-error" in note
    for name in ("tree", "picks"):
        assert "xai-error" in gw.panel(name).note.value, name
    assert "Traceback" not in "".join(gw.panel(n).note.value for n in gw.panels)
    assert not gw.running and gw.visualization is None
    gw.close()


def test_a_new_depth_refits_the_tree(made):
    gw, _, _ = made
    tree = gw.panel("tree")
    shallow, drawing = gw.tree, tree.drawing.value
    tree.depth.value = 6  # the front end's slider
    gw.wait(TIMEOUT)
    assert gw.depth == 6 and gw.tree is not shallow
    assert gw.tree.fidelity > shallow.fidelity
    assert f"{gw.tree.fidelity:.1%}" in tree.fidelity.value and tree.drawing.value != drawing
    assert "the trees of depth 1..8 were fitted on" in tree.note.value


def test_a_click_on_a_pick_opens_it(made):
    gw, _, _ = made
    picks = gw.panel("picks")
    picks.budget.value = 4  # the front end's slider
    gw.wait(TIMEOUT)
    assert len(gw.picks.indices) == 4 and len(picks.tiles.captions) == 4
    picks.tiles.selected = 2  # a click on the third thumbnail
    index = int(gw.picks.indices[2])
    assert gw.selected == index
    explainer = picks.detail.children[1]
    assert isinstance(explainer, ExplainWidget)
    assert f"image #{index}" in picks.detail.children[0].value
    explainer.wait(TIMEOUT)
    assert explainer.error == "" and explainer.explanation.method == gw.state.method
    assert torch.equal(explainer.state.image[0].cpu(), gw.state.images[index])
    gw.selected = int(gw.picks.indices[0])  # from Python: the other thumbnail is marked
    assert picks.tiles.selected == 0 and picks.detail.children[1] is not explainer
    assert explainer.comm is None  # the one before is closed


def test_the_picture_for_viewers_without_a_kernel(made):
    gw, _, _ = made
    picture = Image.open(io.BytesIO(gw.snapshot()))
    assert picture.size[0] == 600 and picture.size[1] > 250
    assert "visualised" in gw._snapshot_text() and "fidelity" in gw._snapshot_text()


def test_the_model_is_unchanged(made, demo):
    _, before, flags = made
    model = demo[0]
    assert checksum(model) == before and not model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_close_stops_every_job(demo):
    model, images, _labels, classes = demo
    gw = GlobalWidget(model, images[:30], classes=classes, steps=10_000, budget=2)
    until(lambda: gw.frame is not None)
    worker = gw.state.engine._thread
    gw.close()
    worker.join(30)
    assert not worker.is_alive()
    last = gw.state.frame
    time.sleep(0.2)
    assert gw.state.frame is last and gw.state.frame.step < 10_000


def test_many_classes_take_a_class_combobox(images):
    """Over 100 classes the class picker is a combobox: a name or an index."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 150)).eval()
    names = [f"class {i}" for i in range(150)]
    gw = GlobalWidget(model, images[:20], classes=names, target=0, steps=4, budget=2)
    panel = gw.panel("visualize")
    assert panel.picker.value == "class 0 (0)"
    panel.picker.value = "class 42"  # a name typed in
    assert gw.target == 42
    panel.picker.value = "120"  # an index
    assert gw.target == 120 and panel.picker.value == "class 120 (120)"
    panel.picker.value = "no such class"
    assert "no class 'no such class'" in panel.note.value and gw.target == 120
    gw.wait(TIMEOUT)
    assert gw.visualization.target == 120
    gw.close()
