"""Traits that validate where values enter: a bad value set from Python raises ``InputError``
at once, with the fix in its message (the lonboard pattern).

Validators that depend on the view (the number of classes, the chosen method) ask the
object that owns the trait: ``n_classes``, ``method`` and ``image_shape``.

>>> import traitlets
>>> from xai_widgets.widgets.traits import Fraction
>>> class Demo(traitlets.HasTraits):
...     alpha = Fraction(0.0, name="baseline_alpha", meaning="0 = the baseline, 1 = the image")
>>> Demo(alpha=2.0)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
xai_widgets.errors.InputError: baseline_alpha must be in 0..1 (0 = the baseline, 1 = the image),
got 2.0
"""

from __future__ import annotations

import numpy as np
import traitlets

from xai_widgets import methods
from xai_widgets.baselines import BASELINES
from xai_widgets.errors import InputError


def class_index(obj, value, what: str = "target") -> int:
    n = obj.n_classes
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what} must be a class index (an int in 0..{n - 1}), got {value!r}")
    if not 0 <= int(value) < n:
        raise InputError(f"{what} {int(value)} is out of range: the model has {n} classes, so "
                         f"the {what} must be in 0..{n - 1}")
    return int(value)


class ClassIndex(traitlets.Int):
    """A class of the model (``None`` allowed when ``allow_none``)."""

    def validate(self, obj, value):
        if value is None and self.allow_none:
            return None
        return class_index(obj, value, self.name.replace("_", " "))


class ClassList(traitlets.List):
    """A list of distinct class indices."""

    def validate(self, obj, value):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{self.name} must be a list of class indices, got {value!r}")
        return list(dict.fromkeys(class_index(obj, v, "pinned class") for v in value))


class Fraction(traitlets.Float):
    """A number in 0..1."""

    def __init__(self, default=0.0, name: str = "", meaning: str = "", **kwargs):
        self._label, self._meaning = name, meaning
        super().__init__(default, **kwargs)

    def validate(self, obj, value):
        label = self._label or self.name
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{label} must be a number in 0..1, got {value!r}") from None
        if isinstance(value, bool) or not 0.0 <= number <= 1.0:
            raise InputError(f"{label} must be in 0..1 ({self._meaning}), got {number}")
        return number


class Choice(traitlets.Unicode):
    """One of a fixed set of names."""

    def __init__(self, default, choices, **kwargs):
        self.choices = tuple(choices)
        super().__init__(default, **kwargs)

    def validate(self, obj, value):
        if value not in self.choices:
            raise InputError(f"unknown {self.name.replace('_', ' ')} {value!r}: choose one of "
                             f"{', '.join(map(str, self.choices))}")
        return value


class MethodName(traitlets.Unicode):
    def validate(self, obj, value):
        if not isinstance(value, str):
            raise InputError(f"method must be a name such as 'integrated_gradients', got {value!r}")
        methods.spec(value)  # raises with the list of methods
        return value


class MethodParams(traitlets.Dict):
    """The parameters set for the current method, validated against its spec."""

    def validate(self, obj, value):
        if not isinstance(value, dict):
            raise InputError(f"params must be a dict of the method's parameters, got {value!r}")
        methods.spec(obj.method).resolve(dict(value))
        return dict(value)


class Baseline(traitlets.Any):
    """A baseline name, ``counterfactual:B`` (or ``counterfactual:B:method``), or an array
    of the image's shape."""

    def validate(self, obj, value):
        if isinstance(value, str):
            if value in BASELINES:
                return value
            parts = value.split(":")
            if parts[0] == "counterfactual" and len(parts) in (2, 3) and parts[1].isdigit():
                class_index(obj, int(parts[1]), "counterfactual class")
                return value
            raise InputError(f"unknown baseline {value!r}: choose one of {', '.join(BASELINES)}, "
                             "'counterfactual:B' for a class B, or pass an array of the image's "
                             "shape")
        array = np.asarray(value, dtype=np.float32)
        shape = tuple(obj.image_shape)
        if array.shape not in (shape, shape[1:]) or not np.isfinite(array).all():
            raise InputError(f"the baseline array has shape {array.shape} but the image has "
                             f"{shape}: pass finite values in the image's shape")
        return array.reshape(shape)
