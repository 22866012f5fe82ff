"""The network as a graph the exact tiler can evaluate region by region (``torch.fx`` trace).

Private to :mod:`baselines.exact_tiling`: convolutions (stride 1, odd kernels, padding that keeps
the size, a preceding pad module fused into the conv's border mode), InstanceNorms that use the
image's own statistics, point-wise modules and arithmetic. Anything else is
:class:`NotStreamable`, naming the layer.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, fx, nn

_POINTWISE_MODULES = (
    nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh,
    nn.Sigmoid, nn.Hardtanh, nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout2d,
)
_BINARY_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg,
    torch.add, torch.sub, torch.mul, torch.div, torch.neg,
}
_PAD_MODES = {nn.ZeroPad2d: "zeros", nn.ConstantPad2d: "zeros", nn.ReflectionPad2d: "reflect",
              nn.ReplicationPad2d: "replicate"}


class NotStreamable(ValueError):
    """The network holds a layer the streaming executor cannot run exactly tile by tile."""


# --------------------------------------------------------------------------- the traced graph
@dataclass(eq=False)
class Node:
    """A map of the network: what it is computed from, and its store once materialised."""

    inputs: list[Node] = field(default_factory=list)
    name: str = ""
    store: Any = None  # the _Store holding the map once it is materialised


@dataclass(eq=False)
class Input(Node):
    """The network's input image."""


@dataclass(eq=False)
class Pad(Node):
    """A pad module; only ever fused into the conv that reads it."""

    amount: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, right, top, bottom
    mode: str = "zeros"


@dataclass(eq=False)
class Conv(Node):
    """A size-keeping conv that pads at the true image border with ``mode``."""

    module: nn.Conv2d | None = None
    mode: str = "zeros"
    radius: tuple[int, int] = (0, 0)  # (y, x)


@dataclass(eq=False)
class Norm(Node):
    """An InstanceNorm with the image's own statistics, accumulated over all tiles."""

    module: nn.Module | None = None
    mean: Tensor | None = None  # N x C x 1 x 1 float32, set when the input is materialised
    rstd: Tensor | None = None


@dataclass(eq=False)
class Pointwise(Node):
    """An element-wise function of its inputs (activations, arithmetic, eval-mode norms)."""

    fn: Callable[..., Tensor] | None = None


def conv_node(arg: Node, module: nn.Conv2d, name: str) -> Conv:
    """The node of ``module`` applied to ``arg`` (a preceding pad folded in); NotStreamable otherwise."""
    kh, kw = module.kernel_size
    if module.stride != (1, 1) or module.dilation != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
        raise NotStreamable(f"layer {name}: only stride-1, undilated, odd-kernel convolutions stream "
                            f"(got kernel {module.kernel_size}, stride {module.stride}, dilation {module.dilation})")
    radius = (kh // 2, kw // 2)
    if isinstance(arg, Pad):
        if module.padding not in ((0, 0), "valid") or arg.amount != (radius[1], radius[1], radius[0], radius[0]):
            raise NotStreamable(f"layer {name}: padding {arg.amount} before a {kh}x{kw} conv changes the size")
        return Conv([arg.inputs[0]], name, module=module, mode=arg.mode, radius=radius)
    padding = radius if module.padding == "same" else module.padding
    if tuple(padding) != radius:
        raise NotStreamable(f"layer {name}: conv padding {module.padding} changes the map size")
    if module.padding_mode not in ("zeros", "reflect", "replicate"):
        raise NotStreamable(f"layer {name}: padding mode {module.padding_mode!r} does not stream")
    return Conv([arg], name, module=module, mode=module.padding_mode, radius=radius)


def uses_image_statistics(module: nn.Module) -> bool:
    """True for a norm that normalises with the image's own statistics (not stored running ones)."""
    if isinstance(module, nn.InstanceNorm2d):
        return module.training or not module.track_running_stats or module.running_mean is None
    return isinstance(module, nn.GroupNorm)


def trace(network: nn.Module) -> tuple[Input, Node, list[Node]]:
    """The network as a graph of streamable nodes (topological order); NotStreamable otherwise."""
    try:
        graph = fx.symbolic_trace(network).graph
    except Exception as exc:  # noqa: BLE001 - any tracing failure means "not streamable"
        raise NotStreamable(f"{type(network).__name__} cannot be traced: {exc}") from None
    modules = dict(network.named_modules())
    env: dict[Any, Any] = {}
    order: list[Node] = []
    source: Input | None = None
    output: Node | None = None

    def node_of(value: Any, name: str) -> Node:
        node = env[value]
        if isinstance(node, Pad):
            raise NotStreamable(f"layer {name}: a padding whose result is not read by a convolution")
        return node

    for n in graph.nodes:
        if n.op == "placeholder":
            if source is not None:
                raise NotStreamable(f"{type(network).__name__} takes more than one input")
            source = env[n] = Input(name=n.name)
            continue
        if n.op == "output":
            output = node_of(n.args[0], "output") if isinstance(n.args[0], fx.Node) else None
            continue
        if n.op == "call_module":
            module = modules[n.target]
            if len(n.args) != 1 or n.kwargs or not isinstance(n.args[0], fx.Node):
                raise NotStreamable(f"layer {n.target}: called with {len(n.args)} arguments")
            if type(module) in _PAD_MODES:
                if isinstance(module, nn.ConstantPad2d) and module.value != 0:
                    raise NotStreamable(f"layer {n.target}: constant padding {module.value} is not zero padding")
                pad = module.padding if isinstance(module.padding, tuple) else (module.padding,) * 4
                env[n] = Pad([node_of(n.args[0], n.target)], n.target, amount=tuple(pad),
                              mode=_PAD_MODES[type(module)])
                continue
            arg = env[n.args[0]]
            if isinstance(module, nn.Conv2d):
                node = conv_node(arg, module, n.target)
            elif isinstance(module, nn.InstanceNorm2d) and uses_image_statistics(module):
                node = Norm([node_of(n.args[0], n.target)], n.target, module=module)
            elif isinstance(module, (nn.InstanceNorm2d, nn.BatchNorm2d)) and not module.training:
                node = Pointwise([node_of(n.args[0], n.target)], n.target, fn=module)
            elif isinstance(module, _POINTWISE_MODULES):
                local = copy.copy(module)
                if hasattr(local, "inplace"):
                    local.inplace = False  # a tile may be read by several layers: never overwrite it
                node = Pointwise([node_of(n.args[0], n.target)], n.target, fn=local)
            else:
                raise NotStreamable(f"layer {n.target}: {type(module).__name__} does not stream")
        elif n.op == "call_function" and n.target in _BINARY_FUNCTIONS and not n.kwargs:
            parents = [node_of(a, n.name) for a in n.args if isinstance(a, fx.Node)]
            if not parents or any(not isinstance(a, (fx.Node, int, float)) for a in n.args):
                raise NotStreamable(f"operation {n.name}: arguments {n.args} do not stream")
            node = Pointwise(parents, n.name, fn=_bind(n.target, n.args, fx.Node))
        else:
            raise NotStreamable(f"operation {n.name} ({n.op} {n.target}) does not stream")
        env[n] = node
        order.append(node)
    if source is None or output is None:
        raise NotStreamable(f"{type(network).__name__} has no tensor input or output")
    return source, output, order


def _bind(fn: Callable[..., Tensor], args: tuple, node_type: type) -> Callable[..., Tensor]:
    """``fn`` with its constant arguments fixed and its tensor arguments taken in order."""
    def call(*tensors: Tensor) -> Tensor:
        it = iter(tensors)
        return fn(*[next(it) if isinstance(a, node_type) else a for a in args])
    return call
