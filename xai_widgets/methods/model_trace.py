"""What hook-based methods need from a real architecture, found by one traced forward pass.

DeepLift, DeepSHAP, guided backprop and LRP change the backward pass of individual layers
through hooks. Real architectures break that in four ways: in-place activations
(``ReLU(inplace=True)``), one activation module called several times per forward pass
(ResNet's ``BasicBlock.relu``), non-linear tensor operations outside any layer (``F.relu`` in
``forward``, a gate ``x * scale``, attention, and for LRP the residual addition) and
``torch.compile``'s wrapper, whose inner layers hooks cannot reach.

``trace`` runs the model once under a ``TorchFunctionMode`` and records how often each layer
is called and which tensor operations on input-derived tensors run where; it is cached per
model and input shape. ``deeplift_problem``, ``deep_shap_problem``, ``guided_problem`` and
``lrp_problem`` (in ``model_checks``) read the trace and return None or the precise reason;
``model_surgery`` makes the copies the methods hook. The trace hooks a copy of the module
tree that shares the weights: the user's model is never modified.

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
>>> sorted(op.name for op in t.ops if op.name == "add")[:1]
['add']
"""


from __future__ import annotations

import copy
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

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
