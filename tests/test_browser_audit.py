"""DatasetWidget over a stored audit in JupyterLab 4, headless Chromium: the page of
thumbnails, the next page, a filter, SpRAy from the cluster button, a click that opens one
row in an ExplainWidget. Screenshots (light, then dark theme, 900 px wide with the file
browser open) go to ``test-artifacts/audit_*``; on failure a full-page screenshot, the
console and the server's log go there too.
"""

from __future__ import annotations

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

pytestmark = BROWSER_MARKS
pytest.importorskip("nbformat")
pytest.importorskip("zarr")

NOTEBOOK = "audit.ipynb"
CELL = """import tempfile
from xai_widgets import DatasetWidget, audit
from xai_widgets.zoo import load_demo
model, images, labels, classes = load_demo("mnist")
a = audit(model, images, store=tempfile.mkdtemp() + "/digits.zarr", method="saliency",
          labels=labels, map_size=28, chunk_size=256)
DatasetWidget(a, classes=classes, page_size=24)"""
VIEW = ".xai-audit-widget"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with one_cell_server(tmp_path_factory, NOTEBOOK, CELL) as served:
        yield served


def note(page) -> str:
    return page.locator(f"{VIEW} .xai-audit-note").inner_text()


def test_pages_filters_clusters_and_opens_a_row(server, browser):
    with lab_page(browser, server, NOTEBOOK, "audit", 1180, 900) as page:
        run_all_cells(page, NOTEBOOK, ready=f"{VIEW} .xai-audit-tiles .xai-tile")
        tiles = page.locator(f"{VIEW} .xai-audit-tiles .xai-tile")
        assert tiles.count() == 24 and "of 1,000 matching · page 1 of 42" in note(page)
        page.get_by_role("button", name="next ▶").click()
        page.wait_for_function("sel => document.querySelector(sel).innerText"
                               ".includes('rows 25–48')", arg=f"{VIEW} .xai-audit-note")
        assert tiles.first.inner_text().startswith("#24")
        page.locator(f"{VIEW} .xai-audit-label select").select_option(label="7")
        page.wait_for_function("sel => document.querySelector(sel).innerText"
                               ".includes('page 1 of')", arg=f"{VIEW} .xai-audit-note")
        page.locator(f"{VIEW} .xai-audit-spray").click()
        page.locator(f"{VIEW} .xai-audit-cluster select").wait_for(timeout=120_000)
        assert "SpRAy clusters" in page.locator(VIEW).inner_text()
        wait_kernel_idle(page, NOTEBOOK)
        page.mouse.move(0, 0)
        element_shot(page, VIEW, "audit_light_900")
        tiles.nth(2).click()
        page.locator(f"{VIEW} .xai-explain-widget .xai-heatmap-large").wait_for(
            timeout=60_000)
        assert page.locator(f"{VIEW} .xai-error").count() == 0

        dark_theme(page)
        wait_kernel_idle(page, NOTEBOOK)
        page.mouse.move(0, 0)
        element_shot(page, VIEW, "audit_dark_900", settle_ms=500)
