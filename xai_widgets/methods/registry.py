"""The method registry: every attribution method as a ``MethodSpec`` with typed parameters.

The widget builds its controls from these specs; it holds no method knowledge itself.

>>> from xai_widgets import methods
>>> spec = methods.spec("occlusion")
>>> [(p.name, p.default) for p in spec.params][:2]
[('window', 5), ('stride', 2)]
>>> spec.resolve({"window": 7})["window"]
7
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from xai_widgets.errors import Cancelled, InputError
from xai_widgets.methods.model_surgery import forget_prepared


@dataclass(frozen=True)
class Param:
    """One method parameter: its type (``int``, ``float``, ``bool``, ``str``, ``choice``), default,
    range (``low``..``high``, ``step``) or ``choices``, and a label for the control."""

    name: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()
    label: str = ""
    help: str = ""
    scaled: Callable[[tuple], Any] | None = None  # the default for an image of (H, W)
    hidden_when: tuple = ()  # (other parameter, value): the control is moot, hide it
    shown_when: tuple = ()  # (other parameter, value): the only case the control matters

    def default_for(self, size: tuple | None = None) -> Any:
        """The default for an image of ``size`` (H, W): windows, segment counts and cells
        grow with the image, so a 224 px photo gets what a 28 px digit gets, scaled."""
        return self.scaled(tuple(size)) if self.scaled is not None and size else self.default

    def hidden(self, values: dict) -> bool:
        """Whether the parameter is moot given the other values (its control is hidden)."""
        if self.hidden_when and values.get(self.hidden_when[0]) == self.hidden_when[1]:
            return True
        return bool(self.shown_when) and values.get(self.shown_when[0]) != self.shown_when[1]

    def validate(self, value: Any) -> Any:
        if self.kind == "choice":
            if value not in self.choices:
                raise InputError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.kind == "str":
            if not isinstance(value, str) or not value:
                raise InputError(f"{self.name} must be a non-empty string, got {value!r}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InputError(f"{self.name} must be True or False, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                self.kind == "int" and not float(value).is_integer()):
            kind = "an integer" if self.kind == "int" else "a number"
            raise InputError(f"{self.name} must be {kind}"
                             f" in {self.low}..{self.high}, got {value!r}")
        value = int(value) if self.kind == "int" else float(value)
        if ((self.low is not None and value < self.low)
                or (self.high is not None and value > self.high)):
            raise InputError(f"{self.name} must be in {self.low}..{self.high}, got {value}")
        return value

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "default": self.default, "low": self.low,
                "high": self.high, "step": self.step, "choices": list(self.choices),
                "label": self.label or self.name.replace("_", " "), "help": self.help,
                "hidden_when": list(self.hidden_when), "shown_when": list(self.shown_when)}


@dataclass
class Task:
    """Everything one computation needs, already normalised by the engine.

    ``image`` and ``baseline`` are (1,C,H,W) on the model's device; ``data`` is (N,C,H,W) or
    None. ``report(done, total)`` reports progress; ``check()`` raises ``Cancelled`` once a
    newer request supersedes this one. ``on_round(raw, done, total, unit)``, when set, takes
    each round's interim maps of a progressive method (``done`` of ``total`` steps, samples
    or windows); methods then order their work so that every round ends with a usable map.
    """

    adapter: Any
    image: torch.Tensor
    targets: list[int]
    params: dict[str, Any]
    baseline: torch.Tensor | None = None
    data: torch.Tensor | None = None
    progress: Callable[[int, int], None] | None = None
    cancelled: Callable[[], bool] | None = None
    notes: list[str] = field(default_factory=list)
    on_round: Callable[[torch.Tensor, int, int, str], None] | None = None
    per_pass: int | None = None  # images one forward+backward pass may hold (memory budget)

    @property
    def progressive(self) -> bool:
        """Whether someone watches interim rounds (else the work runs in one-shot order)."""
        return self.on_round is not None

    def deliver(self, raw: torch.Tensor, done: int, total: int, unit: str) -> None:
        """Hand an interim result (``done`` of ``total`` ``unit``) to ``on_round``; the last
        round is the method's return value, not delivered here."""
        if self.on_round is not None and done < total:
            self.check()
            self.on_round(raw.detach(), done, total, unit)

    def pass_size(self, most: int) -> int:
        """Images per pass: ``most`` (a method's batch size), fewer when the memory budget's
        ``per_pass`` is smaller; at least one."""
        return max(1, min(most, self.per_pass or most))

    def report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled()

    @property
    def batch(self) -> torch.Tensor:
        """The image repeated once per target: all targets in one batched pass."""
        return self.image.expand(len(self.targets), *self.image.shape[1:]).contiguous()

    @property
    def target_tensor(self) -> torch.Tensor:
        return torch.tensor(self.targets, dtype=torch.long, device=self.image.device)

    @property
    def baseline_batch(self) -> torch.Tensor:
        return self.baseline.expand(len(self.targets), *self.baseline.shape[1:]).contiguous()


@dataclass(frozen=True)
class MethodSpec:
    """An attribution method: ``compute(task) -> (n_targets, C, H, W)`` tensor plus metadata.

    ``spatial`` methods (Grad-CAM, occlusion) produce one map repeated over channels, so the
    summary map is channel 0 rather than the channel sum. ``complete`` methods' maps sum to
    f(image) − f(baseline) per target, which the engine checks. ``superpixels`` methods
    explain segments (the widget shows the segment view). ``available(adapter)`` returns None
    or the reason the method cannot explain this model.
    """

    name: str
    label: str
    backend: str
    description: str
    compute: Callable[[Task], torch.Tensor]
    params: tuple[Param, ...] = ()
    needs_baseline: bool = False
    uses_data: bool = False
    stochastic: bool = False
    spatial: bool = False
    complete: bool = False
    superpixels: bool = False
    shares_passes: bool = False  # one forward pass serves every target (perturbation methods)
    # batches its own passes to ``task.per_pass`` images for any number of targets
    streams: bool | Callable[[dict], bool] = False
    available: Callable[[Any], str | None] = lambda adapter: None

    def streams_with(self, params: dict) -> bool:
        return self.streams(params) if callable(self.streams) else bool(self.streams)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise InputError(f"{self.name} has no parameter {name!r}; its parameters: "
                         f"{[p.name for p in self.params] or 'none'}")

    def defaults(self, size: tuple | None = None) -> dict[str, Any]:
        """Every parameter's default; for an image of ``size`` (H, W), the effective ones."""
        return {p.name: p.default_for(size) for p in self.params}

    def resolve(self, params: dict[str, Any], size: tuple | None = None) -> dict[str, Any]:
        """Fill in defaults (for an image of ``size``) and validate; unknown names are an
        error that lists valid ones."""
        out = self.defaults(size)
        for name, value in params.items():
            out[name] = self.param(name).validate(value)
        return out

    def as_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "backend": self.backend,
                "description": self.description, "needs_baseline": self.needs_baseline,
                "uses_data": self.uses_data, "params": [p.as_dict() for p in self.params]}


_REGISTRY: dict[str, MethodSpec] = {}


def guarded(spec: MethodSpec) -> Callable[[Task], torch.Tensor]:
    """``spec.compute`` with any library exception (captum, shap, lime, torch) turned into an
    InputError that names the method, quotes the library and says what to use instead;
    InputError and Cancelled pass unchanged."""
    compute = spec.compute

    @functools.wraps(compute)
    def run(task: Task) -> torch.Tensor:
        try:
            return compute(task)
        except (InputError, Cancelled):
            forget_prepared(task.adapter)
            raise
        except Exception as error:  # the boundary users see
            forget_prepared(task.adapter)
            message = " ".join(str(error).split())
            if len(message) > 400:
                message = message[:400] + " …"
            raise InputError(
                f"{spec.name} failed on this model: {type(error).__name__} from "
                f"{spec.backend}: {message or '(no message)'}. {spec.label} cannot handle "
                "something in this architecture or input; integrated_gradients, saliency and "
                "occlusion need only forward and backward passes and work on any "
                "differentiable model") from error

    return run


def register(spec: MethodSpec) -> MethodSpec:
    spec = dataclasses.replace(spec, compute=guarded(spec))
    _REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    """Registered method names, in registration order."""
    return list(_REGISTRY)


def spec(name: str) -> MethodSpec:
    """The ``MethodSpec`` of a method by name."""
    if name not in _REGISTRY:
        raise InputError(f"unknown method {name!r}; available methods: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def available(model: Any) -> dict[str, str | None]:
    """``{name: None}`` for each method usable on ``model``, else the reason it is not."""
    from xai_widgets.adapter import ModelAdapter

    adapter = model if isinstance(model, ModelAdapter) else ModelAdapter(model)
    return {name: s.available(adapter) for name, s in _REGISTRY.items()}
