"""The parts of a model card about using the network: YAML front matter (as model cards on the Hugging Face
Hub carry it), intended use, limitations, citation, and code that runs as written in the exported folder.

Every value from a run's files enters the front matter through ``yaml.safe_dump`` and the text through
``nasnav.markdown``; the code blocks hold no user value at all (file names are nasnav's own).
"""

from __future__ import annotations

import yaml

from nasnav.markdown import text
from nasnav.store import layout

CITATION = """@article{tyagi2023nasnavigator,
  title   = {{NAS-Navigator}: Visual Steering for Explainable One-Shot Deep Neural Network Synthesis},
  author  = {Tyagi, Anjul and Xie, Cong and Mueller, Klaus},
  journal = {IEEE Transactions on Visualization and Computer Graphics},
  volume  = {29},
  number  = {1},
  year    = {2023},
  note    = {Presented at IEEE VIS 2022}
}"""

# Licences of the built-in data sets, as Hugging Face names them: the weights are derived from the data, so its
# terms come first. Own data (csv, folder, cifar batches) and sets without a stated licence: "unknown".
DATA_LICENCE = {"digits": "cc-by-4.0", "mnist1d": "apache-2.0", "fashion_mnist": "mit"}
TASK = {"image": "image-classification", "tabular": "tabular-classification", "sequence": "time-series-classification"}

INTENDED_USE = (
    "Classifying new inputs drawn from the same source and preprocessing as the training data (see Data), "
    "and as a starting point for further training; found by human-in-the-loop one-shot neural architecture "
    "search (NAS-Navigator) for this data set."
)
LIMITATIONS = (
    "Accuracy is measured on one held-out split of the same data; inputs from another source, scale or "
    "preprocessing can fail silently. The architecture was chosen among the search space's candidates for this "
    "data only. Nothing was measured about fairness, robustness or calibration."
)


def front_matter(*, arch: str, kind: str, source: str, num_classes: int, test_acc, val_acc, n_test) -> str:
    """The YAML block a model card starts with (Hugging Face Hub fields, plus nasnav's own)."""
    metrics = [{"type": "accuracy", "name": "test accuracy (held out, reported once)", "value": test_acc},
               {"type": "accuracy", "name": "standalone validation accuracy (used for selection)", "value": val_acc}]
    for m in metrics:  # float32 accuracies: 0.10000000149011612 -> 0.1
        m["value"] = round(m["value"], 6) if isinstance(m["value"], float) else None
    meta = {
        "library_name": "pytorch",
        "license": DATA_LICENCE.get(source, "unknown"),
        "tags": ["nasnav", "neural-architecture-search", "one-shot-nas", TASK.get(kind, "classification")],
        "datasets": [source],
        "metrics": ["accuracy"],
        "model-index": [{
            "name": arch,
            "results": [{
                "task": {"type": TASK.get(kind, "classification"), "name": f"{kind} classification, "
                                                                           f"{num_classes} classes"},
                "dataset": {"name": source, "type": source, "split": f"test ({n_test} samples)"},
                "metrics": [m for m in metrics if isinstance(m["value"], float)],
            }],
        }],
        "intended_use": INTENDED_USE,
        "limitations": LIMITATIONS,
        "citation": CITATION,
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=False, width=1000) + "---\n"


def split_front_matter(card: str) -> tuple[str, str]:
    """(the YAML front matter without its ``---`` lines, the Markdown body) of a card; ("", card) without one."""
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        if end >= 0:
            return card[4 : end + 1], card[end + 5 :]
    return "", card


def use_sections(source: str) -> list[str]:
    """Intended use, limitations and the citation, as card sections."""
    licence = DATA_LICENCE.get(source)
    terms = (f"The training data's licence ({text(licence)}) applies to the weights; set the card's `license` "
             "before sharing." if licence else "The training data's terms apply to the weights: set the card's "
             "`license` (now `unknown`) before sharing.")
    return ["## Intended use", "", INTENDED_USE, "", "## Limitations", "", LIMITATIONS, "", terms, "",
            "## Citation", "", "Found with nasnav, an implementation of NAS-Navigator:", "", "```bibtex", CITATION,
            "```", ""]


def _ok(exp: dict, key: str) -> bool:
    r = exp.get(key)
    return isinstance(r, dict) and r.get("status") == "ok"


def usage_section(exp: dict) -> list[str]:
    """How to load the exported files: every ``python`` and ``bash`` block runs as written in the folder."""
    lines = [
        "## Files and how to load",
        "",
        f"- `{layout.WEIGHTS}`: the `state_dict`; `{layout.ARCH}`: space, architecture, input spec, normalisation",
        f"- `{layout.MODEL_PY}`: self-contained PyTorch (no nasnav needed); it checks itself against "
        f"`{layout.EXAMPLE}` (a few raw test inputs and their logits)",
        f"- `{layout.ONNX}` / `{layout.PT2}`: ONNX and `torch.export` programs, dynamic batch axis",
        f"- `{layout.FINAL_METRICS}`, `metrics.csv` (validation curve), `seeds.csv`",
        "",
        "Run these in this folder. Check that `model.py` reproduces what nasnav measured:",
        "",
        "```bash",
        f"python {layout.MODEL_PY}",
        "```",
        "",
        "PyTorch (`model.preprocess` turns raw inputs, as described under Data, into the normalised ones the "
        "network takes):",
        "",
        "```python",
        "import torch",
        "",
        "import model  # model.py from this folder",
        "",
        f'net = model.load("{layout.WEIGHTS}")  # eval mode, CPU',
        f'x_raw = torch.load("{layout.EXAMPLE}", weights_only=True)["x"]  # raw inputs; use your own',
        "with torch.no_grad():",
        "    logits = net(model.preprocess(x_raw))",
        "labels = [model.CLASS_NAMES[i] for i in logits.argmax(1)]",
        "print(labels)",
        "```",
        "",
    ]
    if _ok(exp, "onnx"):
        lines += [
            "ONNX (the input is the normalised `x`):",
            "",
            "```python",
            "import onnxruntime as ort",
            "import torch",
            "",
            "import model",
            "",
            f'x_raw = torch.load("{layout.EXAMPLE}", weights_only=True)["x"]',
            f'sess = ort.InferenceSession("{layout.ONNX}", providers=["CPUExecutionProvider"])',
            'logits = sess.run(None, {"x": model.preprocess(x_raw).numpy()})[0]',
            "print(logits.argmax(1))",
            "```",
            "",
        ]
    if _ok(exp, "torch_export"):
        lines += [
            "`torch.export` program (normalised input as well):",
            "",
            "```python",
            "import torch",
            "",
            "import model",
            "",
            f'x_raw = torch.load("{layout.EXAMPLE}", weights_only=True)["x"]',
            f'program = torch.export.load("{layout.PT2}").module()',
            "print(program(model.preprocess(x_raw)).argmax(1))",
            "```",
            "",
        ]
    return lines
