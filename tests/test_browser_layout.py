"""The ExplainWidget's layout as a user sees it, in JupyterLab 4 (light and dark theme) and
Notebook 7, in headless Chromium.

One Jupyter server for the module; one page (and kernel) per environment runs a notebook
made here once, then for every viewport width and every tab of the widget the page checks,
from the boxes and computed styles the browser reports:

1. **fits**: no visible element of the widget sticks out of the box that holds it: the
   widget's own box, or the nearest container inside it that cuts off what overflows it
   (an ipywidgets Box, whose default ``overflow: auto`` is no reason to hide content, or
   an SVG); nor the widget out of its output area. Parts of an element inside a region
   meant to scroll (overflow auto/scroll set on purpose, e.g. ``Layout(overflow="auto")``)
   count only as far as the region shows them;
2. **no overlap**: no two visible controls (dropdowns, sliders, checkboxes, text fields,
   buttons, class tiles, canvases, charts) overlap, unless one contains the other;
3. **contrast**: every visible text (HTML text, SVG ``text`` by its ``fill``, the value or
   placeholder of form fields) has a WCAG contrast ratio of at least 4.5:1 against the
   first opaque background behind it (semi-transparent layers composed over the page).
   Text of disabled controls is exempt, as in WCAG.

Widths: 1280 and 900 with the file browser open, 600 without (JupyterLab), 900 (Notebook 7); the
viewport is 800 px high. A screenshot of the widget for every case goes to
``test-artifacts/layout_<theme>_<width>_<tab>.png``; on failure a full-page screenshot and
the server's log go there too. Run: ``python -m pytest -q tests/test_browser_layout.py``.
"""

from __future__ import annotations

import importlib.util
import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.browser_support import (
    ARTIFACTS,
    BROWSER_MARKS,
    close_page,
    jupyter_server,
    playwright_api,
    run_all_cells,
    save_failure_artifacts,
    wait_kernel_idle,
)

pytestmark = BROWSER_MARKS
nbformat = pytest.importorskip("nbformat")

HEIGHT = 800
LAB_WIDTHS = (1280, 900, 600)
TABS = {  # panel name -> tab title
    "superpixels": "superpixels",
    "counterfactual": "counterfactual",
    "diagnostics": "sanity & faithfulness",
    "influence": "influence",
    "robustness": "robustness",
}
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
CELL = ("from xai_widgets import ExplainWidget\n"
        "from xai_widgets.zoo import load_demo\n"
        "model, images, labels, classes = load_demo(\"mnist\")\n"
        "w = ExplainWidget(model, images[0], classes=classes, data=images[:200],\n"
        "                  train=(images[200:], labels[200:]))\n"
        "w.run_attack(steps=20)  # the robustness tab shows its maps\n"
        "w.counterfactual_method = 'cfrl'  # the counterfactual tab shows its strip\n"
        "w")
RGB_CELL = (  # a 1000-class torchvision ResNet on a 224 px photo: top-k tiles, "all others"
    "import torch\n"
    "lib = torch.library.Library('torchvision', 'FRAGMENT')  # the CUDA wheel's ops, never called\n"
    "for op in ('nms', 'qnms'):\n"
    "    if not hasattr(torch.ops.torchvision, op):\n"
    "        lib.define(op + '(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')\n"
    "import torchvision, skimage.data\n"
    "from xai_widgets import ExplainWidget\n"
    "torch.manual_seed(0)\n"
    "model = torchvision.models.resnet18(weights=None).eval()\n"
    "photo = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)[None].float() / 255\n"
    "x = torch.nn.functional.interpolate(photo, size=(224, 224), mode='area')[0]\n"
    "from torchvision.models._meta import _IMAGENET_CATEGORIES as names  # shipped, offline\n"
    "w = ExplainWidget(model, x, method='saliency', classes=names)\n"
    "w")
MIN_CONTRAST = 4.5


# -- server and browser ----------------------------------------------------------------------

class Server:
    def __init__(self, url: str, root: Path, settings: Path, log: Path):
        self.url, self.root, self.settings, self.log = url, root, settings, log

    def set_theme(self, theme: str) -> None:
        """The theme the next page loads with (JupyterLab reads its settings from disk on
        every request, so a page opened after this call starts in ``theme``)."""
        folder = self.settings / "@jupyterlab" / "apputils-extension"
        (folder / "themes.jupyterlab-settings").write_text(json.dumps({"theme": THEMES[theme]}))

    def notebook(self, name: str, cell: str = CELL) -> str:
        book = nbformat.v4.new_notebook()
        book.cells = [nbformat.v4.new_code_cell(cell)]
        book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
        nbformat.write(book, self.root / f"{name}.ipynb")
        return f"{name}.ipynb"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("jupyter-root")
    config = tmp_path_factory.mktemp("jupyter-config")
    log = tmp_path_factory.mktemp("logs") / "jupyter.log"
    with jupyter_server(root, config, log) as url:
        yield Server(url, root, config / "lab-settings", log)


# -- driving the page -------------------------------------------------------------------------

def wait_settled(page, timeout: float = 60) -> None:
    page.wait_for_function(
        "() => { const s = document.querySelector('.xai-status'); "
        "return s && (s.textContent.includes('ms') || s.textContent.includes('⚠')); }",
        timeout=timeout * 1000)


# While a panel works it says so ("searching…", "randomising…"); wait (a while) until none
# does, then until the widget's boxes and texts have stopped changing.
BUSY = r"""() => !/\w+ing…/.test(document.querySelector('.xai-explain-widget').innerText)"""
STABLE = r"""quiet => {
    const w = document.querySelector('.xai-explain-widget');
    const sig = [...w.querySelectorAll('*')].map(e => {
        const r = e.getBoundingClientRect();
        return [r.x, r.y, r.width, r.height].map(Math.round).join(',');
    }).join(';') + w.innerText;
    const now = performance.now(), last = window.__xaiLayout;
    if (!last || last.sig !== sig) { window.__xaiLayout = {sig, since: now}; return false; }
    return now - last.since >= quiet;
}"""


def wait_stable(page, timeout: float = 60) -> None:
    try:
        page.wait_for_function(BUSY, timeout=timeout * 1000, polling=100)
    except playwright_api.TimeoutError:
        print("a panel still says it is working; checking the layout as it is")
    page.evaluate("() => { window.__xaiLayout = null; }")
    try:
        page.wait_for_function(STABLE, arg=600, timeout=timeout * 1000, polling=100)
    except playwright_api.TimeoutError:
        print("the widget's layout keeps changing; checking it as it is")


def open_file_browser(page) -> None:
    """Make sure the left sidebar shows the file browser (JupyterLab)."""
    if not page.locator(".jp-FileBrowser").first.is_visible():
        page.locator(".jp-SideBar.jp-mod-left [data-id='filebrowser']").first.click()
    page.wait_for_selector(".jp-FileBrowser", state="visible", timeout=10_000)


def close_file_browser(page) -> None:
    """Collapse the left sidebar, as a user of a narrow window does (JupyterLab)."""
    if page.locator(".jp-FileBrowser").first.is_visible():
        page.locator(".jp-SideBar.jp-mod-left [data-id='filebrowser']").first.click()
    page.wait_for_selector(".jp-FileBrowser", state="hidden", timeout=10_000)


def show_tab(page, name: str) -> None:
    tab = page.locator(".xai-explain-widget .xai-panels .lm-TabBar-tab", has_text=TABS[name])
    tab.first.click()
    page.mouse.move(0, 0)  # no hover style on the tabs while they are checked
    page.wait_for_function(
        "sel => { const p = document.querySelector(sel);"
        " return p && p.getBoundingClientRect().height > 0; }",
        arg=f".xai-explain-widget .xai-panel-{name}", timeout=60_000)
    wait_settled(page)
    wait_stable(page)


@contextmanager
def artifacts_on_failure(page, server: Server, name: str, console: list | None = None):
    try:
        yield
    except BaseException:
        try:  # the widget's tabs in view: the panel that failed is below them
            page.locator(".xai-explain-widget .xai-panels").first.scroll_into_view_if_needed(
                timeout=5_000)
        except playwright_api.Error:
            pass
        save_failure_artifacts(page, name, server.log, console)
        raise


def widget_screenshot(page, path: Path) -> None:
    """The whole widget: the viewport grows (height only) for the shot if it must."""
    widget = page.locator(".xai-explain-widget").first
    size = page.viewport_size
    box = widget.bounding_box()
    grown = box is not None and box["height"] + 120 > size["height"]
    if grown:
        page.set_viewport_size({"width": size["width"], "height": int(box["height"]) + 240})
    try:
        widget.scroll_into_view_if_needed()
        widget.screenshot(path=str(path))
    finally:
        if grown:
            page.set_viewport_size(size)


# -- the checks, computed in the page ---------------------------------------------------------

LAYOUT_JS = r"""([minContrast, controlSelector]) => {
const root = document.querySelector('.xai-explain-widget');
if (!root) return {error: 'no .xai-explain-widget on the page'};
const px = v => Math.round(v * 10) / 10;

const GENERIC = /^(lm-Widget|lm-Panel|lm-mod-.*|p-.*|jupyter-widgets|widget-container|widget-box)$/;
function describe(el) {  // e.g. "[bars] div.bqplot.figure > svg.svg-figure > g"
    const parts = [];
    for (let e = el, i = 0; e && i < 3; e = e.parentElement, i++) {
        let s = e.tagName.toLowerCase();
        const cls = typeof e.className === 'string' ? e.className
                  : (e.className && e.className.baseVal) || '';
        const names = cls.split(/\s+/).filter(c => c && !GENERIC.test(c)).slice(0, 3);
        if (names.length) s += '.' + names.join('.');
        parts.unshift(s);
        if (e === root) break;
    }
    const panel = el.closest('.xai-panel');
    const name = panel && [...panel.classList].find(c => c.startsWith('xai-panel-'));
    return (name ? `[${name.slice(10)}] ` : '') + parts.join(' > ');
}
function visible(el) {
    if (el.checkVisibility && !el.checkVisibility({visibilityProperty: true,
            checkVisibilityCSS: true, opacityProperty: true, checkOpacity: true})) return false;
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || cs.visibility === 'collapse')
        return false;
    const r = el.getBoundingClientRect();
    return r.width >= 0.5 && r.height >= 0.5;
}
function intersect(a, b) {
    const left = Math.max(a.left, b.left), top = Math.max(a.top, b.top);
    const right = Math.min(a.right, b.right), bottom = Math.min(a.bottom, b.bottom);
    return {left, top, right, bottom, width: right - left, height: bottom - top};
}
function clips(el) {
    const cs = getComputedStyle(el);
    return cs.overflowX !== 'visible' || cs.overflowY !== 'visible';
}
// A region meant to scroll: overflow auto/scroll set on purpose (inline, as a widget's
// Layout(overflow=...) sets it, or by a stylesheet on an element that is not an ipywidgets
// box: ipywidgets gives every Box overflow:auto, which is no reason to cut content off).
function scrolls(el) {
    const s = el.style, cs = getComputedStyle(el);
    if (/auto|scroll/.test(s.overflow + s.overflowX + s.overflowY)) return true;
    const ipywidget = [...el.classList].some(c => c === 'jupyter-widgets'
        || c.startsWith('widget-') || c.startsWith('jupyter-widget-'));
    return !ipywidget && !(el instanceof SVGElement)
        && /auto|scroll/.test(cs.overflowX + cs.overflowY);
}
// the part of el that scrolling regions inside the widget let show (null: none)
function shownBox(el) {
    let box = el.getBoundingClientRect();
    for (let a = el.parentElement; a && a !== root; a = a.parentElement) {
        if (clips(a) && scrolls(a)) {
            box = intersect(box, a.getBoundingClientRect());
            if (box.width < 0.5 || box.height < 0.5) return null;
        }
    }
    return box;
}
// the box el must fit in: its nearest ancestor inside the widget that cuts off what
// overflows it without meaning to scroll (an ipywidgets box, an SVG), else the widget
function holderOf(el) {
    for (let a = el.parentElement; a && a !== root; a = a.parentElement)
        if (clips(a) && !scrolls(a)) return a;
    return root;
}
const all = [...root.querySelectorAll('*')].filter(visible);

// 1. everything inside the box that holds it (and the widget inside its output area)
const W = root.getBoundingClientRect();
const overhang = (b, o) => ({left: px(o.left - b.left), right: px(b.right - o.right),
                             top: px(o.top - b.top), bottom: px(b.bottom - o.bottom)});
const fits = [];
const out = new Set();
for (const el of all) {
    const b = shownBox(el);
    if (!b) continue;
    const holder = holderOf(el);
    const sides = Object.entries(overhang(b, holder.getBoundingClientRect()))
        .filter(([, v]) => v > 1);
    if (!sides.length) continue;
    out.add(el);
    let shown = false;  // an ancestor below the same holder already reported: skip
    for (let a = el.parentElement; a && a !== holder; a = a.parentElement)
        if (out.has(a)) { shown = true; break; }
    if (!shown)
        fits.push({element: describe(el), text: (el.textContent || '').trim().slice(0, 40),
                   cut_by: holder === root ? 'the widget' : describe(holder),
                   sticks_out: Object.fromEntries(sides)});
}
const area = root.closest('.jp-OutputArea-output, .jp-OutputArea-child, .jp-Cell');
if (area) {
    const o = overhang(root.getBoundingClientRect(), area.getBoundingClientRect());
    const sides = Object.entries(o).filter(([, v]) => v > 1);
    if (sides.length) fits.unshift({element: 'the widget itself', text: '',
                                    cut_by: describe(area), sticks_out: Object.fromEntries(sides)});
}

// 2. no two controls overlap
const controls = [...root.querySelectorAll(controlSelector)].filter(visible)
    .map(el => ({el, box: shownBox(el)})).filter(c => c.box);
const overlaps = [];
for (let i = 0; i < controls.length; i++) {
    for (let j = i + 1; j < controls.length; j++) {
        const a = controls[i], b = controls[j];
        if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
        const x = intersect(a.box, b.box);
        if (x.width > 1 && x.height > 1)
            overlaps.push({a: describe(a.el), b: describe(b.el),
                           overlap: `${px(x.width)}x${px(x.height)} px`});
    }
}

// 3. text contrast (WCAG 2)
function parseColor(s) {
    if (!s || s === 'none' || s === 'transparent') return null;
    const n = '([\\d.]+)';  // rgb(r, g, b), rgba(r, g, b, a), rgb(r g b / a%)
    const m = s.match(new RegExp(`^rgba?\\(\\s*${n}[,\\s]+${n}[,\\s]+${n}`
                                 + `(?:\\s*[,/]\\s*${n}(%?))?\\s*\\)$`));
    if (m) {
        let a = m[4] === undefined ? 1 : parseFloat(m[4]);
        if (m[5]) a /= 100;
        return [+m[1], +m[2], +m[3], a];
    }
    if (/^url\(/.test(s)) return undefined;  // a gradient or pattern: not read here
    // any other colour syntax (oklch(), color(), color-mix()...): let a canvas paint it
    paint.clearRect(0, 0, 1, 1);
    paint.fillStyle = 'rgba(0, 0, 0, 0)';
    paint.fillStyle = s;
    paint.fillRect(0, 0, 1, 1);
    const d = paint.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
}
const paint = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
const over = (top, bottom) => {  // top composed over an opaque bottom
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
};
const channel = v => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
const luminance = c => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
const ratio = (f, b) => { const [hi, lo] = [luminance(f), luminance(b)].sort((x, y) => y - x);
                          return (hi + 0.05) / (lo + 0.05); };
const hex = c => '#' + c.slice(0, 3).map(v => Math.round(v).toString(16).padStart(2, '0')).join('');
let page = [255, 255, 255, 1];
for (const e of [document.body, document.documentElement]) {
    const c = parseColor(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) { page = over(c, page); break; }
}
// the colour behind el: the first opaque background among it and its ancestors, with the
// semi-transparent ones on top of it composed over it; and the opacity of el's group
function behind(el) {
    const layers = [];
    let opacity = 1, found = false;
    for (let e = el; e; e = e.parentElement) {
        const cs = getComputedStyle(e);
        const c = parseColor(cs.backgroundColor);
        if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) { found = true; break; } }
        opacity *= parseFloat(cs.opacity);
    }
    let bg = found ? layers.pop() : page;
    while (layers.length) bg = over(layers.pop(), bg);
    if (el instanceof SVGElement && el.ownerSVGElement) bg = svgBehind(el, bg);
    return {bg, opacity};
}
// in an SVG, shapes drawn before el (document order) lie under it: the rects under el's
// centre, composed in order over the colour behind the SVG
function svgBehind(el, bg) {
    const r = el.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
    for (const shape of el.ownerSVGElement.querySelectorAll('rect')) {
        if (!(shape.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING)) break;
        if (shape.contains(el) || !visible(shape)) continue;
        const b = shape.getBoundingClientRect();
        if (x < b.left || x > b.right || y < b.top || y > b.bottom) continue;
        const cs = getComputedStyle(shape);
        const c = parseColor(cs.fill);
        if (!c) continue;
        let alpha = c[3] * parseFloat(cs.fillOpacity || '1');
        for (let e = shape; e && e !== el.ownerSVGElement; e = e.parentElement)
            alpha *= parseFloat(getComputedStyle(e).opacity);
        if (alpha > 0) bg = over([c[0], c[1], c[2], alpha], bg);
    }
    return bg;
}
const SKIP = new Set(['SCRIPT', 'STYLE', 'TITLE', 'DESC', 'OPTION', 'OPTGROUP', 'TEMPLATE',
                      'NOSCRIPT', 'title', 'desc', 'style', 'script']);
const FIELD = /^(text|search|number|email|url|tel|password|)$/;
const contrast = [], unread = [];
let checked = 0;
for (const el of all) {
    if (SKIP.has(el.tagName) || el.closest(':disabled, [aria-disabled="true"], .mod-disabled'))
        continue;
    let text = null, fg = null, kind = 'text';
    const svg = el instanceof SVGElement;
    const cs = getComputedStyle(el);
    if (el.tagName === 'SELECT') {
        text = el.selectedOptions.length ? el.selectedOptions[0].textContent : '';
    } else if (el.tagName === 'TEXTAREA' || (el.tagName === 'INPUT' && FIELD.test(el.type))) {
        text = el.value;
        if (!text && el.placeholder) {
            text = el.placeholder; kind = 'placeholder';
            fg = parseColor(getComputedStyle(el, '::placeholder').color);
        }
    } else {
        text = [...el.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)
            .map(n => n.textContent).join('');
    }
    if (!text || !text.trim()) continue;
    if (fg === null) fg = parseColor(svg ? cs.fill : cs.color);
    if (svg && fg && cs.fillOpacity) fg[3] *= parseFloat(cs.fillOpacity);
    const {bg, opacity} = behind(el);
    if (!fg) {  // no fill (e.g. 'none' or a gradient): nothing this check can read
        if (fg === undefined)
            unread.push({element: describe(el), colour: svg ? cs.fill : cs.color});
        continue;
    }
    checked += 1;
    const shown = over([fg[0], fg[1], fg[2], fg[3] * opacity], bg);
    const r = ratio(shown, bg);
    if (r < minContrast - 1e-9)
        contrast.push({element: describe(el), kind, text: text.trim().slice(0, 40),
                       colour: hex(shown), background: hex(bg),
                       ratio: Math.round(r * 100) / 100, font_size: cs.fontSize});
}
contrast.sort((a, b) => a.ratio - b.ratio);
return {fits, overlaps, contrast, unread,
        counts: {visible: all.length, controls: controls.length, texts: checked},
        widget: {x: px(W.left), y: px(W.top), width: px(W.width), height: px(W.height)}};
}"""

CONTROLS = (".widget-dropdown, .widget-slider, .widget-hslider, .widget-checkbox, .widget-text, "
            ".widget-combobox, .jupyter-button, .widget-toggle-buttons, .xai-tile, canvas, "
            ".bqplot")


def layout_report(page) -> dict:
    return page.evaluate(LAYOUT_JS, [MIN_CONTRAST, CONTROLS])


def problems(report: dict, limit: int = 12) -> list[str]:
    """The report's failures as readable lines (the worst first, at most ``limit`` each)."""
    if "error" in report:
        return [report["error"]]
    lines = []
    for name, items in (("stick out of the box that holds them", report["fits"]),
                        ("controls overlap", report["overlaps"]),
                        (f"contrast below {MIN_CONTRAST}:1", report["contrast"])):
        if items:
            lines.append(f"{len(items)} {name}:")
            lines += [f"  {json.dumps(item, ensure_ascii=False)}" for item in items[:limit]]
            if len(items) > limit:
                lines.append(f"  … and {len(items) - limit} more")
    return lines


# -- the environments: one page each, the notebook run once -----------------------------------

class Env:
    def __init__(self, name: str, page, server: Server, path: str):
        self.name, self.page, self.server, self.path = name, page, server, path
        self.console: list[str] = []  # the page's console messages


def open_env(server: Server, browser, name: str, theme: str, lab: bool, cell: str = CELL) -> Env:
    server.set_theme(theme)
    notebook = server.notebook(f"layout_{name}", cell)
    page = browser.new_page(viewport={"width": 1280, "height": HEIGHT})
    env = Env(name, page, server, notebook)
    page.on("console", lambda message: env.console.append(message.text))
    with artifacts_on_failure(page, server, f"layout_{name}_setup", env.console):
        if lab:  # its own workspace: no document of another page is restored into it
            page.goto(f"{server.url}/lab/workspaces/layout-{name}/tree/{notebook}")
        else:
            page.goto(f"{server.url}/notebooks/{notebook}")
        page.wait_for_function("name => document.body.dataset.jpThemeName === name",
                               arg=THEMES[theme], timeout=60_000)
        run_all_cells(page, notebook)
        wait_settled(page)
        if lab:
            open_file_browser(page)
    return env


@pytest.fixture(scope="module", params=list(THEMES))
def lab(request, server, browser):
    env = open_env(server, browser, request.param, request.param, lab=True)
    yield env
    close_page(env.page, env.path)


@pytest.fixture(scope="module")
def notebook7(server, browser):
    env = open_env(server, browser, "nb7", "light", lab=False)
    yield env
    close_page(env.page, env.path)


def check_layout(env: Env, width: int, tab: str) -> None:
    page, name = env.page, f"layout_{env.name}_{width}_{tab}"
    with artifacts_on_failure(page, env.server, name, env.console):
        wait_kernel_idle(page, env.path)  # nothing still running from the last case
        if page.viewport_size["width"] != width:
            page.set_viewport_size({"width": width, "height": HEIGHT})
        if "/lab" in page.url:  # open at 1280 and 900, collapsed at 600
            (open_file_browser if width > 600 else close_file_browser)(page)
        show_tab(page, tab)
        # bqplot lays a chart out again only once it is in view (IntersectionObserver): show
        # each chart as a user scrolling past it would, then measure
        charts = page.locator(".xai-explain-widget .bqplot")
        for i in range(charts.count()):
            if charts.nth(i).is_visible():
                charts.nth(i).scroll_into_view_if_needed()
                wait_stable(page)
        page.locator(".xai-explain-widget").first.scroll_into_view_if_needed()
        wait_stable(page)
        report = layout_report(page)
        (ARTIFACTS / f"{name}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
        widget_screenshot(page, ARTIFACTS / f"{name}.png")
        lines = problems(report)
        lines += [f"console: {text}" for text in env.console
                  if "negative" in text.lower() or "uncaught" in text.lower()]
        assert not lines, f"{env.name}, {width} px, tab {tab!r}:\n" + "\n".join(lines)


@pytest.mark.parametrize("tab", list(TABS))
@pytest.mark.parametrize("width", LAB_WIDTHS)
def test_lab_layout(lab, width, tab):
    check_layout(lab, width, tab)


@pytest.mark.parametrize("tab", list(TABS))
def test_notebook7_layout(notebook7, tab):
    check_layout(notebook7, 900, tab)


@pytest.fixture(scope="module")
def rgb(server, browser):
    if importlib.util.find_spec("torchvision") is None:  # imported in the kernel, not here
        pytest.skip("needs torchvision")
    env = open_env(server, browser, "rgb", "light", lab=True, cell=RGB_CELL)
    yield env
    close_page(env.page, env.path)


@pytest.mark.parametrize("width", (1280, 600))
def test_rgb_1000_classes_layout(rgb, width):
    check_layout(rgb, width, "superpixels")
    page = rgb.page
    assert page.locator(".xai-explain-widget .xai-tile").count() == 10
    assert page.locator(".xai-explain-widget .xai-top-k").count() == 1
    labels = page.eval_on_selector_all(".xai-panel-bars .bqplot .tick text",
                                       "ts => ts.map(t => t.textContent)")
    assert "all others" in labels
