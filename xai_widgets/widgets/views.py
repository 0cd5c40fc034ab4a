"""The custom front-end views (anywidget): a large heatmap and a grid of class tiles.

Arrays travel as binary buffers (see ``xai_widgets.encoding``); the ES modules are built
from ``js/`` into ``xai_widgets/static`` and ship in the wheel, so nothing loads from a CDN.

>>> from xai_widgets.widgets.views import HeatmapView
>>> HeatmapView().vmax
0.0
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

from xai_widgets.encoding import EMPTY

STATIC = Path(__file__).resolve().parent.parent / "static"


class _Styled(anywidget.AnyWidget):
    _css = STATIC / "views.css"


class _View(_Styled):
    image = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    vmax = traitlets.Float(0.0).tag(sync=True)
    abs_values = traitlets.Bool(False).tag(sync=True)
    grey = traitlets.Bool(False).tag(sync=True)  # draw maps over a greyscale copy of RGB


class HeatmapView(_View):
    """The target's map over the image, the input beside it, a colour bar and a caption."""

    _esm = STATIC / "heatmap.js"
    attribution = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    convention = traitlets.Unicode("").tag(sync=True)
    size = traitlets.Int(336).tag(sync=True)


class ClassGrid(_View):
    """One tile per shown class (``classes``: their indices, ``maps`` in the same order);
    each tile on its own colour scale or a shared one (``vmaxes``). Clicking a tile sets
    ``target`` (synced back to Python)."""

    _esm = STATIC / "class_grid.js"
    maps = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    classes = traitlets.List(traitlets.Int()).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    probabilities = traitlets.List(traitlets.Float()).tag(sync=True)
    vmaxes = traitlets.List(traitlets.Float()).tag(sync=True)
    predicted = traitlets.Int(-1).tag(sync=True)
    target = traitlets.Int(-1).tag(sync=True)


class SuperpixelView(_View):
    """Segments coloured by weight; clicking one toggles it in ``hidden`` (synced back)."""

    _esm = STATIC / "superpixels.js"
    masked_image = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    segments = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    weights = traitlets.List(traitlets.Float()).tag(sync=True)
    hidden = traitlets.List(traitlets.Int()).tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)
    size = traitlets.Int(280).tag(sync=True)


class CounterfactualView(_Styled):
    """x, the morph frame, x′ and the difference map side by side."""

    _esm = STATIC / "counterfactual.js"
    original = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    frame = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    counterfactual = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)
    size = traitlets.Int(112).tag(sync=True)


class TilesView(_Styled):
    """Groups of map tiles (clusters or methods); clicking a tile sets ``selected``."""

    _esm = STATIC / "tiles.js"
    images = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    maps = traitlets.Dict(default_value=EMPTY).tag(sync=True)
    captions = traitlets.List(traitlets.Unicode()).tag(sync=True)
    groups = traitlets.List(traitlets.Dict()).tag(sync=True)
    vmax = traitlets.List(traitlets.Float()).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    size = traitlets.Int(72).tag(sync=True)
    dim = traitlets.Float(0.55).tag(sync=True)  # how much the images darken under the maps
