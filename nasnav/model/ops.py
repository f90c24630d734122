"""Registry of candidate components per input kind (image 2-D, sequence 1-D, tabular).

Each entry is a layer class from ``nasnav.model.layers`` plus keyword arguments, so a component
can be rebuilt anywhere (the exporter writes the same constructor call into ``model.py``). Own
components (``nasnav.components``) are entries too, whose class lives in a user's file or package:
their ``source`` names that file and ``module`` the name the exported ``model.py`` imports it by.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from nasnav.errors import InvalidInput
from nasnav.model import layers
from nasnav.names import check_name

KINDS = ("image", "sequence", "tabular")
KIND_DIM = {"image": 2, "sequence": 1, "tabular": 0}


@dataclass(frozen=True)
class OpSpec:
    """How to build one component: ``cls(channels=C, dim=d, **kwargs)``."""

    name: str
    cls: type
    kwargs: dict = field(default_factory=dict)
    description: str = ""
    source: str = ""  # own component: the file defining it ("" for the built-in ones)
    module: str = ""  # own component: the module name model.py imports ``cls`` from (its copied file's stem)

    def build(self, channels: int, dim: int) -> nn.Module:
        return self.cls(channels=channels, dim=dim, **self.kwargs)

    def source_call(self, channels: int, dim: int) -> str:
        """The constructor call as Python source (for the exported model.py)."""
        args = [f"channels={channels}", f"dim={dim}"] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.cls.__name__}({', '.join(args)})"


_REGISTRY: dict[str, dict[str, OpSpec]] = {k: {} for k in KINDS}


def register(name: str, kinds: tuple[str, ...], cls: type, description: str = "", **kwargs) -> OpSpec:
    """Register a component under ``name`` (``nasnav.names``' rule) for the given input kinds."""
    return add(OpSpec(name, cls, kwargs, description), kinds)


def add(spec: OpSpec, kinds: tuple[str, ...]) -> OpSpec:
    """Register a built spec under its name (``nasnav.names``' rule) for the given input kinds."""
    name = spec.name
    check_name(name, "component name")
    for kind in kinds:  # check everything first: a failed registration leaves no trace
        if kind not in _REGISTRY:
            raise InvalidInput(f"unknown input kind '{kind}'; known: {', '.join(KINDS)}")
        if name in _REGISTRY[kind]:
            raise InvalidInput(f"component '{name}' is already registered for {kind}")
    for kind in kinds:
        _REGISTRY[kind][name] = spec
    return spec


def remove(name: str) -> None:
    """Take a component out of every kind (an own component whose file changed is loaded again)."""
    for ops in _REGISTRY.values():
        ops.pop(name, None)


def find(name: str) -> OpSpec | None:
    """The component registered under ``name`` for any kind, or None."""
    return next((ops[name] for ops in _REGISTRY.values() if name in ops), None)


def list_ops(kind: str) -> list[str]:
    """Names of the components available for an input kind, in registration order."""
    _check_kind(kind)
    return list(_REGISTRY[kind])


def catalogue(kind: str) -> list[dict]:
    """One row per component of an input kind: its name, description and where it comes from."""
    return [{"component": n, "description": s.description, "source": s.source or "built-in"}
            for n, s in _REGISTRY[kind].items()] if kind in _REGISTRY else []


def get_op(name: str, kind: str) -> OpSpec:
    _check_kind(kind)
    if name not in _REGISTRY[kind]:
        raise InvalidInput(
            f"unknown component '{name}' for {kind} data; known: {', '.join(_REGISTRY[kind])}"
        )
    return _REGISTRY[kind][name]


def create_op(name: str, kind: str, channels: int) -> nn.Module:
    """The one way to build a component."""
    return get_op(name, kind).build(channels, KIND_DIM[kind])


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise InvalidInput(f"unknown input kind '{kind}'; known: {', '.join(KINDS)}")


_CONV = ("image", "sequence")
register("conv1x1", _CONV, layers.ConvBNReLU, "1-wide convolution, BN, ReLU", kernel=1)
register("conv3x3", _CONV, layers.ConvBNReLU, "3-wide convolution, BN, ReLU", kernel=3)
register("conv5x5", _CONV, layers.ConvBNReLU, "5-wide convolution, BN, ReLU", kernel=5)
register("sepconv3x3", _CONV, layers.SepConv, "depthwise-separable 3-wide convolution", kernel=3)
register("sepconv5x5", _CONV, layers.SepConv, "depthwise-separable 5-wide convolution", kernel=5)
register("dilconv3x3", _CONV, layers.ConvBNReLU, "3-wide convolution with dilation 2", kernel=3, dilation=2)
register("maxpool3x3", _CONV, layers.Pool, "3-wide max pooling, stride 1", mode="max")
register("avgpool3x3", _CONV, layers.Pool, "3-wide average pooling, stride 1", mode="avg")
register("skip", KINDS, layers.Skip, "identity")

_TAB = ("tabular",)
register("linear", _TAB, layers.Dense, "Linear(C, C), ReLU, BN")
register("linear_wide", _TAB, layers.Dense, "Linear(C, 2C), ReLU, Linear(2C, C), BN", mult=2.0)
register("linear_narrow", _TAB, layers.Dense, "bottleneck Linear(C, C/2), ReLU, Linear(C/2, C)", mult=0.5)
register("linear_gelu", _TAB, layers.Dense, "Linear(C, C), GELU, BN", act="gelu")
register("linear_tanh", _TAB, layers.Dense, "Linear(C, C), tanh, BN", act="tanh")
register("linear_dropout", _TAB, layers.Dense, "Linear(C, C), ReLU, BN, dropout 0.2", dropout=0.2)
