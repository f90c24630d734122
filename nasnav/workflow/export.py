"""Export a retrained network for people who will use it without nasnav.

``final/<arch-key>/`` gains:

- ``model.py``: self-contained plain PyTorch (the source of ``nasnav/layers.py``, a generated
  ``build()``, the input normalisation as ``preprocess(x)``, ``load(weights)``); running it checks
  itself against ``example.pt``. Values from the run (names, labels, statistics) enter it only through
  ``repr()``, and the text is checked with ``ast`` (``source_check``) before it is written or imported;
- ``example.pt``: a few raw test inputs and the logits the network gives for them;
- ``model.onnx`` (``torch.onnx.export(..., dynamo=True)``; needs ``onnx`` and ``onnxscript``), checked
  with onnxruntime when installed;
- ``model.pt2`` (``torch.export``), checked by loading it back;
- ``model_card.md`` (see ``nasnav.workflow.model_card``) and ``export.json`` (files, checks, versions).

Every exported network takes NORMALISED input, exactly what it was trained on: call
``preprocess(raw)`` first (``model.py``), or apply ``(raw - mean) / std`` with the constants in
``arch.yaml`` / the model card.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import io
import logging
import time
import warnings
from pathlib import Path

import torch

from nasnav.components import copy_sources
from nasnav.errors import InvalidInput
from nasnav.model import layers
from nasnav.model.ops import get_op
from nasnav.model.supernet import build_network, network_constructors, network_source, own_imports
from nasnav.quiet import quiet_loggers
from nasnav.store import layout
from nasnav.store.io import atomic_write_bytes, atomic_write_text, read_json, read_yaml, write_json
from nasnav.store.run_dir import RunDir, arch_key
from nasnav.workflow.arch_record import check_arch_record
from nasnav.workflow.model_card import write_model_card
from nasnav.workflow.retrain import load_weights
from nasnav.workflow.runs import load_data
from nasnav.workflow.source_check import SourceShape, check_source

N_EXAMPLES = 8
TOLERANCE = 1e-4  # max |logit difference| accepted between an export and the original network


# ---- model.py --------------------------------------------------------------------------------
def layers_source() -> str:
    """``nasnav/layers.py`` without its module docstring (it imports only torch)."""
    src = Path(inspect.getsourcefile(layers)).read_text()
    tree = ast.parse(src)
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        src = "\n".join(src.splitlines()[first.end_lineno :])
    lines = src.splitlines()
    for node in reversed(ast.parse(src).body):  # model.py imports torch itself; fail loudly on anything else
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n.split(".")[0] != "torch" for n in names):
                raise RuntimeError(f"nasnav/layers.py imports {names}: model.py may import only torch")
            del lines[node.lineno - 1 : node.end_lineno]
    return "\n".join(lines).strip() + "\n"


_HEADER = f'''"""A network found by nasnav, as plain PyTorch (no nasnav needed).

ARCH names the architecture; STAGES lists its stages in order (the stem comes first, a linear head last):
each stage's name, chosen components, channels and stride. RAW_INPUT says what a raw input is.
The network expects NORMALISED input of shape (N, *INPUT_SHAPE): apply preprocess(x) first.
Output: logits over len(CLASS_NAMES) classes, in the order of CLASS_NAMES.

Usage:
    import torch, model
    net = model.load("{layout.WEIGHTS}")  # eval mode, CPU
    logits = net(model.preprocess(x_raw))  # x_raw: float tensor, see RAW_INPUT
    labels = [model.CLASS_NAMES[i] for i in logits.argmax(1)]

Run `python model.py` next to {layout.WEIGHTS} and {layout.EXAMPLE} to check that this file reproduces the
outputs nasnav measured.
"""

import torch
from torch import nn

# ---- building blocks (copied verbatim from nasnav/layers.py) ------------------------------------

'''

_TAIL = f'''

def preprocess(x):
    """Raw input (see RAW_INPUT) -> what the network expects: (x - MEAN) / STD."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == len(INPUT_SHAPE):
        x = x.unsqueeze(0)  # one sample -> a batch of one
    if MEAN is None:
        return x
    return (x - MEAN) / STD


def load(weights_path="{layout.WEIGHTS}", map_location="cpu"):
    """build() with the trained weights loaded (a plain state_dict; no code is unpickled), in eval mode."""
    net = build()
    state = torch.load(weights_path, map_location=map_location, weights_only=True)
    net.load_state_dict(state)
    return net.eval()


@torch.no_grad()
def predict(x_raw, net=None):
    """Class indices for raw inputs."""
    net = load() if net is None else net
    return net(preprocess(x_raw)).argmax(1)


if __name__ == "__main__":
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    net = load(os.path.join(here, "{layout.WEIGHTS}"))
    example = torch.load(os.path.join(here, "{layout.EXAMPLE}"), map_location="cpu", weights_only=True)
    with torch.no_grad():
        diff = (net(preprocess(example["x"])) - example["logits"]).abs().max().item()
    print(f"{{sum(p.numel() for p in net.parameters()):,}} parameters; max |logit difference| on "
          f"{{len(example['x'])}} examples: {{diff:.2e}}")
    sys.exit(0 if diff < {TOLERANCE} else 1)
'''

# model.py's data: every value a run's files give enters through repr() into one of these assignments
_DATA = frozenset({"ARCH", "STAGES", "STEM_CHANNELS", "RAW_INPUT", "INPUT_SHAPE", "CLASS_NAMES"})
_TENSORS = frozenset({"MEAN", "STD"})


def _tensor_source(values: list[float] | None, shape: list[int] | None) -> str:
    return "None" if values is None else f"torch.tensor({values!r}).reshape({tuple(shape)!r})"


def model_shape(constructors: set[str], own: str = "") -> SourceShape:
    """What a generated model.py may hold (``nasnav.workflow.source_check``): the fixed parts as written
    here, the own components' imports ``own`` (``supernet.own_imports``: module and class names of the
    files a config loaded, never values of a run's files), the data names, and ``build()`` calling
    ``constructors``."""
    return SourceShape(fixed=_HEADER + layers_source() + own + _TAIL, data=_DATA, tensors=_TENSORS,
                       builder="build", constructors=frozenset(constructors))


def model_source(record: dict, where: str = layout.ARCH) -> str:
    """The text of a self-contained model.py for an ``arch.yaml`` record, checked against ``model_shape``
    (``UnsafeSource`` otherwise). User values (names, class labels, descriptions) enter only via repr()."""
    rec = check_arch_record(record, where)
    spec, space, arch, norm = rec["spec"], rec["space"], rec["parsed"], rec["normalisation"]
    stages = [
        {"name": s.name, "components": list(c), "channels": s.channels, "stride": s.stride}
        for s, c in zip(space.stages, arch.choices)
    ]
    data = f"""
ARCH = {rec["arch"]!r}
STEM_CHANNELS = {space.stem_channels!r}
STAGES = {stages!r}
RAW_INPUT = {rec["raw_input"] or "raw inputs"!r}
INPUT_SHAPE = {tuple(spec.shape)!r}  # per sample
CLASS_NAMES = {list(spec.class_names)!r}
# Training-set normalisation, per channel (images, sequences) or feature (tables); None: none applied.
MEAN = {_tensor_source(norm["mean"], norm["shape"])}
STD = {_tensor_source(norm["std"], norm["shape"])}
"""
    build_src = network_source(space, arch, spec.kind, spec.shape[0], spec.num_classes)
    source = (_HEADER + layers_source() + "\n# ---- this architecture " + "-" * 70 + "\n" + build_src + data
              + _TAIL)
    own = "\n".join(own_imports([get_op(c, spec.kind) for choice in arch.choices for c in choice]))
    check_source(source, model_shape(network_constructors(space, arch, spec.kind), own), f"model.py for {where}")
    return source


def _import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The dynamo exporter logs a line per optional op library it cannot find (torchvision::nms ...) at WARNING:
# about the exporter's set-up, not this model, and noise in the job logs the app shows.
_ONNX_LOGGERS = ("torch.onnx._internal.exporter._registration",)


# ---- ONNX / torch.export -------------------------------------------------------------------------
def export_onnx(net: torch.nn.Module, x: torch.Tensor, path: Path) -> dict:
    """ONNX with a dynamic batch axis via the current exporter (``torch.onnx.export(..., dynamo=True)``,
    which needs ``onnx`` and ``onnxscript``); checked with onnxruntime if present."""
    try:
        import onnx  # noqa: F401  (optional: ONNX export is skipped without it)
        import onnxscript  # noqa: F401
    except ImportError as e:
        return {"status": "skipped", "reason": f"the `{e.name}` package is not installed (pip install onnx onnxscript)"}
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), quiet_loggers(_ONNX_LOGGERS, logging.ERROR):
            # torch.export's own notice, raised inside the exporter: not about this model
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            program = torch.onnx.export(
                net,
                (x,),
                dynamo=True,
                input_names=["x"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                verbose=False,
            )
            program.save(buf)
    except Exception as e:
        return {"status": "failed", "reason": f"{type(e).__name__}: {e}"[:500]}
    atomic_write_bytes(path, buf.getvalue())
    try:
        import onnxruntime as ort  # optional: the ONNX check is skipped without it
    except ImportError:
        return {
            "status": "exported",
            "file": path.name,
            "exporter": "torch.onnx.export(dynamo=True)",
            "checked": False,
            "reason": "onnxruntime is not installed: the file was not run",
        }
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = net(x).numpy()
    got = sess.run(None, {"x": x.numpy()})[0]
    diff = float(abs(got - ref).max())
    return {
        "status": "ok" if diff < TOLERANCE else "mismatch",
        "file": path.name,
        "exporter": "torch.onnx.export(dynamo=True)",
        "checked": True,
        "checked_with": f"onnxruntime {ort.__version__}",
        "max_abs_diff": diff,
    }


def export_pt2(net: torch.nn.Module, x: torch.Tensor, path: Path) -> dict:
    """``torch.export`` program (dynamic batch where possible), saved and loaded back to check."""
    try:
        try:
            ep = torch.export.export(net, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}})
            dynamic = True
        except Exception:
            ep = torch.export.export(net, (x,))
            dynamic = False
        buf = io.BytesIO()
        torch.export.save(ep, buf)
    except Exception as e:
        return {"status": "failed", "reason": f"{type(e).__name__}: {e}"[:500]}
    atomic_write_bytes(path, buf.getvalue())
    loaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        diff = float((loaded(x) - net(x)).abs().max())
    return {
        "status": "ok" if diff < TOLERANCE else "mismatch",
        "file": path.name,
        "dynamic_batch": dynamic,
        "max_abs_diff": diff,
    }


# ---- the whole export ---------------------------------------------------------------------------
def resolve_final(run: RunDir, arch: str) -> str:
    """The final/ key of an architecture string (or of a key itself); ValueError if not retrained."""
    key = arch if run.final_dir(arch).is_dir() and "/" not in arch else arch_key(arch)
    if not (run.final_dir(key) / layout.FINAL_METRICS).exists():
        have = ", ".join(run.finals()) or "none yet"
        raise InvalidInput(
            f"architecture '{arch}' has not been retrained in {run.path} (retrained: {have}); "
            f'run `python -m nasnav retrain {run.path} --arch "{arch}"` first'
        )
    return key


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_final(
    run: RunDir, cfg, arch: str, onnx: bool = True, pt2: bool = True, card: bool = True, force: bool = False
) -> dict:
    """Export ``final/<key>/`` (weights and arch.yaml written by retrain); returns export.json's content.

    Skipped (the previous export.json returned) when the weights are unchanged since the last
    export and nothing new is asked for, unless ``force``.
    """

    key = resolve_final(run, arch)
    d = run.final_dir(key)
    weights = d / layout.WEIGHTS
    record = read_yaml(d / layout.ARCH)
    rec = check_arch_record(record, str(d / layout.ARCH))  # before anything is written: names, types, values
    sha = _sha256(weights) if weights.exists() else None
    prev = read_json(d / layout.EXPORT, default=None)
    if (
        not force
        and isinstance(prev, dict)
        and prev.get("weights_sha256") == sha
        and (not onnx or "onnx" in prev)
        and (not pt2 or "torch_export" in prev)
    ):
        if card:

            write_model_card(run, cfg, key)  # decisions or spot checks may be newer than the export
        return prev
    t0 = time.time()
    spec, space = rec["spec"], rec["space"]
    net = build_network(space, rec["parsed"], spec.kind, spec.shape[0], spec.num_classes)
    net.load_state_dict(load_weights(weights))
    net.eval()

    # Example inputs: the first test samples, back in raw scale (what a user will hand in).
    splits = load_data(cfg)
    x_norm = splits.x_test[:N_EXAMPLES].clone()
    x_raw = x_norm * splits.std + splits.mean if splits.mean is not None else x_norm
    with torch.no_grad():
        logits = net(x_norm)
    buf = io.BytesIO()
    torch.save({"x": x_raw.contiguous(), "logits": logits, "y": splits.y_test[:N_EXAMPLES].clone()}, buf)
    atomic_write_bytes(d / layout.EXAMPLE, buf.getvalue())

    source = model_source(record, str(d / layout.ARCH))  # parsed and checked (ast) before it is written
    own_files = copy_sources([c for choice in rec["parsed"].choices for c in choice], spec.kind, d)  # model.py imports them
    atomic_write_text(d / layout.MODEL_PY, source)
    mod = _import_file(d / layout.MODEL_PY, f"nasnav_export_{key[:40]}")  # the file builds, loads, reproduces
    with torch.no_grad():
        own = mod.load(str(weights))(mod.preprocess(x_raw))
    info = {
        "arch": rec["arch"],
        "key": key,
        "weights_sha256": sha,
        "exported": time.time(),
        "torch": torch.__version__,
        "input": "normalised: preprocess(raw) = (raw - mean) / std, see model.py",
        "files": [layout.WEIGHTS, layout.ARCH, layout.MODEL_PY, *own_files, layout.EXAMPLE],
        "model_py": {
            "status": "ok" if float((own - logits).abs().max()) < TOLERANCE else "mismatch",
            "max_abs_diff": float((own - logits).abs().max()),
        },
    }
    if onnx:
        info["onnx"] = export_onnx(net, x_norm, d / layout.ONNX)
    if pt2:
        info["torch_export"] = export_pt2(net, x_norm, d / layout.PT2)
    info["files"] += [r["file"] for r in (info.get("onnx"), info.get("torch_export")) if r and r.get("file")]
    if card:
        info["files"].append(layout.CARD)
    info["seconds"] = round(time.time() - t0, 2)
    write_json(d / layout.EXPORT, info)
    if card:

        write_model_card(run, cfg, key)
    if info["model_py"]["status"] != "ok":
        raise RuntimeError(
            f"{d / layout.MODEL_PY}: does not reproduce the network (max |diff| "
            f"{info['model_py']['max_abs_diff']:.2e}); this is a bug in nasnav.workflow.export"
        )
    return info

