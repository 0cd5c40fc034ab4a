"""What hook-based methods need from a real architecture, found by one traced forward pass.

DeepLift, DeepSHAP, guided backprop and LRP change the backward pass of individual layers
through hooks. Real architectures break that in four ways: in-place activations
(``ReLU(inplace=True)``), one activation module called several times per forward pass
(ResNet's ``BasicBlock.relu``), non-linear tensor operations outside any layer (``F.relu`` in
``forward``, a gate ``x * scale``, attention, and for LRP the residual addition) and
``torch.compile``'s wrapper, whose inner layers hooks cannot reach.

``trace`` runs the model once under a ``TorchFunctionMode`` and records how often each layer
is called and which tensor operations on input-derived tensors run where; it is cached per
model and input shape. ``prepared_copy`` returns the copy the methods hook: compiled
modules unwrapped, activations out of place, each reused layer split into one copy per call
(``PerUse``), and on request every layer's output cloned (``CloneOutput``, for shap's full
backward hooks) and overlapping max-pools made non-overlapping (``WindowTiles``, for the
DeepLift max-pool rule). ``deeplift_problem``, ``deep_shap_problem``, ``guided_problem`` and
``lrp_problem`` read the trace and return None or the precise reason. The user's model is
never modified: the trace hooks a copy of the module tree that shares the weights, and
these methods hook a full copy.

>>> import torch
>>> from torch import nn
>>> from xai_widgets.adapter import ModelAdapter
>>> class Block(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.conv, self.relu = nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(inplace=True)
...     def forward(self, x):
...         return self.relu(self.relu(self.conv(x)) + x)
>>> adapter = ModelAdapter(nn.Sequential(Block(), nn.Flatten(), nn.Linear(64, 2)))
>>> t = trace(adapter, torch.rand(1, 1, 8, 8))
>>> t.uses["model.0.relu"]
2
>>> print(lrp_problem(t))  # doctest: +ELLIPSIS
LRP here has no rule for the residual addition in 0 (Block): ...
>>> type(prepared_copy(adapter, torch.rand(1, 1, 8, 8)).model[0].relu).__name__
'PerUse'
"""

from __future__ import annotations

import copy
import threading
import types
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from xai_widgets.errors import InputError

# -- tensor operations, by how a propagation rule sees them ---------------------------------
# Move or copy values only: relevance and multipliers pass through them unchanged.
SHAPE_OPS = frozenset("""
view view_as reshape reshape_as flatten unflatten permute transpose t contiguous squeeze
unsqueeze expand expand_as repeat getitem select narrow split split_with_sizes chunk unbind
clone to float double half bfloat16 type type_as cat concat concatenate stack hstack vstack
flip roll movedim moveaxis swapaxes swapdims identity dropout dropout1d dropout2d dropout3d
alpha_dropout feature_alpha_dropout detach assert
""".split())
# Linear in all their input-derived operands together.
ADDITIVE_OPS = frozenset("""
add sub rsub neg sum mean avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d
adaptive_avg_pool2d adaptive_avg_pool3d pad constant_pad_nd interpolate upsample
upsample_nearest upsample_bilinear pixel_shuffle pixel_unshuffle cumsum
""".split())
# Linear in one input-derived operand (the other a weight or a constant), else a product.
PRODUCT_OPS = frozenset("""
mul multiply matmul mm bmm einsum linear bilinear conv1d conv2d conv3d conv_transpose1d
conv_transpose2d conv_transpose3d batch_norm addmm baddbmm tensordot outer
""".split())
DIVISION_OPS = frozenset("div divide true_divide truediv".split())  # linear in the numerator
ATTENTION_OPS = frozenset("scaled_dot_product_attention multi_head_attention_forward".split())
ACTIVATION_OPS = frozenset("""
relu relu6 leaky_relu elu selu celu gelu silu mish sigmoid tanh hardtanh hardswish
hardsigmoid softplus softsign softmax log_softmax threshold prelu rrelu glu logsigmoid
""".split())

# The layers shap's DeepExplainer gives a non-linear rule (its ``op_handler``), by class name.
SHAP_NONLINEAR = frozenset("""
ReLU ELU LeakyReLU Sigmoid Tanh Softplus Softmax SELU GELU MaxPool1d MaxPool2d MaxPool3d
""".split())


def base_name(func: Callable) -> str:
    """``torch.Tensor.__iadd__`` → ``add``, ``Tensor.relu_`` → ``relu``, ``F.gelu`` → ``gelu``."""
    name = getattr(func, "__name__", type(func).__name__)
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith(("i", "r")) and name[1:] in ("add", "sub", "mul", "truediv", "div",
                                                      "matmul", "pow", "and", "or"):
            name = ("r" if name[0] == "r" and name[1:] == "sub" else "") + name[1:]
    name = name.rstrip("_")
    return {"_assert": "assert"}.get(name, name)


@dataclass(frozen=True)
class Op:
    """One kind of tensor operation on input-derived tensors, where it ran."""

    name: str  # base name: add, relu, layer_norm, ...
    module: str  # qualified name of the innermost module running it ('' = the top forward)
    module_type: type
    leaf: bool  # that module has no submodules (a layer)
    derived: int  # how many operands depend on the input
    first_derived: bool = True  # the first operand is one of them

    @property
    def linear(self) -> bool:
        if self.name in SHAPE_OPS or self.name in ADDITIVE_OPS:
            return True
        if self.name in PRODUCT_OPS:
            return self.derived <= 1
        if self.name in DIVISION_OPS:
            return self.derived == 1 and self.first_derived
        return False

    def where(self) -> str:
        name = display_name(self.module)
        return f"{name} ({self.module_type.__name__})" if name else "the model's forward"

    def what(self) -> str:
        """The operation in words, for a reason."""
        if self.name in ("add", "sub", "rsub") and self.derived >= 2:
            return "the residual addition"
        if self.name in ATTENTION_OPS:
            return f"attention ({self.name})"
        if (self.name in PRODUCT_OPS or self.name in DIVISION_OPS) and self.derived >= 2:
            return f"the product of two activations ({self.name}, e.g. a gate or attention)"
        if self.leaf:
            kind = self.module_type.__name__
            return kind if kind.lower() == self.name.replace("_", "") else f"{kind} ({self.name})"
        if self.name in ACTIVATION_OPS:
            return f"the functional {self.name} (torch.{self.name} / F.{self.name} in forward)"
        return f"the operation {self.name}"


@dataclass
class Trace:
    """One forward pass: calls per layer (leaf module) and the operations on input-derived
    tensors, each kind once with its count. Names are those of ``hookable(adapter)``."""

    uses: dict[str, int] = field(default_factory=dict)
    ops: dict[Op, int] = field(default_factory=dict)
    types: dict[str, type] = field(default_factory=dict)


def display_name(name: str) -> str:
    """A module name as the user knows it: without the adapter's ``model.`` prefix."""
    if name == "model":
        return ""
    return name.removeprefix("model.")


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` is ``torch.compile``'s wrapper (an ``OptimizedModule``)."""
    return type(module).__name__ == "OptimizedModule" and isinstance(
        getattr(module, "_orig_mod", None), nn.Module)


def unwrap(module: nn.Module) -> nn.Module:
    while is_compiled(module):
        module = module._orig_mod
    return module


def unwrap_children(model: nn.Module) -> nn.Module:
    """Replace every compiled submodule of ``model`` (a copy) by its original module."""
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if child is not None and is_compiled(child):
                parent._modules[name] = unwrap(child)
    return model


def hookable(adapter) -> nn.Module:
    """The adapter's logits module with a compiled model unwrapped: the same layers, the
    same parameters, and hooks on them take effect."""
    module = adapter.forward_module
    inner = getattr(module, "model", None)
    if not isinstance(inner, nn.Module) or not is_compiled(inner):
        return module
    wrapper = copy.copy(module)  # a shallow copy with its own module and hook dictionaries
    for key, value in list(vars(wrapper).items()):
        if isinstance(value, dict):
            vars(wrapper)[key] = type(value)(value)
    wrapper._modules["model"] = unwrap(inner)
    return wrapper


def shallow_copy(module: nn.Module) -> nn.Module:
    """A copy of the module tree that shares the parameters and buffers: its own hooks and
    training flags (a trace never touches the user's modules, which another thread may be
    running), no copy of the weights."""
    memo = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
    return copy.deepcopy(module, memo)


def plain_copy(adapter) -> nn.Module:
    """A deep copy of the logits module, compiled parts unwrapped, in eval mode: for
    libraries that set state on the model (shap calls ``zero_grad`` and ``eval``)."""
    return unwrap_children(copy.deepcopy(hookable(adapter))).eval()


# -- the trace ------------------------------------------------------------------------------
def _tensors(value: Any, out: list) -> list:
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _tensors(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            _tensors(item, out)
    return out


class _Recorder(TorchFunctionMode):
    """Records operations with an input-derived operand, attributed to the innermost module."""

    def __init__(self, tracer: _Tracer):
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.tracer.record(func, args, kwargs, out)
        return out


class _Tracer:
    def __init__(self, model: nn.Module):
        self.names = {id(m): name for name, m in model.named_modules(remove_duplicate=False)}
        self.modules = {id(m): m for m in model.modules()}
        self.stack: list[nn.Module] = []
        self.derived: dict[int, torch.Tensor] = {}  # id -> tensor (kept alive: ids stay unique)
        self.trace = Trace()
        self.thread = threading.get_ident()

    def mark(self, value: Any) -> None:
        for tensor in _tensors(value, []):
            self.derived[id(tensor)] = tensor

    def is_derived(self, tensor: torch.Tensor) -> bool:
        return id(tensor) in self.derived

    def record(self, func, args, kwargs, out) -> None:
        operands = _tensors(args, [])
        derived = [self.is_derived(t) for t in operands + _tensors(kwargs, [])]
        if not any(derived) or not _tensors(out, []):
            return
        self.mark(out)
        module = self.stack[-1] if self.stack else None
        name = self.names.get(id(module), "") if module is not None else ""
        op = Op(base_name(func), name, type(module) if module is not None else type(None),
                module is not None and not list(module.children()), sum(derived),
                bool(derived) and bool(operands) and derived[0])
        self.trace.ops[op] = self.trace.ops.get(op, 0) + 1

    def pre_hook(self, module, args) -> None:
        if threading.get_ident() != self.thread:
            return
        self.stack.append(module)
        if not list(module.children()):
            name = self.names[id(module)]
            self.trace.uses[name] = self.trace.uses.get(name, 0) + 1
            self.trace.types[name] = type(module)

    def post_hook(self, module, args, output) -> None:
        if threading.get_ident() != self.thread:
            return
        if self.stack and self.stack[-1] is module:
            self.stack.pop()
        if any(self.is_derived(t) for t in _tensors(args, [])):
            self.mark(output)


def run_trace(model: nn.Module, image: torch.Tensor) -> Trace:
    """Trace one forward pass of ``model`` (in eval mode, without gradients) on ``image``."""
    tracer = _Tracer(model)
    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(tracer.pre_hook))
            handles.append(module.register_forward_hook(tracer.post_hook, always_call=True))
        image = image.detach().clone()
        tracer.mark(image)
        with torch.no_grad(), _Recorder(tracer):
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    # a module reached under two names is counted under one of them (prepared_copy
    # replaces every reference to it)
    return tracer.trace


_TRACES: weakref.WeakKeyDictionary[nn.Module, OrderedDict] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_CACHE_SIZE = 16  # traces kept per model (shapes, preprocessing)


def _structure(module: nn.Module) -> tuple:
    """Names and layers: changes when the user swaps a layer. Containers count by name only
    (the adapter's wrapper, and a Sequential sliced to drop a Softmax, are new each time)."""
    return tuple((name, id(m) if not m._modules else type(m).__name__)
                 for name, m in module.named_modules())


def _preprocess_key(step: Any) -> Any:
    """A key equal for equal preprocessing: the adapter builds a new ``Normalise`` and
    ``Pipeline`` each time, so objects with a value ``repr`` are keyed by it, others by id."""
    if step is None:
        return None
    steps = getattr(step, "steps", None)
    if isinstance(steps, (list, tuple)):
        return tuple(_preprocess_key(s) for s in steps)
    if type(step).__repr__ is not object.__repr__ and not isinstance(
            step, (types.FunctionType, types.MethodType, nn.Module)):
        return type(step).__qualname__, repr(step)
    return id(step)


def guessed_shapes(adapter) -> list[tuple[int, ...]]:
    """Input shapes to try when no image is given: a size the model declares, then common ones."""
    model = unwrap(adapter.model)
    sizes: list[int] = []
    channels = [adapter.expected_channels] if adapter.expected_channels else [3, 1]
    config = getattr(model, "config", None)
    for owner in (model, config):
        for attr in ("image_size", "img_size", "input_size"):
            value = getattr(owner, attr, None)
            if isinstance(value, (tuple, list)) and value:
                value = value[-1]
            if isinstance(value, int) and 8 <= value <= 1024:
                sizes.append(value)
        count = getattr(owner, "num_channels", None)
        if isinstance(count, int) and count not in channels and adapter.preprocess is None:
            channels.insert(0, count)
    for size in (32, 28, 64, 224):  # small first: a trace costs one forward pass
        if size not in sizes:
            sizes.append(size)
    return [(1, c, s, s) for c in channels for s in sizes]


def trace(adapter, image: torch.Tensor | None = None) -> Trace | None:
    """The cached trace of the adapter's model on ``image`` (or on a guessed input shape when
    None); None when no guessed shape runs. Never raises for a model that fails to run."""
    source = hookable(adapter)
    owner = unwrap(adapter.model)
    key = (_structure(source), _preprocess_key(adapter.preprocess),
           tuple(image.shape) if image is not None else None)
    with _LOCK:
        cached = _TRACES.get(owner, {}).get(key)
    if cached is not None:
        return cached or None
    model = unwrap_children(shallow_copy(source)).eval()  # hooks and flags on a copy
    device = adapter.device
    shapes = [tuple(image.shape)] if image is not None else guessed_shapes(adapter)
    result: Trace | bool = False
    for shape in shapes:
        probe = image if image is not None else torch.rand(
            shape, generator=torch.Generator().manual_seed(0))
        try:
            result = run_trace(model, probe.to(device))
            break
        except Exception:  # noqa: BLE001 - a shape the model does not take: try the next
            continue
    with _LOCK:
        traces = _TRACES.setdefault(owner, OrderedDict())
        traces[key] = result
        while len(traces) > _CACHE_SIZE:
            traces.popitem(last=False)
    return result or None


# -- the copy methods hook ---------------------------------------------------------------------
class PerUse(nn.Module):
    """A layer called several times per forward pass, split into one copy per call: the k-th
    call of a pass runs ``copies[k]``, so each copy sees one input and one output, as
    DeepLift's and LRP's hooks require. The root's pre-hook resets the count each pass."""

    def __init__(self, module: nn.Module, uses: int):
        super().__init__()
        self.copies = nn.ModuleList([module] + [copy.deepcopy(module) for _ in range(uses - 1)])
        self.calls = 0

    def forward(self, *args, **kwargs):
        module = self.copies[self.calls % len(self.copies)]
        self.calls += 1
        return module(*args, **kwargs)


class CloneOutput(nn.Module):
    """A layer whose output is cloned: shap's full backward hooks hand out views that the
    model's own in-place operations (``out += identity``) may not modify."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        out = self.module(*args, **kwargs)
        return out.clone() if isinstance(out, torch.Tensor) else out


class WindowTiles(nn.Module):
    """The k×k windows of an overlapping max-pool laid side by side (a copy: linear), so
    that a max-pool with stride k over the tiles computes the same maxima without overlap.
    Padding takes the dtype's lowest finite value (a max-pool pads with −inf, which would
    make the rules' input differences NaN)."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        pair = nn.modules.utils._pair
        self.kernel, self.stride, self.padding = (pair(pool.kernel_size), pair(pool.stride),
                                                  pair(pool.padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        x = nn.functional.pad(x, (pw, pw, ph, ph), value=torch.finfo(x.dtype).min)
        tiles = x.unfold(2, kh, sh).unfold(3, kw, sw)  # (N, C, Ho, Wo, kh, kw)
        n, c, ho, wo = tiles.shape[:4]
        return tiles.permute(0, 1, 2, 4, 3, 5).reshape(n, c, ho * kh, wo * kw)


def split_overlapping_pools(model: nn.Module) -> None:
    """Replace each max-pool whose windows overlap (stride < kernel, as in ResNet's stem) by
    ``WindowTiles`` then a non-overlapping max-pool. The DeepLift max-pool rule scatters each
    output's share back with ``max_unpool``, which overwrites rather than adds when one input
    is the maximum of two windows; without overlap the rule is exact."""
    pair = nn.modules.utils._pair
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if not isinstance(child, nn.MaxPool2d) or child.ceil_mode or child.return_indices:
                continue
            kernel, stride = pair(child.kernel_size), pair(child.stride or child.kernel_size)
            if pair(child.dilation) != (1, 1) or all(s >= k for s, k in zip(stride, kernel)):
                continue
            parent._modules[name] = nn.Sequential(WindowTiles(child),
                                                  nn.MaxPool2d(kernel, stride=kernel))


def _reset_calls(model: nn.Module, args) -> None:
    for module in model.modules():
        if isinstance(module, PerUse):
            module.calls = 0


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Point every reference to ``old`` inside ``model`` at ``new``."""
    for parent in list(model.modules()):
        if parent is new:
            continue
        for name, child in list(parent._modules.items()):
            if child is old:
                parent._modules[name] = new


class TargetSelect(nn.Module):
    """The model's scores for the requested targets only (shap explains every output)."""

    def __init__(self, model: nn.Module, targets: list[int]):
        super().__init__()
        self.model = model
        self.targets = list(targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.targets]


def prepared_copy(adapter, image: torch.Tensor | None, clone_outputs: bool = False,
                  split_pools: bool = False) -> nn.Module:
    """A copy of the logits module for hooks: compiled modules unwrapped, eval mode,
    activations out of place, each layer called k > 1 times per pass split into k copies
    (``PerUse``); with ``clone_outputs`` every layer's output cloned and with
    ``split_pools`` overlapping max-pools made non-overlapping (for shap)."""
    model = plain_copy(adapter)
    for module in model.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    found = trace(adapter, image)
    if found is not None:
        modules = dict(model.named_modules(remove_duplicate=False))
        for name, uses in found.uses.items():
            module = modules.get(name)
            if uses > 1 and module is not None and not isinstance(module, PerUse):
                _replace(model, module, PerUse(module, uses))
        model.register_forward_pre_hook(_reset_calls)
    if split_pools:
        split_overlapping_pools(model)
    if clone_outputs:
        for parent in list(model.modules()):
            for name, child in list(parent._modules.items()):
                if child is not None and not list(child.children()) and not isinstance(
                        parent, CloneOutput):
                    parent._modules[name] = CloneOutput(child)
    return model


# -- reasons --------------------------------------------------------------------------------
def _listing(ops: list[Op], limit: int = 3) -> str:
    """'X in a (A) and 7 more places; Y in b (B)': grouped by what, first place named."""
    groups: dict[str, list[Op]] = {}
    for op in ops:
        groups.setdefault(op.what(), []).append(op)
    parts = []
    for what, members in list(groups.items())[:limit]:
        places = list(dict.fromkeys(op.where() for op in members))
        more = f" and {len(places) - 1} more place{'s' if len(places) > 2 else ''}" if len(
            places) > 1 else ""
        parts.append(f"{what} in {places[0]}{more}")
    if len(groups) > limit:
        parts.append(f"{len(groups) - limit} more kind(s) of operation")
    return "; ".join(parts)


def nonlinear_outside(found: Trace, supported: Callable[[type], bool]) -> list[Op]:
    """Non-linear operations not inside a layer that the method has a rule for."""
    return [op for op in found.ops
            if not op.linear and not (op.leaf and supported(op.module_type))]


def deeplift_problem(found: Trace | None) -> str | None:
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    if found is None:
        return None
    bad = nonlinear_outside(found, lambda t: t in SUPPORTED_NON_LINEAR)
    if not bad:
        return None
    return (f"DeepLift has no rule for {_listing(bad)}: captum would treat it as linear and "
            "the map would not sum to f(x) − f(baseline); use integrated_gradients (exact "
            "for any differentiable model) or occlusion")


def deep_shap_problem(found: Trace | None) -> str | None:
    if found is None:
        return None
    bad = nonlinear_outside(found, lambda t: t.__name__ in SHAP_NONLINEAR)
    if not bad:
        return None
    return (f"shap's DeepExplainer has no rule for {_listing(bad)} (it has rules for "
            "ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, Softmax, SELU, GELU and max-pool "
            "layers): the values would not sum to f(x) − E[f(background)]; use "
            "gradient_explainer or gradient_shap instead")


def guided_problem(found: Trace | None) -> str | None:
    from xai_widgets.methods.captum_methods import ACTIVATIONS

    if found is None:
        return None
    # a softmax (a probability head, attention) only rescales: captum passes it plainly too
    bad = [op for op in found.ops if op.name in ACTIVATION_OPS - {"softmax", "log_softmax"}
           and not (op.leaf and issubclass(op.module_type, ACTIVATIONS))]
    if not bad:
        return None
    return (f"guided backprop guides only nn.ReLU layers and this model also applies "
            f"{_listing(bad)}, whose gradients would pass unguided or unhooked; write "
            "activations as nn.ReLU modules, or use saliency / integrated_gradients")


def lrp_problem(found: Trace | None) -> str | None:
    if found is None:
        return None
    bad = [op for op in found.ops if not op.leaf and op.name not in SHAPE_OPS and not (
        op.linear and op.derived == 1 and op.name not in PRODUCT_OPS - {"mul", "multiply"})]
    if not bad:
        return None
    return (f"LRP here has no rule for {_listing(bad)}: captum's LRP propagates relevance "
            "only through layers (Conv2d, Linear, BatchNorm2d, pooling) and would pass "
            "the raw gradient through this operation, so relevance would not be conserved "
            "and the map would be wrong; use integrated_gradients, deeplift or occlusion")


def available_check(problem: Callable[[Trace | None], str | None]) -> Callable:
    """``MethodSpec.available`` from a problem function: traced on a guessed input shape;
    None when no shape is found (the method re-checks on the real image)."""

    def check(adapter) -> str | None:
        try:
            return problem(trace(adapter))
        except Exception:  # noqa: BLE001 - available() must answer, never raise
            return None

    return check


def require(task, method: str, problem: Callable[[Trace | None], str | None]) -> None:
    """Raise the reason ``method`` cannot explain this model, traced on the task's image."""
    reason = problem(trace(task.adapter, task.image))
    if reason:
        raise InputError(f"{method} cannot explain this model: {reason}")
