"""The widget classes: traits and wiring only; computation lives in the engine."""

from xai_widgets.widgets.explain_widget import ExplainWidget

__all__ = ["ExplainWidget"]
