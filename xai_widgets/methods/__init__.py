"""The method registry. ``names()``, ``spec(name)``, ``available(model)``.

>>> from xai_widgets import methods
>>> "integrated_gradients" in methods.names()
True
"""

# importing a backend module registers its methods (in this order, the pickers' order,
# so isort must not merge or sort them)
# isort: off
from xai_widgets.methods import captum_methods, occlusion_methods  # noqa: F401
from xai_widgets.methods import cam_methods, lrp_methods  # noqa: F401
from xai_widgets.methods import attention_methods  # noqa: F401
from xai_widgets.methods import lime_methods, shap_methods  # noqa: F401
# isort: on
from xai_widgets.methods.registry import MethodSpec, Param, Task, available, names, spec

DEFAULT_METHOD = "integrated_gradients"

__all__ = ["DEFAULT_METHOD", "MethodSpec", "Param", "Task", "available", "names", "spec"]
