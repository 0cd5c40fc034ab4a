"""The DatasetWidget's concept and fix panels in JupyterLab 4, headless Chromium: pick the
tagged cluster, make its concept, read the TCAV verdict, move the projection slider and see
the report follow. Screenshots (light, then dark theme) go to ``test-artifacts/concepts_*``;
on failure a full-page screenshot, the console and the server's log go there too.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser_support import (
    ARTIFACTS,
    BROWSER_MARKS,
    dark_theme,
    element_shot,
    lab_page,
    one_cell_server,
    run_all_cells,
    wait_kernel_idle,
)

pytestmark = BROWSER_MARKS
nbformat = pytest.importorskip("nbformat")

NOTEBOOK = "concepts.ipynb"
CELL = """import numpy as np
from xai_widgets import DatasetWidget
from xai_widgets.datasets import plant_shortcut
from xai_widgets.zoo import load_clever_hans, load_demo
demo = load_clever_hans()
_, clean, labels, _ = load_demo("mnist")
sevens = labels == 7
mixed, masks = plant_shortcut(clean[sevens], labels[sevens], fraction=0.5, classes=[7], seed=1)
tag = np.where(masks.flatten(1).any(1).numpy(), "7 + tag", "7")
dw = DatasetWidget(demo.model, mixed, labels=tag, target=7, holdout=(clean, labels))
dw"""
CONCEPT, FIX = ".xai-dataset-widget .xai-panel-concept", ".xai-dataset-widget .xai-panel-fix"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with one_cell_server(tmp_path_factory, NOTEBOOK, CELL) as served:
        yield served


def flip_rates(page) -> list[str]:
    """The report table's flip-rate row as shown: [before, after]."""
    row = page.locator(f"{FIX} .xai-fix-report tr", has_text="flip rate").first
    return row.locator("td").all_inner_texts()


def shot(page, selector: str, name: str) -> None:
    element_shot(page, selector, name)


def overflowing(page) -> list[str]:
    """Elements of the two panels wider than the panel that holds them."""
    return page.evaluate("""sel => {
        const out = [];
        for (const panel of document.querySelectorAll(sel)) {
            const box = panel.getBoundingClientRect();
            for (const el of panel.querySelectorAll('*')) {
                const r = el.getBoundingClientRect();
                if (r.width > 0 && (r.right > box.right + 1 || r.left < box.left - 1))
                    out.push(`${el.tagName}.${el.className} ${Math.round(r.right - box.right)}`);
            }
        }
        return out;
    }""", f"{CONCEPT}, {FIX}")


def slide_down_to(page, handle, strength: str) -> tuple[str, str]:
    """Ten steps of 0.05 down with the keyboard; the flip rates once the panel shows them."""
    for _ in range(10):
        handle.press("ArrowLeft")
    page.wait_for_function(
        f"sel => document.querySelector(sel).innerText.includes('strength {strength} ·')",
        arg=FIX, timeout=60_000)
    return flip_rates(page)


def test_cluster_concept_tcav_projection_report(server, browser):
    with lab_page(browser, server, NOTEBOOK, "concepts") as page:
        run_all_cells(page, NOTEBOOK, ready=f"{CONCEPT} .xai-concept-cluster select",
                      timeout=240)
        # the clusters of tagged 7s, as their labels say (SpRAy may make two of them)
        options = page.locator(f"{CONCEPT} .xai-concept-cluster select option")
        labels = [t.replace("\xa0", " ") for t in options.all_inner_texts()]  # nbsp
        share = [int(m.group(1)) if (m := re.search(r"most: 7 \+ tag, (\d+)%", t)) else -1
                 for t in labels]
        assert max(share) >= 80, labels
        page.locator(f"{CONCEPT} .xai-concept-cluster select").select_option(
            index=[i for i, s in enumerate(share) if s >= 80])
        page.locator(f"{CONCEPT} .xai-make-concept").click()
        result = page.locator(f"{CONCEPT} .xai-concept-result")
        result.get_by_text("TCAV score").wait_for(timeout=180_000)
        text = result.inner_text()
        assert re.search(r"TCAV score 1\.00 for class 7, random directions 0\.\d\d ± 0\.\d\d, "
                         r"p = \de-\d\d: the model uses this concept", text), text
        assert page.locator(f"{CONCEPT} svg.xai-tcav-spread").count() == 1

        # the fix panel appears and shows the projection at full strength
        page.locator(f"{FIX} .xai-fix-report table").wait_for(timeout=60_000)
        page.wait_for_function(
            "sel => document.querySelector(sel).innerText.includes('updated in')",
            arg=FIX, timeout=60_000)
        assert page.locator(f"{FIX} .xai-tile").count() == 12
        before, after_full = flip_rates(page)
        wait_kernel_idle(page, NOTEBOOK)
        page.mouse.move(0, 0)
        shot(page, CONCEPT, "concepts_light_concept")
        shot(page, FIX, "concepts_light_fix_1.00")

        # the slider down to 0.5: the maps, the predictions and the report follow
        handle = page.locator(f"{FIX} .xai-fix-strength .noUi-handle").first
        handle.focus()
        _, after_half = slide_down_to(page, handle, "0.50")
        before_again, after_none = slide_down_to(page, handle, "0.00")
        assert before_again == before and after_none == before  # strength 0: the model
        percent = lambda s: float(s.rstrip(" %"))  # noqa: E731
        assert percent(after_full) <= 2 and percent(after_full) < percent(after_half)
        assert percent(after_half) <= percent(before)
        assert page.locator(f"{FIX} .xai-tile").count() == 12
        assert "strength 0.00" in page.locator(f"{FIX} .xai-tile-group-title").nth(
            1).inner_text()
        wait_kernel_idle(page, NOTEBOOK)
        page.mouse.move(0, 0)
        shot(page, FIX, "concepts_light_fix_0.00")
        shot(page, ".xai-dataset-widget", "concepts_light_widget")
        assert page.locator(".xai-dataset-widget .xai-error").count() == 0
        assert not overflowing(page), overflowing(page)

        # the same in the dark theme (Settings > Theme), for the screenshots
        dark_theme(page)
        page.wait_for_timeout(500)
        page.mouse.move(0, 0)
        shot(page, CONCEPT, "concepts_dark_concept")
        shot(page, FIX, "concepts_dark_fix_0.00")
        (ARTIFACTS / "concepts_flip_rates.json").write_text(json.dumps(
            {"before": before, "strength 1": after_full, "strength 0.5": after_half,
             "strength 0": after_none}, indent=1, ensure_ascii=False))
