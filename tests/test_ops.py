"""nasnav.model.ops registry and nasnav.model.layers building blocks, parametrized over the whole registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from nasnav.model import layers, ops
from nasnav.model.ops import KIND_DIM, KINDS, create_op, get_op, list_ops, register

pytestmark = pytest.mark.usefixtures("single_thread")

SHAPES = {"image": (4, 6, 7, 5), "sequence": (4, 6, 11), "tabular": (5, 6)}
ALL_OPS = [(kind, name) for kind in KINDS for name in list_ops(kind)]


def test_registry_not_empty_and_kinds():
    assert set(KINDS) == {"image", "sequence", "tabular"}
    for kind in KINDS:
        names = list_ops(kind)
        assert len(names) >= 2
        assert len(set(names)) == len(names)
        assert "skip" in names
    # conv components exist for images and sequences, dense ones for tabular data only
    assert "conv3x3" in list_ops("image") and "conv3x3" in list_ops("sequence")
    assert "conv3x3" not in list_ops("tabular")
    assert "linear" in list_ops("tabular") and "linear" not in list_ops("image")


def test_list_ops_returns_a_copy():
    names = list_ops("image")
    names.append("bogus")
    assert "bogus" not in list_ops("image")


@pytest.mark.parametrize("kind, name", ALL_OPS, ids=[f"{k}-{n}" for k, n in ALL_OPS])
def test_component_shape_finite_and_gradients(kind, name):
    torch.manual_seed(0)
    op = create_op(name, kind, channels=6)
    assert isinstance(op, nn.Module)
    op.train()
    x = torch.randn(SHAPES[kind], requires_grad=True)
    out = op(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    # a random projection so BatchNorm's shift-invariance cannot zero the gradients
    w = torch.randn(out.shape)
    (out * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in op.named_parameters():
        assert p.grad is not None, f"{kind}/{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{kind}/{name}: {pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{kind}/{name}: {pname} has an all-zero gradient"
    # eval mode too (running statistics), same shape, finite
    op.eval()
    with torch.no_grad():
        out = op(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("kind, name", ALL_OPS, ids=[f"{k}-{n}" for k, n in ALL_OPS])
def test_component_source_call_rebuilds_same_module(kind, name):
    """The constructor call written into exported model.py builds the same structure."""
    spec = get_op(name, kind)
    src = spec.source_call(6, KIND_DIM[kind])
    rebuilt = eval(src, {k: getattr(layers, k) for k in dir(layers)})
    built = spec.build(6, KIND_DIM[kind])
    assert type(rebuilt) is type(built)
    assert repr(rebuilt) == repr(built)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_component_lists_valid_names(kind):
    with pytest.raises(ValueError) as e:
        create_op("conv9x9", kind, channels=4)
    msg = str(e.value)
    assert "'conv9x9'" in msg and kind in msg
    for name in list_ops(kind):
        assert name in msg


def test_component_of_other_kind_is_unknown():
    with pytest.raises(ValueError, match="linear"):
        get_op("conv3x3", "tabular")
    with pytest.raises(ValueError, match="conv3x3"):
        get_op("linear", "image")


def test_unknown_kind():
    for fn in (lambda: list_ops("video"), lambda: get_op("skip", "video"), lambda: create_op("skip", "video", 4)):
        with pytest.raises(ValueError, match=r"unknown input kind 'video'; known: image, sequence, tabular"):
            fn()


def test_register_duplicate_refused():
    before = {k: list_ops(k) for k in KINDS}
    with pytest.raises(ValueError, match="already registered"):
        register("conv3x3", ("image",), layers.ConvBNReLU, kernel=3)
    assert {k: list_ops(k) for k in KINDS} == before


def test_register_unknown_kind_is_atomic():
    name = "zz_test_op"
    try:
        with pytest.raises(ValueError, match="unknown input kind"):
            register(name, ("image", "video"), layers.Skip)
        assert name not in list_ops("image")
    finally:
        ops._REGISTRY["image"].pop(name, None)


def test_skip_and_pools_are_parameter_free():
    for kind in ("image", "sequence"):
        for name in ("skip", "maxpool3x3", "avgpool3x3"):
            assert sum(p.numel() for p in create_op(name, kind, 5).parameters()) == 0
    x = torch.randn(2, 3, 4, 4)
    assert create_op("skip", "image", 3)(x) is x


def test_avgpool_excludes_padding():
    """count_include_pad=False: a constant input stays constant, borders included."""
    for kind, shape in (("image", (1, 2, 5, 5)), ("sequence", (1, 2, 7))):
        x = torch.full(shape, 3.0)
        assert torch.allclose(create_op("avgpool3x3", kind, 2)(x), x)


def test_dense_width_and_dropout():
    wide = create_op("linear_wide", "tabular", 8)
    narrow = create_op("linear_narrow", "tabular", 8)
    linears = [m for m in wide.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [16, 8]
    assert [m.out_features for m in narrow.modules() if isinstance(m, nn.Linear)] == [4, 8]
    assert any(isinstance(m, nn.Dropout) for m in create_op("linear_dropout", "tabular", 8).modules())
    assert not any(isinstance(m, nn.Dropout) for m in create_op("linear", "tabular", 8).modules())


@pytest.mark.parametrize("dim, shape", [(2, (3, 2, 8, 8)), (1, (3, 2, 12)), (0, (3, 2))])
def test_stem_transition_head_shapes(dim, shape):
    stem = layers.Stem(2, 5, dim)
    h = stem(torch.randn(shape))
    assert h.shape == (3, 5, *shape[2:])
    stride = 1 if dim == 0 else 2
    t = layers.Transition(5, 7, dim, stride)
    h2 = t(h)
    expected_spatial = tuple((s + 1) // 2 for s in shape[2:])
    assert h2.shape == (3, 7, *expected_spatial)
    out = layers.Head(7, 4, dim)(h2)
    assert out.shape == (3, 4)


def test_chosen_stage_sums_components():
    a, b = layers.Skip(3, 2), layers.Pool(3, 2, mode="max")
    stage = layers.ChosenStage(nn.Identity(), [a, b])
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(stage(x), x + b(x))


def test_layers_imports_nothing_but_torch():
    path = Path(layers.__file__)
    tree = ast.parse(path.read_text())
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in layers.py"
            roots.append((node.module or "").split(".")[0])
    assert roots, "expected at least `import torch`"
    assert set(roots) == {"torch"}, roots
    # and no dynamic imports either
    src = path.read_text()
    assert "__import__" not in src and "importlib" not in src


def test_layers_source_runs_standalone():
    """The exporter copies layers.py verbatim: its source must execute in a bare namespace."""
    ns: dict = {}
    exec(compile(Path(layers.__file__).read_text(), "layers_copy.py", "exec"), ns)
    net = ns["ConvBNReLU"](channels=3, dim=2, kernel=3)
    assert net(torch.randn(2, 3, 4, 4)).shape == (2, 3, 4, 4)
