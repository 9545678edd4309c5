"""Gradient-based explainers for torch models that expose a differentiable path.

A model opts in by defining ``torch_explain_parts()``, returning an object or mapping with

``module``
    a ``torch.nn.Module`` mapping a float tensor ``[n, d]`` of internal inputs to the log-odds of
    the positive class, ``[n]`` or ``[n, 1]``;
``encode``
    a callable turning a data frame of the original columns into that tensor;
``groups``
    a mapping ``{original column: [internal input indices]}`` covering every internal input
    exactly once (a categorical column usually owns several one-hot inputs).

Attributions of the internal inputs are summed per original column, so the explanation is
over the user's columns. DeepLIFT (``deep``) is additive; expected gradients (``gradient``)
is a sampling approximation and is not exactly additive.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.explain.exceptions import ExplanationError

__all__ = ["HOOK", "TorchParts", "torch_parts"]

HOOK = "torch_explain_parts"


@dataclass(frozen=True)
class TorchParts:
    """The differentiable path of a model, validated."""

    module: Any
    encode: Callable[[pd.DataFrame], Any]
    groups: dict[str, list[int]]

    def head(self, link: str, dtype: Any) -> Any:
        """A copy of the module in eval mode with ``[n, 1]`` output, on the link's scale."""
        import torch

        class _Head(torch.nn.Module):
            def __init__(self, body: torch.nn.Module, probability: bool) -> None:
                super().__init__()
                self.body = body
                self.out = torch.nn.Sigmoid() if probability else torch.nn.Identity()

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.out(self.body(x).reshape(-1, 1))

        body = copy.deepcopy(self.module).to(dtype)
        return _Head(body, link == "identity").to(dtype).eval()

    def tensor(self, frame: pd.DataFrame, dtype: Any) -> Any:
        """The internal inputs of ``frame`` as a detached tensor of ``dtype``."""
        import torch

        out = self.encode(frame)
        out = torch.as_tensor(out).detach().to(dtype)
        if out.ndim != 2 or out.shape[0] != len(frame):
            raise ExplanationError(
                f"{HOOK}().encode returned shape {tuple(out.shape)} for {len(frame)} rows; "
                "it must return [n_rows, n_inputs]"
            )
        return out

    def per_column(self, values: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Sum internal attributions ``[n, d]`` per original column -> ``[n, len(names)]``."""
        return np.stack([values[:, self.groups[n]].sum(axis=1) for n in names], axis=1)


def torch_parts(model: Any, names: Sequence[str], available: Sequence[str]) -> TorchParts:
    """The model's differentiable path, or a clear error saying which methods are available."""
    hook = getattr(model, HOOK, None)
    if not callable(hook):
        raise ExplanationError(
            f"{type(model).__name__} exposes no differentiable path ({HOOK}()), so the "
            f"gradient-based methods cannot explain it; available methods: {list(available)}"
        )
    parts = hook()
    get = parts.get if isinstance(parts, Mapping) else lambda key: getattr(parts, key, None)
    module, encode, groups = get("module"), get("encode"), get("groups")
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise ExplanationError("the gradient-based methods need torch") from exc
    if not isinstance(module, torch.nn.Module) or not callable(encode):
        raise ExplanationError(
            f"{HOOK}() must give a torch.nn.Module 'module' and a callable 'encode'"
        )
    if not isinstance(groups, Mapping) or sorted(groups) != sorted(names):
        raise ExplanationError(
            f"{HOOK}()['groups'] must map each input column {list(names)} to its internal "
            f"inputs, got keys {sorted(groups) if isinstance(groups, Mapping) else groups!r}"
        )
    clean = {str(k): [int(i) for i in v] for k, v in groups.items()}
    owned = sorted(i for v in clean.values() for i in v)
    if owned != list(range(len(owned))):
        raise ExplanationError(
            f"{HOOK}()['groups'] must cover every internal input exactly once (0..d-1)"
        )
    return TorchParts(module, encode, clean)
