"""The method registry. ``names()``, ``spec(name)``, ``available(model)``.

>>> from xai_widgets import methods
>>> "integrated_gradients" in methods.names()
True
"""

from xai_widgets.methods import captum_methods  # noqa: F401  (registers the captum methods)
from xai_widgets.methods import lime_methods, shap_methods  # noqa: F401  (and the others)
from xai_widgets.methods.registry import MethodSpec, Param, Task, available, names, spec

DEFAULT_METHOD = "integrated_gradients"

__all__ = ["DEFAULT_METHOD", "MethodSpec", "Param", "Task", "available", "names", "spec"]
