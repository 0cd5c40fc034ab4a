"""The explanation view in marimo, in headless Chromium.

Runs ``notebooks/marimo_demo.py`` with ``marimo run`` on a free loopback port (its own home
and config folder, no token, no update check), opens it at 1280×800, waits until the map,
the tiles, the bars and the status line have drawn, then changes the method to Occlusion
and clicks a class tile, and checks that the views follow. marimo draws anywidget views
inside shadow roots: Playwright's locators pierce them; ``DEEP`` does it for scripts.
On failure a screenshot and the server's log go to ``test-artifacts/``; on success the
screenshot ``marimo_app.png`` shows the view after the changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys

import pytest

from tests.browser_support import ARTIFACTS, BROWSER_MARKS, ROOT, free_port, serve

pytest.importorskip("marimo")
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = BROWSER_MARKS
TIMEOUT = 180_000  # ms: the machine may be busy with other tests
NOTEBOOK = ROOT / "notebooks" / "marimo_demo.py"

# the first element matching a selector, looking into open shadow roots too
DEEP = """(sel) => {
    const find = (root) => {
        const hit = root.querySelector(sel);
        if (hit) return hit;
        for (const el of root.querySelectorAll('*'))
            if (el.shadowRoot) { const h = find(el.shadowRoot); if (h) return h; }
        return null;
    };
    return find(document);
}"""
CANVAS_DRAWN = f"""sel => {{
    const c = ({DEEP})(sel);
    if (!c || !c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
    return false;
}}"""


@contextlib.contextmanager
def marimo_app(folder, log_path):
    """``marimo run`` of the demo; yields its URL once the port answers."""
    port = free_port()
    home = folder / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "MARIMO_SKIP_UPDATE_CHECK": "1"}
    command = [sys.executable, "-m", "marimo", "run", str(NOTEBOOK), "--headless",
               "--no-token", "--host", "127.0.0.1", "--port", str(port)]
    with serve(command, port, log_path, "marimo run", env=env, cwd=folder,
               timeout=TIMEOUT / 1000) as url:
        yield url + "/"


@pytest.fixture
def app(tmp_path, request):
    log = tmp_path / "marimo.log"
    failed_before = request.session.testsfailed
    with marimo_app(tmp_path, log) as url:
        yield url
    if request.session.testsfailed > failed_before:
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log, ARTIFACTS / "marimo_server.log")


def wait_drawn(page) -> None:
    """The map's canvas has pixels, ten bars and ten tiles are there, the status says ✓."""
    page.wait_for_function(CANVAS_DRAWN, arg=".xai-heatmap-large", timeout=TIMEOUT, polling=250)
    expect(page.locator(".xai-bars-view .xai-bar")).to_have_count(10, timeout=TIMEOUT)
    expect(page.locator(".xai-grid .xai-tile")).to_have_count(10, timeout=TIMEOUT)
    expect(page.locator(".xai-status-view .xai-status")).to_contain_text("✓", timeout=TIMEOUT)


def test_marimo_app_renders_and_responds(app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    title = page.locator(".xai-heatmap-title")
    status = page.locator(".xai-status-view .xai-status")
    try:
        page.goto(app, timeout=TIMEOUT)
        wait_drawn(page)
        expect(title).to_contain_text("class 4 · Integrated gradients", timeout=TIMEOUT)
        # not the banner marimo shows for classic Jupyter widgets
        assert page.get_by_text("Jupyter widgets are not supported").count() == 0

        method = page.locator("select", has=page.locator("option", has_text="Occlusion"))
        method.select_option(label="Occlusion")
        expect(title).to_contain_text("class 4 · Occlusion", timeout=TIMEOUT)
        expect(status).to_contain_text("✓ Occlusion", timeout=TIMEOUT)

        page.locator(".xai-grid .xai-tile[data-index='7']").click()
        expect(title).to_contain_text("class 7 · Occlusion", timeout=TIMEOUT)
        expect(page.locator(".xai-grid .xai-tile.xai-target")).to_have_attribute(
            "data-index", "7", timeout=TIMEOUT)
        expect(page.locator(".xai-bars-view .xai-bar-target")).to_have_count(1, timeout=TIMEOUT)
        expect(status).to_contain_text("✓ Occlusion", timeout=TIMEOUT)
        page.wait_for_function(CANVAS_DRAWN, arg=".xai-heatmap-large", timeout=TIMEOUT)
        assert not errors, errors
        page.screenshot(path=str(ARTIFACTS / "marimo_app.png"))
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / "marimo_failure.png"))
        raise
    finally:
        page.close()
