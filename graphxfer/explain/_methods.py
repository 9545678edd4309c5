"""Explanation methods, looked up by name in a registry.

Each method turns an :class:`ExplainTask` into attributions ``[n, n_features]`` over the original
columns and base values ``[n]`` on the task's scale.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.explain._codec import FeatureCodec
from graphxfer.explain._model import ModelFunction
from graphxfer.explain._torch import expected_gradients, torch_parts
from graphxfer.explain._xgboost import BoosterView
from graphxfer.explain.exceptions import ExplanationError

__all__ = ["MAX_EXACT_FEATURES", "METHODS", "ExplainTask", "Method", "register_method"]

MAX_EXACT_FEATURES = 20
"""The exact method enumerates 2**n_features coalitions; above this it refuses."""

DEFAULT_PERMUTATIONS = 10
"""Forward-and-backward permutations per record of the permutation method by default."""

DEFAULT_GRADIENT_SAMPLES = 100
"""Samples per record of the expected-gradients method by default: with the default background
of 100 rows, every background row once (see :func:`expected_gradients`)."""


@dataclass(frozen=True)
class ExplainTask:
    """Everything a method needs to explain ``frame``.

    Shapes: ``frame`` ``[n, *]``, ``matrix`` ``[n, n_features]``, ``background_matrix``
    ``[b, n_features]``.
    """

    model: Any
    codec: FeatureCodec
    frame: pd.DataFrame
    matrix: np.ndarray
    background: pd.DataFrame
    background_matrix: np.ndarray
    link: str
    max_evals: int | None
    seed: int | None
    progress: bool
    booster: BoosterView | None = None

    @property
    def n_features(self) -> int:
        return self.codec.n_features


Compute = Callable[[ExplainTask], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Method:
    """A registered explanation method."""

    name: str
    compute: Compute
    additive: bool
    uses_background: bool
    description: str


METHODS: dict[str, Method] = {}
"""The registered methods by name."""


def register_method(
    name: str, *, additive: bool, uses_background: bool = True, description: str
) -> Callable[[Compute], Compute]:
    """Register ``compute`` as method ``name``; registering a name twice is an error."""

    def decorator(compute: Compute) -> Compute:
        if name in METHODS:
            raise ExplanationError(
                f"explanation method {name!r} is already registered; choose another name"
            )
        METHODS[name] = Method(name, compute, additive, uses_background, description)
        return compute

    return decorator


@contextlib.contextmanager
def _kept_global_rng() -> Iterator[None]:
    """Restore NumPy's global random state afterwards: some SHAP explainers reseed it."""
    state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what is kept
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _masker(task: ExplainTask) -> Any:
    import shap

    data = task.background_matrix
    return shap.maskers.Independent(data, max_samples=len(data))


@register_method(
    "tree",
    additive=True,
    uses_background=False,
    description="XGBoost's exact path-dependent TreeSHAP (pred_contribs) on the log-odds",
)
def _tree(task: ExplainTask) -> tuple[np.ndarray, np.ndarray]:
    if task.booster is None:
        raise ExplanationError("the tree method needs an XGBoost model")
    contributions = task.booster.contributions(task.frame, task.codec.names)
    return contributions[:, :-1], contributions[:, -1]


@register_method(
    "exact", additive=True, description="exact Shapley values (all coalitions, independent masking)"
)
def _exact(task: ExplainTask) -> tuple[np.ndarray, np.ndarray]:
    import shap

    m = task.n_features
    if m > MAX_EXACT_FEATURES:
        raise ExplanationError(
            f"the exact method evaluates 2**{m} coalitions per record; use method='permutation' "
            f"for more than {MAX_EXACT_FEATURES} features"
        )
    if task.max_evals is not None and task.max_evals < 2**m:
        raise ExplanationError(
            f"the exact method needs max_evals >= 2**{m} = {2**m}, got {task.max_evals}; "
            "raise it, leave it None, or use method='permutation'"
        )
    explainer = shap.explainers.Exact(
        ModelFunction(task.model, task.codec, task.link), _masker(task)
    )
    result = explainer(task.matrix, max_evals="auto", silent=not task.progress)
    return np.asarray(result.values, dtype=np.float64), np.asarray(result.base_values, float)


@register_method(
    "permutation",
    additive=True,
    description="Shapley values estimated from antithetic feature permutations",
)
def _permutation(task: ExplainTask) -> tuple[np.ndarray, np.ndarray]:
    import shap

    m = task.n_features
    evals = task.max_evals if task.max_evals is not None else DEFAULT_PERMUTATIONS * (2 * m + 1)
    if evals < 2 * m + 1:
        raise ExplanationError(
            f"the permutation method needs max_evals >= 2 * n_features + 1 = {2 * m + 1}, "
            f"got {evals}"
        )
    with _kept_global_rng():
        explainer = shap.explainers.Permutation(
            ModelFunction(task.model, task.codec, task.link), _masker(task), seed=task.seed
        )
        result = explainer(task.matrix, max_evals=evals, silent=not task.progress)
    return np.asarray(result.values, dtype=np.float64), np.asarray(result.base_values, float)


@register_method(
    "deep",
    additive=True,
    description="DeepLIFT through the model's differentiable path (torch)",
)
def _deep(task: ExplainTask) -> tuple[np.ndarray, np.ndarray]:
    import shap
    import torch

    parts = torch_parts(task.model, task.codec.names, sorted(METHODS))
    head = parts.head(task.link, torch.float64)
    background = parts.tensor(task.background, torch.float64)
    inputs = parts.tensor(task.frame, torch.float64)
    explainer = shap.DeepExplainer(head, background)
    raw = explainer.shap_values(inputs, check_additivity=False)
    values = np.asarray(raw, dtype=np.float64).reshape(inputs.shape)
    base = float(np.ravel(explainer.expected_value)[0])
    return parts.per_column(values, task.codec.names), np.full(len(task.frame), base)


@register_method(
    "gradient",
    additive=False,
    description="expected gradients through the model's differentiable path (torch); "
    "a sampling approximation, not exactly additive",
)
def _gradient(task: ExplainTask) -> tuple[np.ndarray, np.ndarray]:
    import torch

    parts = torch_parts(task.model, task.codec.names, sorted(METHODS))
    head = parts.head(task.link, torch.float32)
    background = parts.tensor(task.background, torch.float32)
    inputs = parts.tensor(task.frame, torch.float32)
    samples = task.max_evals if task.max_evals is not None else DEFAULT_GRADIENT_SAMPLES
    values = expected_gradients(
        head, background, inputs, samples=samples, seed=task.seed, progress=task.progress
    )
    with torch.no_grad():
        base = float(head(background).double().mean())
    return parts.per_column(values, task.codec.names), np.full(len(task.frame), base)
