"""The class visualisation, live (a panel of the ``GlobalWidget``).

A class picker, the parameterisation, the number of steps and one control per regulariser
(with the ranges of ``global_views.visualize.REGULARISERS``); any change starts a new run on
the ``visualize`` channel that supersedes the running one. While it runs, the image and the
curve of p(target) over the steps update every few steps; *stop* ends the run and keeps
the last image shown; *run again* restarts it. Writes ``target``, ``parameterization``,
``steps`` and ``regularisers`` of the ``GlobalState``; results go to ``frame``,
``visualization`` and ``running``.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
import numpy as np

from xai_widgets.encoding import EMPTY, encode
from xai_widgets.widgets.class_picker import class_picker, option, parse_class
from xai_widgets.widgets.controls import FIT, LAYOUT, STYLE
from xai_widgets.widgets.global_state import MAX_STEPS, Frame, as_image, visualize_module
from xai_widgets.widgets.panel import SKIP, Panel, escape, set_text, text
from xai_widgets.widgets.views import HeatmapView

UPDATES = 32  # frames sent per run, at most (every few steps)
DROPDOWN_CLASSES = 100  # more classes: a combobox (type a name or an index)
LABELS = {"l2": "L2 (dark)", "tv": "smoothness (TV)", "jitter": "jitter (px)",
          "blur_every": "blur every", "blur_sigma": "blur σ (px)", "lr": "step size (lr)"}
SPACES = {"pixel": "pixels", "fourier": "Fourier spectrum (1/f)"}
SLIDER_STEPS = {"l2": 0.01, "tv": 0.01, "blur_sigma": 0.05}  # the rest: a number box
SHOWN = tuple(LABELS)  # latent_l2 matters only with a generator


class VisualizePanel(Panel):
    """``picker`` (the class), ``parameterization``, ``steps``, ``controls`` (regulariser
    name → control), ``run`` / ``stop`` / ``progress``, ``note`` (progress, the result or
    the error), ``view`` (the image), ``curve`` (p(target) per step, inline SVG)."""

    name, title = "visualize", "class visualisation"
    watch = ("frame", "running", "errors", "target")

    def build(self) -> list:
        state = self.state
        self._status = ""
        if state.n_classes <= DROPDOWN_CLASSES:
            self.picker = widgets.Dropdown(
                options=[(option(state.labels, i), i) for i in range(state.n_classes)],
                description="class", style=STYLE, layout=LAYOUT)
            self.bind(self.picker, "target")
        else:
            self.picker = class_picker(state.labels, "class", LAYOUT["width"])
            self.bind(self.picker, "target", self._parse_class,
                      lambda target: option(state.labels, target))
        self.picker.add_class("xai-global-class")
        self.parameterization = widgets.Dropdown(
            options=[(SPACES.get(p, p), p) for p in state.parameterizations],
            description="optimise", style=STYLE, layout=LAYOUT,
            tooltip="what the optimiser changes: the pixels, or a 1/f-scaled spectrum")
        self.parameterization.add_class("xai-global-parameterization")
        self.bind(self.parameterization, "parameterization")
        self.steps = widgets.BoundedIntText(min=1, max=MAX_STEPS, description="steps", style=STYLE,
                                            layout=LAYOUT)
        self.steps.add_class("xai-global-steps")
        self.bind(self.steps, "steps")
        self.controls = {name: self._regulariser(name) for name in SHOWN
                         if name in state.regulariser_specs}
        self.run = self._button("run again", "xai-global-run", self.request, "primary",
                                "start the optimisation again from the seed")
        self.stop = self._button("stop", "xai-global-stop", self.cancel, "warning",
                                 "stop the optimisation; the image shown stays")
        self.progress = widgets.FloatProgress(min=0, max=1, layout={"width": "140px",
                                                                    "max_width": FIT})
        self.progress.add_class("xai-global-progress")
        self.note = text("", "muted")
        self.note.add_class("xai-global-note")
        self.view = HeatmapView(size=224)
        self.view.add_class("xai-global-image")
        self.curve = text("")
        self.curve.add_class("xai-global-curve")
        controls = widgets.VBox(
            [self.picker, self.parameterization, self.steps, *self.controls.values(),
             widgets.Box([self.run, self.stop, self.progress],
                         layout={"flex_flow": "row wrap", "gap": "8px",
                                 "align_items": "center"})],
            layout={"flex": "0 1 360px", "min_width": "0", "max_width": "100%"})
        picture = widgets.VBox([self.view, self.curve],
                               layout={"flex": "0 1 300px", "min_width": "0",
                                       "max_width": "100%"})
        self.on(["target", "parameterization", "steps", "regularisers"], self.request)
        return [text("<b>class visualisation</b>: the image the model finds most typical of a "
                     "class (optimised from noise; it updates as the optimisation runs)"),
                widgets.Box([controls, picture], layout={"flex_flow": "row wrap", "gap": "16px",
                                                          "align_items": "flex-start"}),
                self.note]

    def _button(self, label, css, action, style="", tooltip="") -> widgets.Button:
        button = widgets.Button(description=label, button_style=style, tooltip=tooltip)
        button.add_class(css)
        button.on_click(lambda _button: self.guarded(action))
        return button

    def _regulariser(self, name: str) -> widgets.Widget:
        spec = self.state.regulariser_specs[name]
        common = {"description": LABELS.get(name, name), "style": STYLE, "layout": LAYOUT,
                  "tooltip": spec.help}
        if isinstance(spec.default, int) and spec.high - spec.low <= 64:
            control = widgets.IntSlider(min=spec.low, max=spec.high, continuous_update=False,
                                        **common)
        elif isinstance(spec.default, int):
            control = widgets.BoundedIntText(min=spec.low, max=spec.high, **common)
        elif name in SLIDER_STEPS:
            control = widgets.FloatSlider(min=spec.low, max=spec.high, step=SLIDER_STEPS[name],
                                          readout_format=".2f", continuous_update=False,
                                          **common)
        else:
            control = widgets.BoundedFloatText(min=spec.low, max=spec.high, **common)
        control.add_class(f"xai-global-{name.replace('_', '-')}")
        self.bind(control, "regularisers",
                  lambda value: {**self.state.regularisers, name: value},
                  lambda weights: weights.get(name, SKIP))
        return control

    def _parse_class(self, value: str):
        index = parse_class(value, self.state.labels)
        if index is None:
            if value:
                self.state.fail(self.name, f"no class {value!r}: type a class name or an "
                                           f"index in 0..{self.state.n_classes - 1}")
            return SKIP
        return index

    # -- the job -------------------------------------------------------------------------------
    def request(self) -> None:
        """Start a run with the state's settings (a running one is superseded)."""
        state = self.state
        settings, label = state.settings(), state.label(state.target)
        every = max(1, round(settings["steps"] / UPDATES))
        state.clear(self.name)
        state.set_trait("visualization", None)  # never the old class's result beside the run
        state.set_trait("running", True)
        self._status = f"optimising an image of class {escape(label)}…"
        self.progress.value = 0.0
        state.submit("visualize", lambda job: self._work(job, settings, every), self._done,
                     self._failed)

    def cancel(self) -> None:
        """Stop the run; the last image shown stays (and can be run again)."""
        state = self.state
        if not state.running:
            return
        state.engine.supersede("visualize")
        frame = state.frame
        self._status = ("stopped" + (f" at step {frame.step} of {frame.steps}: the image shown "
                                     "is that step's" if frame is not None else "")
                        + "; <i>run again</i> starts over")
        state.set_trait("running", False)

    def _work(self, job, settings: dict, every: int):
        state, points, settings = self.state, [], dict(settings)
        target = settings.pop("target")

        def on_step(step, steps, image, score) -> None:
            points.append((int(step), float(score)))
            job.publish(self._show_frame, Frame(target, step, steps, as_image(image),
                                                tuple(points), float(score)))

        start = time.perf_counter()
        result = visualize_module().visualize_class(
            state.model, target, preprocess=state.preprocess,
            image_shape=tuple(state.images.shape[1:]), generator=state.generator,
            on_step=on_step, report_every=every, cancelled=job.cancelled, **settings)
        return result, time.perf_counter() - start

    def _show_frame(self, frame: Frame) -> None:
        self.state.set_trait("frame", frame)

    def _done(self, outcome) -> None:
        (result, seconds), state = outcome, self.state
        self._status = (f"<span class='xai-ok'>✓</span> class {escape(state.label(result.target))}"
                        f": p = {result.score:.1%} after {result.steps} steps · {seconds:.1f} s")
        points = tuple((step, float(p)) for step, p in enumerate(result.history, 1))
        state.set_trait("frame", Frame(result.target, result.steps, result.steps,
                                       as_image(result.image), points, float(result.score)))
        state.set_trait("visualization", result)
        state.set_trait("running", False)

    def _failed(self, message: str) -> None:
        self.state.set_trait("running", False)
        self._status = ""
        self.state.fail(self.name, message)

    # -- drawing -------------------------------------------------------------------------------
    def render(self) -> None:
        state, frame = self.state, self.state.frame
        running = state.running
        self.stop.disabled, self.run.disabled = not running, False
        self.progress.layout.visibility = "visible" if running else "hidden"
        error = state.errors.get(self.name, "")
        if frame is None:
            self.view.image = EMPTY
            set_text(self.curve, "")
        else:
            self.progress.value = frame.step / max(frame.steps, 1)
            with self.view.hold_sync():
                self.view.image = encode(np.round(255 * np.clip(frame.image, 0, 1)), "uint8")
                self.view.title = (f"class {state.label(frame.target)} · step {frame.step} of "
                                   f"{frame.steps} · p = {frame.score:.1%}")
            set_text(self.curve, sparkline(frame.points, frame.steps), "muted")
        if error:
            set_text(self.note, f"<span class='xai-error'>⚠ {escape(error)}</span>")
        elif running and frame is not None and frame.step < frame.steps:
            set_text(self.note, f"{self._status} step {frame.step} of {frame.steps}", "muted")
        else:
            set_text(self.note, self._status, "muted")


def sparkline(points, steps: int, width: int = 260, height: int = 64) -> str:
    """p(target) over the steps, ``(step, p)`` pairs, as inline SVG (0..1 upwards, steps
    rightwards; theme-aware: the axes take the text colour)."""
    left, right, top, bottom = 26, 8, 6, height - 18
    x = lambda i: left + (width - left - right) * (i - 1) / max(steps - 1, 1)  # noqa: E731
    y = lambda p: bottom - (bottom - top) * float(np.clip(p, 0, 1))  # noqa: E731
    path = " ".join(f"{x(i):.1f},{y(p):.1f}" for i, p in points)
    line = (f"<polyline points='{path}' fill='none' stroke='#d62728' stroke-width='1.6'/>"
            if len(points) > 1 else "")
    axes = (f"<line x1='{left}' x2='{width - right}' y1='{bottom}' y2='{bottom}' "
            f"stroke='currentColor' stroke-opacity='0.5'/>"
            f"<line x1='{left}' x2='{left}' y1='{top}' y2='{bottom}' stroke='currentColor' "
            "stroke-opacity='0.5'/>"
            f"<text x='{left - 4}' y='{top + 8}' font-size='10' text-anchor='end' "
            "fill='currentColor'>1</text>"
            f"<text x='{left - 4}' y='{bottom}' font-size='10' text-anchor='end' "
            "fill='currentColor'>0</text>"
            f"<text x='{left}' y='{height - 4}' font-size='10' fill='currentColor'>step 1</text>"
            f"<text x='{width - right}' y='{height - 4}' font-size='10' text-anchor='end' "
            f"fill='currentColor'>{steps}</text>")
    title = (f"<title>p(class) {points[-1][1]:.1%} at step {points[-1][0]}</title>"
             if points else "")
    return (f"<svg class='xai-global-spark' width='{width}' height='{height}' role='img' "
            f"viewBox='0 0 {width} {height}'>{title}{axes}{line}</svg>"
            "<div class='xai-muted'>p(class) at each step, as the optimiser saw it</div>")
