"""The widget in a real browser: JupyterLab 4 (and Notebook 7) in headless Chromium.

Starts its own Jupyter server on a free loopback port with its own config and root folder,
runs the quickstart notebook, then drives the views as a user would and checks that the
large heatmap repaints after every change and that no error shows. Screenshots and the
click-to-repaint timings go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.browser_support import (
    ARTIFACTS,
    BROWSER_MARKS,
    ROOT,
    close_page,
    jupyter_server,
    run_all_cells,
    save_failure_artifacts,
)

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server_log(tmp_path_factory):
    return tmp_path_factory.mktemp("logs") / "jupyter.log"


@pytest.fixture(scope="module")
def server(tmp_path_factory, request, server_log):
    failed_before = request.session.testsfailed
    root = tmp_path_factory.mktemp("jupyter-root")
    for name in ("lab", "nb7"):
        shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", root / f"quickstart_{name}.ipynb")
    shutil.copy(ROOT / "notebooks" / "04_clever_hans.ipynb", root / "clever_hans.ipynb")
    log = server_log
    with jupyter_server(root, tmp_path_factory.mktemp("jupyter-config"), log) as url:
        yield url
    if request.session.testsfailed > failed_before:  # the server's side of a failure
        shutil.copy(log, ARTIFACTS / "browser_jupyter.log")


@pytest.fixture
def open_page(browser, server_log, request):
    """``open_page(notebook, **options)``: a new page for ``notebook``. At the end its kernel
    is shut down (the next test has both cores) and the page closed; after a failure, first
    the page's screenshot, its console and the server's log go to test-artifacts/."""
    opened = []
    failed_before = request.session.testsfailed

    def open_(notebook: str, **options):
        page = browser.new_page(**options)
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        opened.append((page, notebook, console))
        return page

    yield open_
    for page, notebook, console in opened:
        if request.session.testsfailed > failed_before:
            save_failure_artifacts(page, request.node.name, server_log, console)
        close_page(page, notebook)


def bar_heights(page) -> list:
    return page.eval_on_selector_all(".xai-explain-widget .bqplot rect.bar",
                                     "els => els.map(r => r.getAttribute('height'))")


def wait_for_bars_to_change(page, before: list, timeout: float = 30) -> None:
    """Poll until the probability bars' heights differ from ``before`` (compared as JSON
    made by the browser on both sides)."""
    page.wait_for_function(
        "before => JSON.stringify([...document.querySelectorAll("
        "'.xai-explain-widget .bqplot rect.bar')].map(r => r.getAttribute('height')))"
        " !== JSON.stringify(before)", arg=before, timeout=timeout * 1000, polling=10)


def brightest_point(page) -> tuple[float, float]:
    """Relative (x, y) of the brightest pixel of the input image as the view draws it."""
    return tuple(page.eval_on_selector(".xai-heatmap-input", """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let best = 0, at = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > best) { best = d[i]; at = i / 4; }
        return [((at % c.width) + 0.5) / c.width, (Math.floor(at / c.width) + 0.5) / c.height];
    }"""))


def marker_path(page) -> str:
    """The drawn lines of the counterfactual chart (the morph marker among them)."""
    return page.eval_on_selector_all(".xai-cf-chart path.line",
                                     "ps => ps.map(p => p.getAttribute('d')).join('|')")


def large_pixels(page) -> str:
    return page.eval_on_selector(".xai-heatmap-large", "c => c.toDataURL()")


def repaint_after(page, action, timeout: float = 60) -> float:
    """Do ``action``; return the seconds until the large heatmap's pixels have changed."""
    before = large_pixels(page)
    start = time.perf_counter()
    action()
    page.wait_for_function(
        "before => document.querySelector('.xai-heatmap-large').toDataURL() !== before",
        arg=before, timeout=timeout * 1000, polling=10)
    return time.perf_counter() - start


def wait_settled(page, timeout: float = 60) -> None:
    page.wait_for_function(
        "() => { const s = document.querySelector('.xai-status'); "
        "return s && (s.textContent.includes('ms') || s.textContent.includes('⚠')); }",
        timeout=timeout * 1000)


def snapshot(page, name: str) -> None:
    """A screenshot of the widget itself (and one of the whole page)."""
    widget = page.locator(".xai-explain-widget").first
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.screenshot(path=str(ARTIFACTS / f"{name}_page.png"))


def assert_no_error(page) -> None:
    assert page.locator(".xai-error").count() == 0, page.locator(".xai-error").first.inner_text()
    text = page.locator(".jp-OutputArea-output, .jp-Cell-outputArea").all_inner_texts()
    assert not any("Traceback" in t or "Error" in t.split("\n")[0] for t in text), text


def press(page, selector: str, key: str, times: int) -> None:
    handle = page.locator(f"{selector} .noUi-handle").first
    handle.focus()
    for _ in range(times):
        handle.press(key)


def test_lab_widget_is_live(server, open_page):
    page = open_page("quickstart_lab.ipynb", viewport={"width": 1400, "height": 1600})
    page.goto(f"{server}/lab/tree/quickstart_lab.ipynb")
    run_all_cells(page, "quickstart_lab.ipynb")
    wait_settled(page)
    snapshot(page, "lab_1_initial")
    assert_no_error(page)
    timings = {}

    # click a class tile: the large map shows that class
    timings["click tile → repaint (s)"] = repaint_after(
        page, lambda: page.locator(".xai-tile[data-index='3']").click())
    assert "class 3" in page.locator(".xai-heatmap-title").first.inner_text()
    snapshot(page, "lab_2_tile")

    # change the method (the notebook left it on occlusion)
    timings["method → repaint (s)"] = repaint_after(
        page,
        lambda: page.locator(".xai-method select").select_option(label="Integrated gradients"))
    wait_settled(page)

    # move the baseline slider
    timings["baseline slider → repaint (s)"] = repaint_after(
        page, lambda: press(page, ".xai-alpha", "ArrowRight", 6))
    wait_settled(page)
    snapshot(page, "lab_3_baseline")

    # back to occlusion, then move its window slider
    repaint_after(page, lambda: page.locator(".xai-method select").select_option(label="Occlusion"))
    wait_settled(page)
    assert page.locator(".xai-param-window").count() == 1
    timings["window slider → repaint (s)"] = repaint_after(
        page, lambda: press(page, ".xai-param-window", "ArrowRight", 4))
    wait_settled(page)
    snapshot(page, "lab_4_window")
    assert_no_error(page)

    # LIME: the progress bar shows, then the result; clicking a segment moves the bars
    page.evaluate("""() => {
        window.xaiProgressSeen = false;
        const bar = document.querySelector('.xai-progress');
        new MutationObserver(() => {
            if (bar.style.visibility === 'visible') window.xaiProgressSeen = true;
        }).observe(bar, {attributes: true, attributeFilter: ['style']});
    }""")
    repaint_after(page, lambda: page.locator(".xai-method select").select_option(
        label="LIME (superpixels)"))
    wait_settled(page)
    assert "LIME" in page.locator(".xai-status").inner_text()
    assert page.evaluate("() => window.xaiProgressSeen")
    assert page.locator(".xai-progress").evaluate("el => el.style.visibility") == "hidden"
    page.locator(".xai-panels .lm-TabBar-tab", has_text="superpixels").click()
    page.wait_for_function("() => { const c = document.querySelector('.xai-sp-caption');"
                           " return c && c.textContent.includes('segments'); }", timeout=60_000)
    before = bar_heights(page)
    canvas = page.locator(".xai-sp-canvas")
    box = canvas.bounding_box()
    fx, fy = brightest_point(page)  # a segment over the ink: hiding it must move the bars
    start = time.perf_counter()
    canvas.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
    wait_for_bars_to_change(page, before)
    timings["segment click → bars (s)"] = time.perf_counter() - start
    assert bar_heights(page) != before
    assert "hidden" in page.locator(".xai-sp-caption").inner_text()
    snapshot(page, "lab_5_superpixels")
    assert_no_error(page)

    # counterfactual: open its tab, pick a class, wait for the search, drag the morph slider
    page.locator(".xai-panels .lm-TabBar-tab", has_text="counterfactual").click()
    picker = page.locator(".xai-cf-target input")
    picker.fill("9 (9)")
    picker.press("Enter")
    page.wait_for_function("() => document.querySelector('.xai-cf-caption').textContent"
                           ".includes('✓')", timeout=60_000)
    chart_before = marker_path(page)
    before = bar_heights(page)
    start = time.perf_counter()
    press(page, ".xai-morph", "ArrowRight", 12)
    wait_for_bars_to_change(page, before)
    timings["morph slider → bars (s)"] = time.perf_counter() - start
    page.wait_for_function("before => document.querySelector('.xai-cf-chart .line')"
                           " && [...document.querySelectorAll('.xai-cf-chart path.line')]"
                           ".map(p => p.getAttribute('d')).join('|') !== before",
                           arg=chart_before, timeout=30_000, polling=10)
    snapshot(page, "lab_6_counterfactual")
    assert_no_error(page)
    (ARTIFACTS / "browser_timings.json").write_text(json.dumps(timings, indent=2))


def test_notebook7_renders_the_widget(server, open_page):
    page = open_page("quickstart_nb7.ipynb", viewport={"width": 1400, "height": 1100})
    page.goto(f"{server}/notebooks/quickstart_nb7.ipynb")
    run_all_cells(page, "quickstart_nb7.ipynb")
    wait_settled(page)
    repaint_after(page, lambda: page.locator(".xai-tile[data-index='7']").click())
    snapshot(page, "notebook7")
    assert_no_error(page)


def test_compare_and_dataset_widgets(server, open_page):
    page = open_page("clever_hans.ipynb", viewport={"width": 1400, "height": 1600})
    page.goto(f"{server}/lab/workspaces/clever-hans/tree/clever_hans.ipynb")  # own workspace
    run_all_cells(page, "clever_hans.ipynb", ready=".xai-explain-widget", timeout=400)
    try:
        page.wait_for_selector(".xai-compare-widget .xai-tile", timeout=180_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "clever_hans_page.png"), full_page=True)
    page.wait_for_selector(".xai-dataset-widget .xai-tile", timeout=300_000)
    compare = page.locator(".xai-compare-widget").first
    # JupyterLab renders only the cells near the viewport: bring the widget into view first
    compare.scroll_into_view_if_needed()
    compare.get_by_text("deletion AUC").first.wait_for(timeout=120_000)
    assert compare.locator(".xai-tile").count() == 5
    compare.screenshot(path=str(ARTIFACTS / "compare_widget.png"))
    dataset = page.locator(".xai-dataset-widget").first
    dataset.scroll_into_view_if_needed()
    dataset.locator(".xai-tile-group").nth(1).wait_for(timeout=60_000)
    assert dataset.locator(".bqplot .dot").count() > 50  # the embedding's points
    dataset.locator(".xai-tile").nth(2).click()
    page.wait_for_selector(".xai-dataset-widget .xai-explain-widget .xai-heatmap-large",
                           timeout=60_000)
    dataset.scroll_into_view_if_needed()
    dataset.screenshot(path=str(ARTIFACTS / "dataset_widget.png"))
    assert_no_error(page)
