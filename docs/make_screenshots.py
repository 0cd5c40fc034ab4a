"""Screenshots of the widget in JupyterLab for the README and the docs (run by hand).

    python docs/make_screenshots.py

Starts JupyterLab on a free loopback port (its own config and root folder, as the browser
tests do), opens a copy of ``notebooks/01_quickstart.ipynb`` in headless Chromium
(``/usr/bin/chromium``) at 1280×800, runs every cell, collapses the file browser, puts the
widget at the top of the notebook and writes

- ``docs/images/explain_widget.png``: JupyterLab with the widget (integrated gradients);
- ``docs/images/explain_widget.apng``: a short animation — a click on a class tile, a change
  of method, a baseline-slider move — each frame the whole 1280×800 window.

Needs the ``dev`` extra (playwright, ipykernel) and Debian's Chromium. Not part of the tests.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import chromium, close_page, jupyter_server, run_all_cells  # noqa: E402
from PIL import Image  # noqa: E402

IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 800}
NOTEBOOK = "quickstart.ipynb"


def settled(page, timeout: float = 60) -> None:
    """Until the status line shows a finished computation (its time in ms) or an error."""
    page.wait_for_function(
        "() => { const s = document.querySelector('.xai-status'); "
        "return s && (s.textContent.includes('ms') || s.textContent.includes('⚠')); }",
        timeout=timeout * 1000)
    page.wait_for_timeout(600)  # the charts' transitions


def repainted(page, action) -> None:
    """Do ``action`` and wait until the large heatmap's pixels change."""
    before = page.eval_on_selector(".xai-heatmap-large", "c => c.toDataURL()")
    action()
    page.wait_for_function(
        "b => document.querySelector('.xai-heatmap-large').toDataURL() !== b",
        arg=before, timeout=60_000)
    settled(page)


def frame(page) -> Image.Image:
    page.mouse.move(0, 0)
    return Image.open(io.BytesIO(page.screenshot())).convert("RGB")


def to_top(page) -> None:
    """Scroll the notebook so that the widget's cell starts at the top of the window."""
    page.evaluate("""() => {
        const w = document.querySelector('.xai-explain-widget');
        const cell = w.closest('.jp-Cell');
        const scroller = w.closest('.jp-WindowedPanel-outer') || w.closest('.jp-Notebook');
        scroller.scrollTop += cell.getBoundingClientRect().top
                              - scroller.getBoundingClientRect().top - 8;
    }""")
    page.wait_for_timeout(300)


def save_png(image: Image.Image, path: Path) -> None:
    # a 256-colour palette keeps a UI screenshot small and looks the same
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {image.size[0]}×{image.size[1]}, "
          f"{path.stat().st_size / 1024:.0f} KiB")


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root, config = Path(tmp) / "root", Path(tmp) / "config"
        root.mkdir()
        shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", root / NOTEBOOK)
        with jupyter_server(root, config, Path(tmp) / "jupyter.log") as server, \
                chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{server}/lab/tree/{NOTEBOOK}")
            run_all_cells(page, NOTEBOOK)
            settled(page)
            sidebar = page.locator(".jp-SideBar.jp-mod-left [data-id='filebrowser']").first
            if page.locator(".jp-FileBrowser").first.is_visible():
                sidebar.click()
            # the notebook leaves the widget on occlusion: show the default method
            repainted(page, lambda: page.locator(".xai-method select").select_option(
                label="Integrated gradients"))
            to_top(page)
            still = frame(page)
            save_png(still, IMAGES / "explain_widget.png")

            frames = [still]
            repainted(page, lambda: page.locator(".xai-tile[data-index='9']").click())
            frames.append(frame(page))
            repainted(page, lambda: page.locator(".xai-method select").select_option(
                label="Occlusion"))
            frames.append(frame(page))
            handle = page.locator(".xai-alpha .noUi-handle").first
            if handle.count():
                handle.focus()
                repainted(page, lambda: [handle.press("ArrowRight") for _ in range(8)])
                frames.append(frame(page))
            close_page(page, NOTEBOOK)
    # one palette for every frame: only the changed regions are stored again (≈ 130 KB)
    width, height = frames[0].size
    strip = Image.new("RGB", (width, height * len(frames)))
    for i, f in enumerate(frames):
        strip.paste(f, (0, height * i))
    shared = strip.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = [f.quantize(palette=shared, dither=Image.Dither.NONE) for f in frames]
    path = IMAGES / "explain_widget.apng"
    palette[0].save(path, format="PNG", save_all=True, append_images=palette[1:],
                    duration=1600, loop=0, optimize=True)
    print(f"{path.relative_to(ROOT)}: {len(frames)} frames, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
