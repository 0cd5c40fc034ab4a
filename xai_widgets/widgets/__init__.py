"""The widget classes: traits and wiring only; computation lives in the engine."""

from xai_widgets.widgets.compare_widget import CompareWidget
from xai_widgets.widgets.dataset_widget import DatasetWidget
from xai_widgets.widgets.explain_widget import ExplainWidget

__all__ = ["CompareWidget", "DatasetWidget", "ExplainWidget"]
