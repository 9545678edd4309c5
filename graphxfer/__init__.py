"""graphxfer: transfer learning from a large source cohort to a small private target cohort.

Pretrained tabular and graph encoders, differentially private fine-tuning, SHAP explanations
for every prediction and self-contained HTML reports.
"""

from __future__ import annotations

import importlib
from typing import Any

from graphxfer.cohort import AlignmentReport, Cohort
from graphxfer.schema import Column, Schema

__version__ = "0.1.0"

# Heavy parts (torch, PyG, Opacus, shap) load on first use so that `import graphxfer` stays fast.
_LAZY: dict[str, str] = {
    "Encoder": "graphxfer.encoder:Encoder",
    "TransferClassifier": "graphxfer.transfer:TransferClassifier",
    "datasets": "graphxfer.datasets",
    "evaluate": "graphxfer.evaluate",
    "exceptions": "graphxfer.exceptions",
    "explain": "graphxfer.explain",
    "graphs": "graphxfer.graphs",
    "load_encoder": "graphxfer.encoder:load_encoder",
    "load_model": "graphxfer.transfer:load_model",
    "pretrain": "graphxfer.encoder:pretrain",
    "pretrain_stream": "graphxfer.distributed:pretrain_stream",
    "report": "graphxfer.report",
}

__all__ = [
    "AlignmentReport",
    "Cohort",
    "Column",
    "Schema",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'graphxfer' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
