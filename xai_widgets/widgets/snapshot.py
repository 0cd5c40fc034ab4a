"""Static pictures of the widgets' views, for wherever no widget manager runs.

A widget's output is a reference to a model in the kernel: nbconvert's HTML (offline),
GitHub's viewer and a notebook opened without its kernel show nothing there. So a widget
displays as two outputs: the live widget, then its picture — ``image/png``, a ``text/plain``
line and a widget view with ``model_id`` ``""``. JupyterLab and Notebook 7 rank the widget
view first and hide a view with an empty model id (a "removed view"): live, nothing changes.
nbconvert skips a view whose model is not in the saved widget state, as do renderers without
a widget manager: they show the PNG. Drawn with numpy and Pillow in ``js/paint.js``'s
colours; updated in place (``update_display``) when the view settles.

>>> import io, numpy as np
>>> from PIL import Image
>>> from xai_widgets.widgets import snapshot
>>> image, heat = np.zeros((1, 28, 28)), np.zeros((28, 28))
>>> heat[10:18, 10:18] = 1.0
>>> pixels = snapshot.overlay(image, heat)
>>> pixels.shape, tuple(pixels[14, 14]) != tuple(pixels[0, 0])
((28, 28, 3), True)
>>> picture = snapshot.draw_tiles("two maps", [("a group", [(pixels, "map"), (pixels, "again")])],
...                               "done", size=96)
>>> Image.open(io.BytesIO(snapshot.png_bytes(picture))).size[0]
600
"""

from __future__ import annotations

import base64
import io
import textwrap
import threading
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RED, BLUE = np.array([214, 39, 40], np.float32), np.array([33, 102, 172], np.float32)
INK, MUTED, OK = (34, 34, 34), (110, 110, 110), (44, 160, 44)
ERROR, GREY = (214, 39, 40), (190, 190, 190)
WIDTH, MAX_BYTES, DELAY = 600, 100_000, 0.25
VIEW = "application/vnd.jupyter.widget-view+json"
ASCII = str.maketrans({"…": "...", "·": "-", "≈": "~", "′": "'", "×": "x", "→": "->", "✓": "",
                       "⚠": "!", "–": "-", "—": "-"})


@cache
def font(size: int, bold: bool = False):
    """DejaVu Sans when the system has it (every glyph the views use), else Pillow's own."""
    for load in (lambda: ImageFont.truetype(f"DejaVuSans{'-Bold' if bold else ''}.ttf", size),
                 lambda: ImageFont.load_default(size)):  # Pillow >= 10.1 with FreeType
        try:
            return load()
        except (OSError, TypeError, ImportError):
            pass
    return ImageFont.load_default()  # the bitmap font


def rgb(image, grey: bool = False) -> np.ndarray:
    """A (C, H, W) image as (H, W, 3) in 0..1, scaled from its value range (at least 0..1)."""
    image = np.asarray(image, dtype=np.float32)
    low, high = min(0.0, float(image.min())), max(1.0, float(image.max()))
    t = (image - low) / (high - low or 1.0)
    if t.shape[0] == 3:
        out = t.transpose(1, 2, 0)
        if grey:
            return np.repeat((out @ np.float32([0.299, 0.587, 0.114]))[..., None], 3, -1)
        return out
    return np.repeat(t[0][..., None], 3, -1)


def tint(value: np.ndarray):
    """Opacity and colour of values in units of vmax: red >= 0, blue < 0, clear near 0."""
    return ((np.minimum(1, np.abs(value)) ** 0.75 * 0.92)[..., None],
            np.where((value >= 0)[..., None], RED, BLUE))


def overlay(image, heat=None, vmax: float | None = None, abs_values: bool = False,
            grey: bool = False, dim: float = 0.55) -> np.ndarray:
    """The map over the dimmed image as (H, W, 3) uint8, as ``js/paint.js`` paints it: red =
    for, blue = against, transparent near 0. Without a map: the image itself."""
    if heat is None:
        return np.round(255 * rgb(image, grey)).astype(np.uint8)
    base = 255 * (1 - dim) * rgb(image, grey) + 20
    value = np.asarray(heat, dtype=np.float32)
    if value.shape != base.shape[:2]:  # a map at another resolution: resized to the image
        value = np.asarray(Image.fromarray(value, "F").resize(base.shape[1::-1],
                                                              Image.Resampling.BILINEAR))
    value = np.abs(value) if abs_values else value
    vmax = float(np.abs(value).max()) if vmax is None else vmax
    value = value / vmax if vmax > 0 else np.zeros_like(value)
    alpha, colour = tint(value)
    return np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def tile(pixels: np.ndarray, size: int) -> Image.Image:
    """(H, W, 3) uint8 pixels scaled to ``size`` on the long side (crisp when enlarged)."""
    picture = Image.fromarray(pixels, "RGB")
    scale = size / max(picture.size)
    shape = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(shape, Image.Resampling.NEAREST if scale >= 1
                          else Image.Resampling.LANCZOS)


def colour_bar(height: int, abs_values: bool) -> Image.Image:
    t = np.linspace(1, 0, height, dtype=np.float32)[:, None].repeat(14, 1)  # 1 at the top
    alpha, colour = tint(t if abs_values else 2 * t - 1)
    return Image.fromarray((255 * (1 - alpha) + colour * alpha).astype(np.uint8), "RGB")


def number(v: float) -> str:  # a colour-bar label, as formatValue in js/paint.js
    return "0" if v == 0 else f"{v:.1e}" if abs(v) >= 100 or abs(v) < 0.01 else f"{v:.2g}"


class Sheet:
    """A white canvas of ``WIDTH`` px; ``picture()`` crops it to what was drawn."""

    def __init__(self):
        self.image = Image.new("RGB", (WIDTH, 1600), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.bottom = 0

    def text(self, x: int, y: int, text: str, size: int = 12, colour=INK, bold: bool = False,
             width: int | None = None) -> int:
        """One line, cut with an ellipsis to ``width``; returns the y below it."""
        face, width = font(size, bold), width or WIDTH - x - 8
        if not isinstance(getattr(face, "path", None), str):  # not a system font: ASCII only
            text = text.translate(ASCII).encode("ascii", "replace").decode()
        if self.draw.textlength(text, font=face) > width:
            while text and self.draw.textlength(text + "...", font=face) > width:
                text = text[:-1]
            text += "..."
        self.draw.text((x, y), text, fill=colour, font=face)
        self.bottom = max(self.bottom, y + size + 5)
        return y + size + 5

    def wrap(self, x: int, y: int, text: str, size: int = 11, colour=MUTED) -> int:
        """Words wrapped to the sheet's width (about 0.6 em a letter); returns the y below."""
        for line in textwrap.wrap(text, int((WIDTH - x - 8) / (0.6 * size))):
            y = self.text(x, y, line, size, colour)
        return y

    def paste(self, picture: Image.Image, x: int, y: int) -> int:
        self.image.paste(picture, (x, y))
        self.bottom = max(self.bottom, y + picture.height)
        return y + picture.height

    def picture(self) -> Image.Image:
        return self.image.crop((0, 0, WIDTH, self.bottom + 8))


def status_line(sheet: Sheet, y: int, status: str, error: str = "") -> int:
    busy = not status or status.startswith(("computing", "explaining"))
    line, colour = ((f"⚠ {error}", ERROR) if error else (status or "computing…", MUTED) if busy
                    else (f"✓ {status}", OK))
    return sheet.text(8, y, line, 12, colour)


def draw_explain(state, e) -> Image.Image:
    """ExplainWidget's view: the target's map over the image with its colour bar, the input,
    the top probabilities, the colour convention and the status line (``e`` may be None)."""
    from xai_widgets import methods
    from xai_widgets.widgets.map_panel import convention

    sheet, target = Sheet(), state.target
    label, shown = state.label(target), e is not None and target in e.targets
    image = e.image if e is not None else state.image[0].detach().cpu().numpy()
    grey = image.shape[0] == 3 and not state.colour_image
    title = f"class {label} · {methods.spec(e.method if shown else state.method).label}"
    heat = e.map(target) if shown else None
    vmax = float(np.abs(heat).max()) if shown else None
    top = sheet.text(8, 8, title + (f" · p = {e.probabilities[target]:.1%}" if shown else ""),
                     15, bold=True) + 4
    sheet.paste(tile(overlay(image, heat, vmax, state.abs_values, grey), 300), 8, top)
    if shown:
        sheet.paste(colour_bar(300, state.abs_values), 314, top)
        low = 0.0 if state.abs_values else -vmax
        for y, value in ((top, vmax), (top + 144, (vmax + low) / 2), (top + 286, low)):
            sheet.text(332, y, number(value), 11, MUTED, width=60)
    y = sheet.text(400, top, "input", 11, MUTED)
    y = sheet.paste(tile(overlay(image), 96), 400, y) + 10  # in colour, as the live view
    y = sheet.text(400, y, "probabilities", 11, MUTED)
    probabilities = np.asarray(state.probabilities, dtype=np.float32)
    best = [int(i) for i in np.argsort(-probabilities, kind="stable")[:6]]
    for c in best if target in best else [*best[:5], target]:
        colour = tuple(int(v) for v in RED) if c == target and shown else GREY
        sheet.text(400, y, state.label(c), 11, INK, width=70)
        sheet.draw.rectangle((474, y + 2, 474 + max(1, round(70 * probabilities[c])), y + 11),
                             fill=colour)
        y = sheet.text(550, y, f"{probabilities[c]:.0%}", 11, MUTED)
    y = max(y, top + 300) + 8
    if shown:
        y = sheet.wrap(8, y, convention(label, state.abs_values))
    status_line(sheet, y + 2, state.status, state.error)
    return sheet.picture()


def draw_tiles(title: str, groups, status: str, error: str = "", size: int = 120) -> Image.Image:
    """Tiles of pictures with captions: ``groups`` is ``[(heading, [(pixels, caption)])]``
    (``pixels`` from ``overlay``; a caption's lines are separated by newlines)."""
    sheet = Sheet()
    y = sheet.text(8, 8, title, 15, bold=True) + 2
    per_row = max(1, (WIDTH - 8) // (size + 8))
    for heading, tiles in groups:
        if heading:
            y = sheet.text(8, y + 4, heading, 12, MUTED)
        lines = max([len(caption.splitlines()) for _, caption in tiles] or [0])
        for start in range(0, len(tiles), per_row):
            for column, (pixels, caption) in enumerate(tiles[start:start + per_row]):
                x = 8 + column * (size + 8)
                below = sheet.paste(tile(pixels, size), x, y) + 2
                for line in caption.splitlines():
                    below = sheet.text(x, below, line, 10, MUTED, width=size)
            y += size + 2 + 15 * lines + 8
        if sheet.bottom > 1400:
            break
    status_line(sheet, y + 4, status, error)
    return sheet.picture()


def png_bytes(picture: Image.Image, limit: int = MAX_BYTES) -> bytes:
    """PNG bytes under ``limit``: 256 colours if need be, then smaller."""
    while True:
        buffer = io.BytesIO()
        picture.save(buffer, "PNG", optimize=True)
        if buffer.tell() <= limit or picture.width < 200:
            return buffer.getvalue()
        picture = (picture.quantize(256, method=Image.Quantize.FASTOCTREE) if picture.mode == "RGB"
                   else picture.resize((picture.width * 3 // 4, picture.height * 3 // 4)))


class StaticFallback:
    """Mixin (before the ipywidgets base): displayed, the live view and then its picture.
    Subclasses define ``_snapshot()`` (a PIL image), ``_snapshot_text()`` (one line) and
    ``_settled()``, call ``_snapshot_soon()`` when the view may have settled and
    ``refresh_snapshot()`` at the end of ``wait()``."""

    _snapshot_id: str | None = None
    _snapshot_timer: threading.Timer | None = None
    _snapshot_shown = ""

    def snapshot(self) -> bytes:
        """The current view as PNG bytes (what the saved notebook shows without a kernel)."""
        return png_bytes(self._snapshot())

    def _static_bundle(self) -> dict:
        bundle = {VIEW: {"version_major": 2, "version_minor": 0, "model_id": ""},
                  "text/plain": self._snapshot_text()}
        try:
            bundle["image/png"] = base64.b64encode(self.snapshot()).decode("ascii")
        except Exception as error:  # noqa: BLE001 - the picture is a courtesy; the view stays
            bundle["text/plain"] += f" (no picture: {error!r})"
        return bundle

    def _repr_mimebundle_(self, **kwargs):
        """The live view's bundle and its picture, for callers that ask for one bundle."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None and getattr(self, "comm", None) is not None:
            bundle.update({k: v for k, v in self._static_bundle().items() if k != VIEW})
        return bundle

    def _ipython_display_(self, **kwargs) -> None:
        from IPython.display import display

        if getattr(self, "comm", None) is None:  # closed: nothing live to show
            return display({"text/plain": self._snapshot_text()}, raw=True)
        live = super()._repr_mimebundle_()
        live["text/plain"] = f"{type(self).__name__} (interactive: needs a running kernel)"
        display(live, raw=True)
        if self._snapshot_id is None:  # the locks first: the worker may look from now on
            self._snapshot_lock, self._timer_lock = threading.Lock(), threading.Lock()
            self._snapshot_id = f"xai-view-{self.model_id}"  # every copy shown updates together
        with self._snapshot_lock:
            bundle = self._static_bundle()
            self._snapshot_shown = bundle.get("image/png", "")
            display(bundle, raw=True, display_id=self._snapshot_id, metadata=self._about())

    def refresh_snapshot(self) -> None:
        """Redraw the picture and update every copy displayed (if it changed)."""
        from IPython.display import update_display

        if self._snapshot_id is None or getattr(self, "comm", None) is None:
            return
        with self._snapshot_lock:
            bundle = self._static_bundle()
            if bundle.get("image/png", "") != self._snapshot_shown:
                self._snapshot_shown = bundle.get("image/png", "")
                update_display(bundle, raw=True, display_id=self._snapshot_id,
                               metadata=self._about())

    def _snapshot_soon(self, *_change) -> None:
        """Refresh once the view has been settled for ``DELAY`` s (only the last of a burst)."""
        if self._snapshot_id is None or not self._settled():
            return
        with self._timer_lock:  # not the drawing's lock: a result is never held up by drawing
            if self._snapshot_timer is not None:
                self._snapshot_timer.cancel()
            self._snapshot_timer = threading.Timer(
                DELAY, lambda: self._settled() and self.refresh_snapshot())
            self._snapshot_timer.daemon = True
            self._snapshot_timer.start()

    def _about(self) -> dict:
        return {"xai_widgets": {"static_view_of": self.model_id}}

    def _stop_snapshots(self) -> None:
        if self._snapshot_timer is not None:
            self._snapshot_timer.cancel()
