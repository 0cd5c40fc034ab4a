"""The GlobalWidget in JupyterLab 4, headless Chromium: the class visualisation updates as it
runs and stops on the stop button, the depth slider refits the tree, a click on a pick opens
it in an ExplainWidget below. At 1280 px (light, then dark theme) and 900 px, nothing sticks
out of its box, no two controls overlap and every text reads (the layout test's checks,
``tests/test_browser_layout.py``). Screenshots go to ``test-artifacts/global_*``; on failure
a full-page screenshot, the console and the server's log go there too.
"""

from __future__ import annotations

import re

import pytest

from tests.browser_support import (
    BROWSER_MARKS,
    dark_theme,
    element_shot,
    lab_page,
    one_cell_server,
    run_all_cells,
    wait_kernel_idle,
)
from tests.test_browser_layout import CONTROLS, LAYOUT_JS, MIN_CONTRAST, problems

pytestmark = BROWSER_MARKS
nbformat = pytest.importorskip("nbformat")

NOTEBOOK = "global.ipynb"
CELL = """from xai_widgets.widgets.global_widget import GlobalWidget
from xai_widgets.zoo import load_demo
model, images, labels, classes = load_demo("mnist")
gw = GlobalWidget(model, images[:200], classes=classes, target=3, steps=10_000)
gw"""
WIDGET = ".xai-global-widget"
VIS, TREE, PICKS = (f"{WIDGET} .xai-panel-{name}" for name in ("visualize", "tree", "picks"))
GLOBAL_LAYOUT_JS = LAYOUT_JS.replace("'.xai-explain-widget'", f"'{WIDGET}'")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with one_cell_server(tmp_path_factory, NOTEBOOK, CELL) as served:
        yield served


def inner_text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text().replace("\xa0", " ")


def wait_text(page, selector: str, pattern: str, timeout: float = 60) -> None:
    """Until the text of ``selector`` matches the regular expression ``pattern``."""
    page.wait_for_function(
        "([sel, pattern]) => { const e = document.querySelector(sel);"
        " return e && new RegExp(pattern).test(e.innerText.replace(/\\u00a0/g, ' ')); }",
        arg=[selector, pattern], timeout=timeout * 1000)


def shot(page, name: str) -> None:
    """The whole widget."""
    element_shot(page, WIDGET, name, settle_ms=200)


def check_layout(page, name: str) -> None:
    page.mouse.move(0, 0)
    page.locator(WIDGET).first.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    lines = problems(page.evaluate(GLOBAL_LAYOUT_JS, [MIN_CONTRAST, CONTROLS]))
    shot(page, name)
    assert not lines, f"{name}:\n" + "\n".join(lines)


def test_visualise_stop_refit_and_open_a_pick(server, browser):
    with lab_page(browser, server, NOTEBOOK, "global") as page:
        run_all_cells(page, NOTEBOOK, ready=f"{VIS} .xai-heatmap-large", timeout=180)
        # the image and its title follow the optimisation: two steps drawn, in order
        title = f"{VIS} .xai-heatmap-title"
        wait_text(page, title, r"class 3 · step \d+ of 10000")
        first = int(re.search(r"step (\d+)", inner_text(page, title)).group(1))
        wait_text(page, title, rf"step (?!{first} )\d+ of 10000")
        second = int(re.search(r"step (\d+)", inner_text(page, title)).group(1))
        assert second > first
        assert page.locator(f"{VIS} svg.xai-global-spark polyline").count() == 1

        page.locator(f"{VIS} .xai-global-stop").click()
        wait_text(page, f"{VIS} .xai-global-note", r"stopped at step \d+ of 10000")
        stopped = inner_text(page, title)
        assert page.locator(f"{VIS} .xai-global-stop").is_disabled()

        # the tree and the picks follow (they waited for the model)
        wait_text(page, f"{TREE} .xai-global-fidelity", r"fidelity \d+\.\d%", 120)
        page.locator(f"{PICKS} .xai-global-picks .xai-tile").first.wait_for(timeout=120_000)
        assert page.locator(f"{PICKS} .xai-tile").count() == 8
        wait_kernel_idle(page, NOTEBOOK)
        assert inner_text(page, title) == stopped  # nothing arrived after the stop
        check_layout(page, "global_light_1280")

        # the depth slider (4 → 6) shows the tree of that depth
        fidelity = inner_text(page, f"{TREE} .xai-global-fidelity")
        handle = page.locator(f"{TREE} .xai-global-depth .noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        handle.press("ArrowRight")
        page.wait_for_function(
            "([sel, old]) => { const e = document.querySelector(sel);"
            " return e && e.innerText !== old; }",
            arg=[f"{TREE} .xai-global-fidelity", fidelity], timeout=60_000)
        wait_text(page, f"{TREE} .xai-global-tree-note", r"the trees of depth 1..8 were fitted")
        assert page.locator(f"{TREE} .xai-error").count() == 0

        # a click on the second pick opens it below
        page.locator(f"{PICKS} .xai-tile").nth(1).click()
        explainer = f"{PICKS} .xai-explain-widget"
        page.locator(f"{explainer} .xai-heatmap-large").wait_for(timeout=60_000)
        wait_text(page, f"{explainer} .xai-status", r"✓", 120)
        caption = page.locator(f"{PICKS} .xai-tile").nth(1).inner_text()
        index = re.match(r"#(\d+)", caption).group(1)
        assert f"image #{index}" in inner_text(page, PICKS)
        assert "xai-target" in page.locator(f"{PICKS} .xai-tile").nth(1).get_attribute(
            "class")
        wait_kernel_idle(page, NOTEBOOK)
        assert page.locator(f"{WIDGET} .xai-error").count() == 0
        check_layout(page, "global_light_1280_pick")

        # the dark theme (Settings > Theme)
        dark_theme(page)
        page.wait_for_timeout(500)
        check_layout(page, "global_dark_1280_pick")

        # a narrower window
        page.set_viewport_size({"width": 900, "height": 1000})
        page.wait_for_timeout(500)
        check_layout(page, "global_dark_900_pick")
