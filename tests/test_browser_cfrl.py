"""One-pass counterfactuals (CFRL) in JupyterLab 4, headless Chromium: pick ``cfrl`` in the
counterfactual tab, see x′ toward every class appear as a strip, click classes and drag the
morph slider. A counting wrapper around the actor, shown in the notebook, proves that the
strip is one batched actor pass and that every later click or slider move makes none.
Screenshots go to ``test-artifacts/cfrl_*``; on failure a full-page screenshot, the console
and the server's log go there too.
"""

from __future__ import annotations

import pytest

from tests.browser_support import (
    BROWSER_MARKS,
    element_shot,
    lab_page,
    one_cell_server,
    run_all_cells,
    wait_kernel_idle,
)

pytestmark = BROWSER_MARKS
pytest.importorskip("nbformat")

NOTEBOOK = "cfrl.ipynb"
CELL = """import ipywidgets as widgets
from xai_widgets import ExplainWidget
from xai_widgets.methods import cfrl
from xai_widgets.zoo import load_demo
model, images, labels, classes = load_demo("mnist")
passes, propose = [], cfrl.CFRLActor.propose
counter = widgets.HTML("actor passes: 0")
counter.add_class("xai-actor-passes")
def counted(self, x, *args, **kwargs):  # every pass of the actor, with its batch size
    passes.append(len(x))
    counter.value = f"actor passes: {len(passes)} ({'+'.join(map(str, passes))} images)"
    return propose(self, x, *args, **kwargs)
cfrl.CFRLActor.propose = counted
w = ExplainWidget(model, images[0], classes=classes)
widgets.VBox([counter, w])"""
PANEL = ".xai-explain-widget .xai-panel-counterfactual"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with one_cell_server(tmp_path_factory, NOTEBOOK, CELL) as served:
        yield served


def caption(page) -> str:
    return page.locator(f"{PANEL} .xai-cf-caption").inner_text()


def test_strip_and_morph_need_no_search(server, browser):
    with lab_page(browser, server, NOTEBOOK, "cfrl", 1280, 1000) as page:
        run_all_cells(page, NOTEBOOK)
        page.locator(".xai-panels .lm-TabBar-tab", has_text="counterfactual").click()
        page.locator(f"{PANEL} .xai-cf-method select").select_option("cfrl")
        tiles = page.locator(f"{PANEL} .xai-cf-strip .xai-tile")
        tiles.nth(8).wait_for(timeout=60_000)
        assert tiles.count() == 9
        counter = page.locator(".xai-actor-passes")
        page.wait_for_function("() => document.querySelector('.xai-actor-passes')"
                               ".innerText.includes('(9 images)')", timeout=30_000)
        assert "of 9 classes reached in one batched pass" in page.locator(
            PANEL).inner_text()

        seen = []
        for index in (2, 6, 0):  # a click on the strip: the desired class, at once
            label = tiles.nth(index).inner_text().split()[-1]
            tiles.nth(index).click()
            page.wait_for_function(
                "([sel, label]) => document.querySelector(sel + ' .xai-cf-target input')"
                ".value.startsWith(label + ' ')", arg=[PANEL, label], timeout=30_000)
            page.wait_for_function(
                "sel => document.querySelector(sel + ' .xai-cf-caption').innerText"
                ".includes('CFRL actor')", arg=PANEL, timeout=30_000)
            seen.append(caption(page))
        handle = page.locator(f"{PANEL} .xai-morph .noUi-handle").first
        handle.focus()
        for _ in range(10):
            handle.press("ArrowRight")
        page.wait_for_function(
            "sel => document.querySelector(sel + ' .xai-cf-caption').innerText"
            ".includes('at 50% of the way')", arg=PANEL, timeout=30_000)
        wait_kernel_idle(page, NOTEBOOK)
        assert counter.inner_text() == "actor passes: 1 (9 images)", counter.inner_text()
        assert len(set(seen)) == 3, seen
        assert page.locator(".xai-explain-widget .xai-error").count() == 0
        page.mouse.move(0, 0)
        element_shot(page, PANEL, "cfrl_light_panel")
