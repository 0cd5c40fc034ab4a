"""The tabs of ``ExplainWidget``: adding a tab is one panel file and one entry in ``TABS``.

Each tab is built when first opened; ``TAB_NAMES`` (with "" for no tab open) are the values
the view state's ``tab`` trait accepts.

>>> TAB_NAMES
('', 'superpixels', 'counterfactual', 'diagnostics', 'influence', 'robustness')
"""

from __future__ import annotations

from xai_widgets.widgets.counterfactual_panel import CounterfactualPanel
from xai_widgets.widgets.diagnostics_panel import DiagnosticsPanel
from xai_widgets.widgets.influence_panel import InfluencePanel
from xai_widgets.widgets.robustness_panel import RobustnessPanel
from xai_widgets.widgets.superpixel_panel import SuperpixelPanel

TABS = (SuperpixelPanel, CounterfactualPanel, DiagnosticsPanel, InfluencePanel, RobustnessPanel)
TAB_NAMES = ("",) + tuple(tab.name for tab in TABS)
