"""xai_widgets: live, linked explanations of image classifiers in Jupyter.

>>> from xai_widgets import explain
>>> from xai_widgets.zoo import load_demo
>>> model, images, labels, classes = load_demo("mnist")
>>> explain(model, images[0], method="saliency").attributions.shape
(10, 28, 28)
"""

from xai_widgets import methods
from xai_widgets.counterfactual import counterfactual
from xai_widgets.errors import InputError
from xai_widgets.explain import explain
from xai_widgets.explanation import Explanation
from xai_widgets.widgets import CompareWidget, DatasetWidget, ExplainWidget

__all__ = ["CompareWidget", "DatasetWidget", "ExplainWidget", "Explanation", "InputError",
           "counterfactual", "explain", "methods"]
__version__ = "0.1.0"
