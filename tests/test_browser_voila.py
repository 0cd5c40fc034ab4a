"""The teacher's dashboard (``notebooks/05_teacher_dashboard.ipynb``) served by Voilà and
driven in headless Chromium at 1280×800.

Starts ``voila`` on a copy of the notebook on a free loopback port with its own config
folder; Voilà runs the notebook in a ``python3`` kernel and serves the outputs without the
code. The test waits until the ExplainWidget has drawn (map canvas, method dropdown, class
tiles, the bqplot probabilities chart) and the kernel is idle, then changes the method and
clicks a class tile, and checks that the map's title, its pixels and the status line follow.
Screenshots go to ``test-artifacts/voila_*.png``; on failure the page as it was and the
Voilà server's log (``test-artifacts/voila_server.log``) go there too.
Run: ``python -m pytest -q tests/test_browser_voila.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.browser_support import ARTIFACTS, BROWSER_MARKS, ROOT, free_port, serve

pytestmark = BROWSER_MARKS
pytest.importorskip("voila")

NOTEBOOK = ROOT / "notebooks" / "05_teacher_dashboard.ipynb"
WIDGET = ".xai-explain-widget"
TIMEOUT = 180  # seconds for anything that waits on the kernel: the machine may be busy


@contextlib.contextmanager
def voila_server(notebook: Path, config: Path, log_path: Path):
    """``voila`` serving ``notebook`` at its root URL, with its settings under ``config``;
    yields the URL once the port answers, stops the server by its PID at the end."""
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config)}
    command = [sys.executable, "-m", "voila", str(notebook), "--no-browser",
               "--Voila.ip=127.0.0.1", f"--port={port}", f"--Voila.root_dir={notebook.parent}",
               "--VoilaExecutor.startup_timeout=180", "--VoilaExecutor.timeout=300",
               "--show_tracebacks=True"]
    with serve(command, port, log_path, "voila", env=env, cwd=notebook.parent) as url:
        yield url + "/"


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    failed_before = request.session.testsfailed
    root = tmp_path_factory.mktemp("voila-root")
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    log = tmp_path_factory.mktemp("logs") / "voila.log"
    with voila_server(root / NOTEBOOK.name, tmp_path_factory.mktemp("voila-config"), log) as url:
        yield url
    if request.session.testsfailed > failed_before:  # the server's side of a failure
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log, ARTIFACTS / "voila_server.log")


# Voilà's page has no /api/sessions (403); its widget manager holds the one kernel.
KERNEL_IDLE = """() => {
    const app = window.jupyterapp;
    const manager = app && (app.widgetManager || app._widgetManager);
    const kernel = manager && (manager.kernel || manager._kernel);
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""

# the status line shows a finished update (✓) whose text mentions ``want``
SETTLED = """want => {
    const s = document.querySelector('.xai-explain-widget .xai-status');
    return !!s && !!s.querySelector('.xai-ok') && s.textContent.includes(want);
}"""


# the widget's scrolling ancestors whose content is wider than they are
SIDEWAYS = """el => {
    const out = [];
    for (let e = el; e; e = e.parentElement)
        if (e.scrollWidth > e.clientWidth + 1 && (e === document.documentElement
            || ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)))
            out.push(`${e.tagName}.${e.className} ${e.scrollWidth} > ${e.clientWidth}`);
    return out;
}"""

# the height of the content the page scrolls (the widget's nearest scrolling ancestor)
CONTENT_HEIGHT = """el => {
    for (let e = el.parentElement; e; e = e.parentElement)
        if (e.scrollHeight > e.clientHeight + 1
            && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY))
            return e.scrollHeight + (window.innerHeight - e.clientHeight);
    return document.documentElement.scrollHeight;
}"""


def wait_kernel_idle(page, timeout: float = TIMEOUT) -> None:
    page.wait_for_function(KERNEL_IDLE, timeout=timeout * 1000, polling=250)


def wait_settled(page, want: str = "", timeout: float = TIMEOUT) -> None:
    page.wait_for_function(SETTLED, arg=want, timeout=timeout * 1000, polling=100)


def large_pixels(page) -> str:
    return page.eval_on_selector(f"{WIDGET} .xai-heatmap-large", "c => c.toDataURL()")


def title(page) -> str:
    return page.locator(f"{WIDGET} .xai-heatmap-title").first.inner_text()


def act(page, action, title_has: str, status_has: str) -> float:
    """Do ``action``; wait until the map's title says ``title_has``, its pixels have changed
    and the status line shows ✓ with ``status_has``; return the seconds that took."""
    before = large_pixels(page)
    start = time.perf_counter()
    action()
    page.wait_for_function(
        "([want, before]) => {"
        " const t = document.querySelector('.xai-explain-widget .xai-heatmap-title');"
        " const c = document.querySelector('.xai-explain-widget .xai-heatmap-large');"
        " return t && t.textContent.includes(want) && c.toDataURL() !== before; }",
        arg=[title_has, before], timeout=TIMEOUT * 1000, polling=100)
    wait_settled(page, status_has)
    return time.perf_counter() - start


def bars(page) -> list[float]:
    """Heights of the bqplot probability bars as drawn in the SVG."""
    return page.eval_on_selector_all(
        f"{WIDGET} .bqplot svg rect.bar",
        "rs => rs.map(r => parseFloat(r.getAttribute('height')) || 0)")


def assert_clean(page) -> None:
    """No widget error, no traceback or stderr among the dashboard's outputs, no code."""
    assert page.locator(".xai-error").count() == 0, page.locator(".xai-error").first.inner_text()
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                          ).all_inner_texts()
    text = page.locator("body").inner_text()
    assert not errors and "Traceback" not in text, errors or text
    assert page.locator(".jp-InputArea-editor, .jp-CodeMirrorEditor").count() == 0
    assert "load_demo" not in text  # Voilà strips the sources


def test_voila_dashboard_renders_and_responds(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    console = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        # Voilà streams the page while the kernel runs the notebook: wait for the widget
        page.goto(server, wait_until="commit", timeout=TIMEOUT * 1000)
        for part in (".xai-heatmap-large", ".xai-method select", ".xai-tile", ".bqplot svg"):
            page.locator(f"{WIDGET} {part}").first.wait_for(state="visible",
                                                             timeout=TIMEOUT * 1000)
        wait_kernel_idle(page)
        wait_settled(page)
        assert page.locator(f"{WIDGET}").count() == 1
        assert page.locator(f"{WIDGET} .xai-tile").count() == 10
        heights = bars(page)  # bqplot drew the probabilities: one bar per class, not all flat
        assert len(heights) == 10 and max(heights) > 0, heights
        assert page.locator(f"{WIDGET} .bqplot svg .axis text").count() > 0
        predicted = title(page)
        assert "Integrated gradients" in predicted, predicted
        assert_clean(page)
        page.screenshot(path=str(ARTIFACTS / "voila_1_initial.png"))

        # the method dropdown: the map and the status line switch to occlusion
        seconds = {"method → map (s)": act(
            page, lambda: page.locator(f"{WIDGET} .xai-method select").select_option(
                label="Occlusion"), "Occlusion", "Occlusion")}
        assert page.locator(f"{WIDGET} .xai-param-window").count() == 1  # its own controls

        # a class tile other than the one shown: the map explains that class
        shown = int(predicted.split("·")[0].split()[-1])
        other = (shown + 3) % 10
        seconds["tile → map (s)"] = act(
            page, lambda: page.locator(f"{WIDGET} .xai-tile[data-index='{other}']").click(),
            f"class {other}", "Occlusion")
        assert "Occlusion" in title(page)
        wait_kernel_idle(page)
        assert_clean(page)

        # the layout at 1280 px: the widget inside the window, and nothing scrolls sideways
        # (Voilà's page scrolls inside a Lumino panel, not the document)
        box = page.locator(WIDGET).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1280, box
        sideways = page.locator(WIDGET).evaluate(SIDEWAYS)
        assert sideways == [], sideways
        # the whole dashboard in one picture: the viewport as tall as the scrolled content
        height = page.locator(WIDGET).evaluate(CONTENT_HEIGHT)
        page.set_viewport_size({"width": 1280, "height": max(800, min(height, 4000))})
        page.wait_for_function(f"() => document.querySelector('{WIDGET}')"
                               ".getBoundingClientRect().bottom <= window.innerHeight")
        page.screenshot(path=str(ARTIFACTS / "voila_2_final.png"))
        print(seconds)
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "voila_console.log").write_text("\n".join(console))
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / "voila_failed.png"), full_page=True)
        raise
    finally:
        page.close()
