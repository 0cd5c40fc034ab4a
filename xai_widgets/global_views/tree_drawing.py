"""Drawing a ``SurrogateTree``: each node as the image region it tests (an inline SVG with
embedded thumbnails; text and lines in ``currentColor``, so it reads in light and dark
themes).

>>> from xai_widgets.global_views.tree_drawing import STYLE
>>> "currentColor" in STYLE
True
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from xai_widgets.global_views.surrogate import SurrogateTree

STYLE = (".xw-tree text{fill:currentColor;font:11px var(--jp-ui-font-family,sans-serif)}"
         ".xw-tree .xw-edge{stroke:currentColor;stroke-opacity:.45;fill:none}"
         ".xw-tree .xw-region{fill:none;stroke:var(--jp-brand-color1,#f28e2b);stroke-width:2}"
         ".xw-tree .xw-dim{fill:#000;fill-opacity:.55}"
         ".xw-tree .xw-frame{fill:none;stroke:currentColor;stroke-opacity:.3}"
         ".xw-tree .xw-leaf{font-weight:600}")


def _png(image: torch.Tensor, size: int) -> str:
    from PIL import Image

    x = image.detach().float().cpu()[None]
    x = F.interpolate(x, size=(size, size), mode="area") if x.shape[-1] > size else x
    x = (x[0] - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    array = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    array = array[..., 0] if array.shape[2] == 1 else array[..., :3]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def draw_tree(surrogate: SurrogateTree, size: int) -> str:
    """The tree as HTML with inline SVG: each node a thumbnail with the region it tests
    outlined, its test and its threshold; each leaf the class and its share."""
    t = surrogate.tree.tree_
    column, row, rows, pngs, parts, leaves = size + 200, size + 14, {}, {}, [], [0]

    def place(node, depth=0):  # leaves get rows in order; a node sits on its first child's
        # row, so the root is at the top-left, where a scrolled box opens
        depths[node] = depth
        if t.children_left[node] < 0:
            rows[node], leaves[0] = float(leaves[0]), leaves[0] + 1
        else:
            rows[node] = place(t.children_left[node], depth + 1)
            place(t.children_right[node], depth + 1)
        return rows[node]

    depths = {}
    place(0)
    for node in range(t.node_count):
        x, y = 8 + depths[node] * column, 8 + rows[node] * row
        for child, word in ((t.children_left[node], "no"), (t.children_right[node], "yes")):
            if child >= 0:
                cx, cy = 8 + depths[child] * column, 8 + rows[child] * row + size / 2
                sx = x + size + 132  # after the node's text
                parts.append(f'<path class="xw-edge" d="M{sx},{y + size / 2} C{cx - 20},'
                             f'{y + size / 2} {cx - 20},{cy} {cx},{cy}"/><text x="{cx - 26}" '
                             f'y="{cy - 3}">{word}</text>')
        leaf = t.children_left[node] < 0
        counts = t.value[node][0]
        if leaf:
            c = int(surrogate.tree.classes_[int(np.argmax(counts))])
            key, box = c, None
            lines = [(f"→ {surrogate.classes[c]}", "xw-leaf"),
                     (f"{counts.max() / counts.sum():.0%} of {int(t.n_node_samples[node])}", "")]
        else:
            box, key = surrogate.featurizer.region(int(t.feature[node]))
            lines = [(surrogate.feature_names[int(t.feature[node])], ""),
                     (f"> {t.threshold[node]:.3g} ?", "")]
        image = surrogate.thumbnails.get(key, surrogate.thumbnails["mean"])
        if key not in pngs:
            pngs[key] = _png(image, 2 * size)
        shape = (f'<rect class="xw-frame" x="{x}" y="{y}" width="{size}" height="{size}"/>')
        if box is not None:
            bx, by = x + box[2] * size, y + box[0] * size
            bw, bh = (box[3] - box[2]) * size, (box[1] - box[0]) * size
            shape += (f'<path class="xw-dim" fill-rule="evenodd" d="M{x},{y}h{size}v{size}'
                      f'h{-size}z M{bx},{by}v{bh}h{bw}v{-bh}z"/><rect class="xw-region" '
                      f'x="{bx:.1f}" y="{by:.1f}" width="{bw:.1f}" height="{bh:.1f}"/>')
        text = "".join(f'<text class="{cls}" x="{x + size + 6}" y="{y + 15 + 14 * i}">'
                       f"{html.escape(line)}</text>" for i, (line, cls) in enumerate(lines))
        parts.append(f'<g class="xw-node"><image href="{pngs[key]}" x="{x}" y="{y}" '
                     f'width="{size}" height="{size}" style="image-rendering:pixelated"/>'
                     f"{shape}{text}</g>")
    width = 16 + (max(depths.values()) + 1) * column
    height = 16 + (max(rows.values()) + 1) * row
    title = (f"surrogate tree on {surrogate.features}: depth {surrogate.depth}, "
             f"{surrogate.n_leaves} leaves, held-out fidelity {surrogate.fidelity:.1%} "
             f"({surrogate.n_test} images)")
    return (f'<div class="xw-tree" style="overflow:auto;max-height:720px;color:var(--jp-ui-'
            f'font-color1,currentColor);font:13px var(--jp-ui-font-family,sans-serif)"><div>'
            f'{html.escape(title)}</div>'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'role="img" aria-label="{html.escape(title)}"><style>{STYLE}</style>'
            f'{"".join(parts)}</svg></div>')
