"""ipywidgets controls built from a method's parameter specs (no method knowledge here).

>>> from xai_widgets import methods
>>> from xai_widgets.widgets.controls import control_for
>>> control_for(methods.spec("occlusion").param("window")).description
'window size'
"""

from __future__ import annotations

import ipywidgets as widgets

from xai_widgets.methods import Param

SLIDER_SPAN = 1000  # wider integer ranges get a number box instead of a slider
STYLE = {"description_width": "110px"}
FIT = "calc(100% - 4px)"  # 100% of the container less ipywidgets' 2 px margins
LAYOUT = {"width": "340px", "max_width": FIT}


def control_for(param: Param, value=None) -> widgets.Widget:
    """One control for one parameter, showing ``value`` (default: the parameter's default)."""
    value = param.default if value is None else value
    common = {"description": param.label or param.name.replace("_", " "), "style": STYLE,
              "layout": LAYOUT, "tooltip": param.help}
    if param.kind == "choice":
        control = widgets.Dropdown(options=list(param.choices), value=value, **common)
    elif param.kind == "bool":
        common.pop("tooltip")
        control = widgets.Checkbox(value=value, indent=False, **common)
    elif param.kind == "int" and param.high - param.low <= SLIDER_SPAN:
        control = widgets.IntSlider(value=value, min=param.low, max=param.high,
                                    step=param.step or 1, continuous_update=True, **common)
    elif param.kind == "int":
        control = widgets.BoundedIntText(value=value, min=param.low, max=param.high, **common)
    elif param.kind == "float" and not on_grid(value, param.step):
        control = widgets.BoundedFloatText(value=value, min=param.low, max=param.high, **common)
    elif param.kind == "float":
        control = widgets.FloatSlider(value=value, min=param.low, max=param.high,
                                      step=param.step or (param.high - param.low) / 100,
                                      readout_format=".3g", continuous_update=False, **common)
    else:
        control = widgets.Text(value=str(value), continuous_update=False, **common)
    control.add_class(f"xai-param-{param.name}")
    return control


def on_grid(value: float, step: float | None) -> bool:
    """Whether a slider with this step can show ``value`` exactly (1e-9 on a 0.01 grid cannot)."""
    return not step or abs(value / step - round(value / step)) < 1e-6
