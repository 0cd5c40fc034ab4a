"""Global views of a classifier: what it looks for, independent of one input image.

``visualize_class`` draws what a class responds to; ``surrogate_tree`` fits a shallow
decision tree that mimics the network on interpretable features (each node drawn as the image
region it tests) and reports its held-out fidelity; ``pick`` chooses a few images whose
explanations together cover the model's behaviour (SP-LIME's submodular pick);
``GlobalWidget`` shows all three, live.

>>> from xai_widgets import global_views
>>> sorted(n for n in global_views.__all__ if n in ("pick", "surrogate_tree"))
['pick', 'surrogate_tree']
"""

from xai_widgets.global_views.picks import Picks, pick
from xai_widgets.global_views.surrogate import (
    SurrogateTree,
    fidelity_by_depth,
    surrogate_tree,
    surrogate_trees,
)
from xai_widgets.global_views.visualize import Visualization, visualize_class
from xai_widgets.widgets.global_widget import GlobalWidget

__all__ = ["GlobalWidget", "Picks", "SurrogateTree", "Visualization", "fidelity_by_depth", "pick",
           "surrogate_tree", "surrogate_trees", "visualize_class"]
