"""The static fallback: a displayed widget leaves a PNG of its settled view in the notebook,
which nbconvert's HTML (offline), GitHub's viewer and a kernel-less notebook show."""

import base64
import io
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

from xai_widgets import CompareWidget, DatasetWidget, ExplainWidget
from xai_widgets.widgets import snapshot
from xai_widgets.widgets.snapshot import VIEW, draw_explain, png_bytes
from xai_widgets.zoo import load_clever_hans

MAP_BOX = (8, 30, 308, 330)  # where ExplainWidget's picture draws the map


def decode(data) -> np.ndarray:
    raw = base64.b64decode(data) if isinstance(data, str) else data
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def coloured(pixels: np.ndarray) -> float:
    """The share of the map area tinted red or blue (none before a map is shown)."""
    x0, y0, x1, y1 = MAP_BOX
    box = pixels[y0:y1, x0:x1].astype(int)
    return float(((box.max(-1) - box.min(-1)) > 40).mean())


@pytest.fixture
def shown(monkeypatch):
    """Record what ``display``/``update_display`` would send to the front end."""
    import IPython.display

    sent = []
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, **kw: sent.append(("display", obj, kw)))
    monkeypatch.setattr(IPython.display, "update_display",
                        lambda obj, **kw: sent.append(("update", obj, kw)))
    return sent


def test_the_bundle_carries_a_picture_of_the_settled_view(demo):
    model, images, _labels, classes = demo
    w = ExplainWidget(model, images[0], classes=classes, method="saliency").wait(60)
    bundle = w._repr_mimebundle_()
    assert bundle[VIEW]["model_id"] == w.model_id
    first = decode(bundle["image/png"])
    assert first.shape[1] == 600 and 300 < first.shape[0] < 600
    assert len(base64.b64decode(bundle["image/png"])) < 100_000
    assert coloured(first) > 0.01 and "Saliency" in bundle["text/plain"]
    w.target = 3
    after_target = decode(w.wait(60)._repr_mimebundle_()["image/png"])
    w.method = "occlusion"
    after_method = decode(w.wait(60)._repr_mimebundle_()["image/png"])
    assert after_target.shape != first.shape or (after_target != first).any()
    assert after_method.shape != after_target.shape or (after_method != after_target).any()
    assert "Occlusion" in w._repr_mimebundle_()["text/plain"]
    w.close()


def test_display_shows_the_live_view_then_a_hidden_picture_updated_in_place(demo, shown,
                                                                            monkeypatch):
    monkeypatch.setattr(snapshot, "DELAY", 60.0)  # only wait() may refresh here
    model, images, _labels, classes = demo
    w = ExplainWidget(model, images[1], classes=classes, method="saliency")
    w._ipython_display_()
    (_, live, _live_kw), (_, static, static_kw) = shown
    assert live[VIEW]["model_id"] == w.model_id and "image/png" not in live
    assert static[VIEW]["model_id"] == "" and static_kw["display_id"]  # hidden by widget managers
    assert static_kw["metadata"]["xai_widgets"]["static_view_of"] == w.model_id
    w.wait(60)
    before = [obj for kind, obj, kw in shown][-1]["image/png"]
    w.method = "occlusion"
    w.wait(60)  # refreshes before it returns, so the cell that waits carries the picture
    updates = [(obj, kw) for kind, obj, kw in shown if kind == "update"]
    assert updates and updates[-1][1]["display_id"] == static_kw["display_id"]
    assert updates[-1][0]["image/png"] != before and "Occlusion" in updates[-1][0]["text/plain"]
    assert coloured(decode(updates[-1][0]["image/png"])) > 0.01
    w.wait(60)
    assert len([s for s in shown if s[0] == "update"]) == len(updates)  # unchanged: not re-sent
    w.close()


def test_the_picture_is_redrawn_from_the_worker_only_for_final_results(demo, shown, monkeypatch):
    monkeypatch.setattr(snapshot, "DELAY", 0.05)
    model, images, _labels, classes = demo
    w = ExplainWidget(model, images[2], classes=classes, method="saliency").wait(60)
    w._ipython_display_()
    drawn, rounds = [], []
    draw = w.snapshot  # what every refresh of the picture draws with
    monkeypatch.setattr(w, "snapshot",
                        lambda: drawn.append(w.state.explanation.refining) or draw())
    w.state.observe(lambda change: rounds.append(change["new"].refining), "explanation")
    w.params = {"smoothing": "smoothgrad", "nt_samples": 64}
    w.state.wait(60)  # not w.wait(): the refresh must come from the background timer
    deadline = time.monotonic() + 10
    while not [s for s in shown if s[0] == "update"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(rounds) and drawn and not any(drawn)  # interim rounds shown, never drawn
    assert [s for s in shown if s[0] == "update"]
    w.close()


def test_compare_and_dataset_widgets_carry_pictures_too(demo):
    model, images, _labels, classes = demo
    cw = CompareWidget(model, images[0], methods=["saliency", "grad_cam"], classes=classes)
    before = cw.snapshot()
    after = decode(cw.wait(120)._repr_mimebundle_()["image/png"])
    assert after.shape[1] == 600 and (after.shape != decode(before).shape
                                      or (after != decode(before)).any())
    assert "2 methods" in cw._repr_mimebundle_()["text/plain"]
    cw.close()
    hans = load_clever_hans()
    sevens = np.flatnonzero(hans.labels == 7)[:40]
    dw = DatasetWidget(hans.model, hans.images[sevens], target=7)
    bundle = dw.wait(120)._repr_mimebundle_()
    picture = decode(bundle["image/png"])
    assert picture.shape[1] == 600 and "clusters" in bundle["text/plain"]
    assert len(base64.b64decode(bundle["image/png"])) < 100_000
    dw.close()


NOTEBOOK = [
    "from xai_widgets import ExplainWidget\nfrom xai_widgets.zoo import load_demo\n"
    "model, images, labels, classes = load_demo('mnist')",
    "w = ExplainWidget(model, images[0], classes=classes)\ndisplay(w)\nw.wait(60);",
    # a later change, refreshed from the background timer thread (not from wait())
    "import time\nbefore = w._snapshot_shown\nw.method = 'occlusion'\nw.state.wait(60)\n"
    "deadline = time.monotonic() + 20\n"
    "while w._snapshot_shown == before and time.monotonic() < deadline:\n    time.sleep(0.05)\n"
    "time.sleep(0.5)\nassert w._snapshot_shown != before",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    path = folder / "saved.ipynb"
    nbformat.write(nb, path)
    return nb, path


def pictures(html: str) -> list[str]:
    from bs4 import BeautifulSoup  # nbconvert's own dependency

    sources = [img.get("src", "") for img in BeautifulSoup(html, "html.parser").find_all("img")]
    return [s.split(",", 1)[1] for s in sources if s.startswith("data:image/png;base64,")]


def settled_picture(nb) -> tuple[str, str]:
    """The picture output of the widget's cell, and the live view's model id."""
    outputs = nb.cells[1].outputs
    assert [o.output_type for o in outputs] == ["display_data", "display_data"]
    live, static = outputs
    model_id = live.data[VIEW]["model_id"]
    assert static.data[VIEW]["model_id"] == "" and "image/png" not in live.data
    assert static.metadata["xai_widgets"]["static_view_of"] == model_id
    # the notebook was saved with widget state: nbconvert would pick the widget view for
    # the live output (a CDN script), so only the picture output can show offline
    assert model_id in nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    assert "Occlusion" in static.data["text/plain"] and "ms" in static.data["text/plain"]
    return static.data["image/png"], model_id


def test_a_saved_notebook_shows_the_settled_view_in_nbconverts_html(executed, demo):
    from nbconvert import HTMLExporter

    nb, _ = executed
    png, model_id = settled_picture(nb)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert pictures(html) == [png]  # once, where the widget was: no duplicate picture
    assert f'"model_id": "{model_id}"' in html  # and the live view, for online viewers
    model, images, _labels, classes = demo
    w = ExplainWidget(model, images[0], classes=classes)
    empty = decode(png_bytes(draw_explain(w.state, None)))
    w.close()
    settled = decode(png)
    assert coloured(settled) > 0.01 and coloured(empty) == 0
    assert settled.shape != empty.shape or (settled != empty).any()
    stateless = nbformat.from_dict(nb)  # saved without widget state (JupyterLab's default)
    del stateless.metadata["widgets"]
    html, _ = HTMLExporter().from_notebook_node(stateless)
    assert pictures(html) == [png] and "needs a running kernel" in html


def test_jupyter_nbconvert_to_html_has_the_picture_where_the_widget_was(executed, tmp_path):
    nb, path = executed
    png, model_id = settled_picture(nb)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(path),
                    "--output-dir", str(tmp_path)], check=True, capture_output=True, timeout=120)
    html = (tmp_path / "saved.html").read_text()
    assert pictures(html) == [png]
    # right after the widget's live view, before the next cell's code
    assert html.index(f'"model_id": "{model_id}"') < html.index(png) < html.index("occlusion")


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")
def test_jupyterlab_shows_the_live_widget_and_saves_the_refreshed_picture(tmp_path):
    """Live, the picture output is hidden; a click in the view refreshes it from the
    kernel's background thread, and saving writes the new picture into the notebook."""
    from tests.browser_support import chromium, close_page, jupyter_server, run_all_cells

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK[0] + "\n"
                                  "w = ExplainWidget(model, images[0], classes=classes)\nw")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    (tmp_path / "root").mkdir()
    nbformat.write(nb, tmp_path / "root" / "live.ipynb")
    with jupyter_server(tmp_path / "root", tmp_path / "config", tmp_path / "jupyter.log") as url, \
            chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{url}/lab/tree/live.ipynb")
        run_all_cells(page, "live.ipynb")
        page.wait_for_function("() => (document.querySelector('.xai-status') || {}).textContent"
                               "?.includes('ms')", timeout=60_000)
        outputs = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-child')]
            .map(o => [o.getBoundingClientRect().height, o.querySelectorAll('img').length])""")
        assert len(outputs) == 2 and outputs[0][0] > 300 and outputs[1] == [0, 0]
        page.locator(".xai-tile[data-index='3']").click()
        page.wait_for_function("() => document.querySelector('.xai-heatmap-title')"
                               ".textContent.includes('class 3')", timeout=30_000)
        saved = None
        for _ in range(20):  # the refresh follows the settled view by DELAY
            page.wait_for_timeout(500)
            page.keyboard.press("Control+s")
            page.wait_for_timeout(500)
            saved = nbformat.read(tmp_path / "root" / "live.ipynb", as_version=4)
            if len(saved.cells[0].outputs) == 2 and \
                    "class 3" in saved.cells[0].outputs[1].data["text/plain"]:
                break
        close_page(page, "live.ipynb")
    live, static = saved.cells[0].outputs
    assert "image/png" not in live.data and "class 3" in static.data["text/plain"]
    assert coloured(decode(static.data["image/png"])) > 0.01
