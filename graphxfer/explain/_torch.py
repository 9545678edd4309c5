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

When each column's inputs depend on that column alone (as the tabular networks' column
inputs do), the same parts are the fast inference path of ``exact`` and ``permutation``
(:class:`graphxfer.explain._rows.TorchRows`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.explain.exceptions import ExplanationError

__all__ = ["HOOK", "TorchParts", "expected_gradients", "torch_parts"]

HOOK = "torch_explain_parts"


@dataclass(frozen=True)
class TorchParts:
    """The differentiable path of a model, validated."""

    module: Any
    encode: Callable[[pd.DataFrame], Any]
    groups: dict[str, list[int]]

    def head(self, link: str, dtype: Any) -> Any:
        """A frozen copy of the module in eval mode with ``[n, 1]`` output, on the link's
        scale."""
        import torch

        class _Head(torch.nn.Module):
            def __init__(self, body: torch.nn.Module, probability: bool) -> None:
                super().__init__()
                self.body = body
                self.out = torch.nn.Sigmoid() if probability else torch.nn.Identity()

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.out(self.body(x).reshape(-1, 1))

        body = copy.deepcopy(self.module).to(dtype)
        head = _Head(body, link == "identity").to(dtype).eval()
        for param in head.parameters():  # attributions need input gradients only
            param.requires_grad_(False)
        return head

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


def expected_gradients(
    head: Any,
    background: Any,
    inputs: Any,
    *,
    samples: int,
    seed: int | None = None,
    batch_rows: int = 8192,
    progress: bool = False,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Expected gradients (Erion et al. 2021) of ``head`` at ``inputs``, ``[n, d]``.

    For every record ``x`` and each of ``samples`` draws, a background row ``b`` and a
    uniform ``t`` give the point ``b + t (x - b)``; the attribution is the mean of
    ``grad head(point) * (x - b)``, an unbiased estimate of the expected gradients
    ``E_b[(x - b) * integral_0^1 grad head(b + t (x - b)) dt]``. ``shap.GradientExplainer``
    draws ``b`` and ``t`` independently; here the draws are *balanced*: each record goes
    through a random ordering of the background rows (all of them once before any twice)
    and its ``t`` values are stratified (one in each of ``samples`` equal slices of
    ``[0, 1]``, paired with the rows at random). Every draw is still uniform, so the
    estimate stays unbiased, and its error is far smaller: with ``samples`` equal to the
    number of background rows, the background average is exact. Many records go through
    each forward and backward pass (``batch_rows`` points at a time).

    Parameters
    ----------
    head : torch.nn.Module
        Maps ``[m, d]`` to ``[m]`` or ``[m, 1]`` outputs.
    background, inputs : Tensor of shape (b, d), (n, d)
        On the device and dtype of ``head``.
    samples : int
        Draws per record.
    seed : int, optional
        Seeds the draws (a ``torch.Generator`` on the CPU); ``None`` draws fresh randomness.
    batch_rows : int, default=8192
        Points per pass (at least one record's ``samples``).
    progress : bool, default=False
        A tqdm bar over the records.
    weights : ndarray of shape (b,), optional
        Weights of the background rows (summing to 1); equal by default. With weights, each
        record's rows are drawn by systematic sampling of the weights (every row drawn
        ``floor`` or ``ceil`` of ``samples * weight`` times); the estimate stays unbiased.

    Returns
    -------
    ndarray of shape (n, d), float64
    """
    import torch
    from tqdm.auto import tqdm

    if samples < 1:
        raise ExplanationError(f"the gradient method needs at least 1 sample, got {samples}")
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    n, width = inputs.shape
    per_pass = max(1, batch_rows // samples)
    out = np.empty((n, width), dtype=np.float64)
    bar = tqdm(
        total=n, desc="gradient", unit="record", disable=None if progress else True, leave=False
    )
    for start in range(0, n, per_pass):
        x = inputs[start : start + per_pass]
        rows = x.shape[0]
        if weights is None:
            pick = _balanced_rows(rows, samples, background.shape[0], generator)
        else:
            pick = _systematic_rows(rows, samples, weights, generator)
        slot = torch.argsort(torch.rand(rows, samples, generator=generator), dim=1)
        t = (slot + torch.rand(rows, samples, generator=generator, dtype=torch.float64)) / samples
        t = t[:, :, None]
        reference = background[pick.to(background.device)]
        delta = x[:, None, :] - reference
        points = reference + t.to(device=x.device, dtype=x.dtype) * delta
        points = points.reshape(rows * samples, width).requires_grad_(True)
        (grad,) = torch.autograd.grad(head(points).sum(), points)
        phi = (grad.reshape(rows, samples, width) * delta).mean(dim=1)
        out[start : start + rows] = phi.detach().double().cpu().numpy()
        bar.update(rows)
    bar.close()
    return out


def _balanced_rows(rows: int, samples: int, n_background: int, generator: Any) -> Any:
    """``[rows, samples]`` background indices: per row, random orderings of all of them,
    one after the other (every index appears ``samples // n_background`` or one more times)."""
    import torch

    rounds = -(-samples // n_background)
    keys = torch.rand(rows, rounds, n_background, generator=generator)
    return torch.argsort(keys, dim=2).reshape(rows, rounds * n_background)[:, :samples]


def _systematic_rows(rows: int, samples: int, weights: np.ndarray, generator: Any) -> Any:
    """``[rows, samples]`` background indices drawn by systematic sampling of ``weights``:
    per row, the quantiles ``(k + u) / samples`` (one uniform ``u``) of the weights' CDF."""
    import torch

    cdf = torch.as_tensor(np.cumsum(weights) / np.sum(weights), dtype=torch.float64)
    u = torch.rand(rows, 1, generator=generator, dtype=torch.float64)
    quantiles = (torch.arange(samples, dtype=torch.float64) + u) / samples
    pick = torch.searchsorted(cdf, quantiles, right=True)
    return pick.clamp_(max=len(weights) - 1)
