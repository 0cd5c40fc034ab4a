"""Global views of a classifier: what it looks for, independent of one input image."""

from xai_widgets.global_views.visualize import Visualization, visualize_class

__all__ = ["Visualization", "visualize_class"]
