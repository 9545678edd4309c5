"""Explanation methods, looked up by name in a registry.

Each method turns an :class:`ExplainTask` into attributions ``[n, n_features]`` over the original
columns and base values ``[n]`` on the task's scale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.exceptions import GraphxferError
from graphxfer.explain._background import Weighted, split_rows
from graphxfer.explain._codec import FeatureCodec
from graphxfer.explain._rows import FrameRows, TorchRows
from graphxfer.explain._shapley import RowFunction, exact_shapley, permutation_shapley
from graphxfer.explain._torch import HOOK, expected_gradients, torch_parts
from graphxfer.explain._xgboost import BoosterView
from graphxfer.explain.exceptions import ExplanationError

__all__ = [
    "FAST_PATH_TOLERANCE",
    "MAX_EXACT_FEATURES",
    "METHODS",
    "ExplainTask",
    "Method",
    "register_method",
    "row_function",
]

logger = logging.getLogger(__name__)

MAX_EXACT_FEATURES = 20
"""The exact method enumerates 2**n_features coalitions; above this it refuses."""

DEFAULT_PERMUTATIONS = 10
"""Forward-and-backward permutations per record of the permutation method by default."""

DEFAULT_GRADIENT_SAMPLES = 100
"""Samples per record of the expected-gradients method by default: with the default background
of 100 rows, every background row once (see :func:`expected_gradients`)."""

FAST_PATH_TOLERANCE = 1e-6
"""The fast inference path (the network on its per-column inputs) is used only when its
probabilities for the explained records match ``predict_proba`` within this."""


@dataclass(frozen=True)
class ExplainTask:
    """Everything a method needs to explain ``frame``.

    Shapes: ``frame`` ``[n, *]``, ``matrix`` ``[n, n_features]``, ``background_matrix``
    ``[b, n_features]``; ``reference`` weights (some of) the ``b`` background rows.
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
    reference: Weighted | None = None
    summary: str = "none"

    @property
    def n_features(self) -> int:
        return self.codec.n_features

    @property
    def weighted(self) -> Weighted:
        """The background rows and weights every coalition averages over."""
        if self.reference is not None:
            return self.reference
        return Weighted.uniform(len(self.background))


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


def row_function(task: ExplainTask) -> tuple[RowFunction, str]:
    """How the Shapley methods evaluate masked rows, and that choice in words.

    The fast path (:class:`~graphxfer.explain._rows.TorchRows`) when the model exposes its
    per-column inputs (``torch_explain_parts()``) and they reproduce ``predict_proba``
    within :data:`FAST_PATH_TOLERANCE` on the explained records and on masked rows that mix
    them with background rows (which also checks that each column's inputs depend on that
    column alone); otherwise ``predict_proba`` on decoded data frames
    (:class:`~graphxfer.explain._rows.FrameRows`).
    """
    names = list(task.codec.names)
    rows = FrameRows(task.model, task.codec, task.link, task.matrix, task.background_matrix)
    if callable(getattr(task.model, HOOK, None)):
        try:
            parts = torch_parts(task.model, names, sorted(METHODS))
            fast = TorchRows(parts, names, task.frame, task.background, task.link)
        except GraphxferError as exc:  # ExplanationError too: no usable per-column path
            logger.info("explaining through predict_proba: %s", exc)
        else:
            records, background, take = _probe(task)
            expected = FrameRows(
                task.model, task.codec, "identity", task.matrix, task.background_matrix
            )(records, background, take)
            gap = float(np.max(np.abs(fast.proba(records, background, take) - expected)))
            if gap <= FAST_PATH_TOLERANCE:
                return fast, "the network on its per-column inputs, computed once"
            logger.info(
                "explaining through predict_proba: the per-column path misses it by %.3g", gap
            )
    return rows, "predict_proba on the masked records"


def _probe(task: ExplainTask, n_mixed: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every record as it is, then ``n_mixed`` records with random columns masked."""
    n, m = task.matrix.shape
    rng = np.random.default_rng(0)
    mixed = rng.integers(0, n, n_mixed)
    records = np.concatenate([np.arange(n), mixed])
    background = np.concatenate(
        [np.zeros(n, np.int64), rng.integers(0, len(task.background_matrix), n_mixed)]
    )
    take = np.concatenate([np.ones((n, m), dtype=bool), rng.random((n_mixed, m)) < 0.5])
    return records, background, take


def _progress(task: ExplainTask, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=len(task.frame),
        desc=name,
        unit="record",
        disable=None if task.progress else True,
        leave=False,
    )


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
    f, _ = row_function(task)
    reference = task.weighted
    with _progress(task, "exact") as bar:
        return exact_shapley(
            f, task.matrix, task.background_matrix, reference.rows, reference.weights,
            progress=bar,
        )  # fmt: skip


@register_method(
    "permutation",
    additive=True,
    description="Shapley values estimated from antithetic feature permutations",
)
def _permutation(task: ExplainTask) -> tuple[np.ndarray, np.ndarray]:
    m = task.n_features
    evals = task.max_evals if task.max_evals is not None else DEFAULT_PERMUTATIONS * (2 * m + 1)
    if evals < 2 * m + 1:
        raise ExplanationError(
            f"the permutation method needs max_evals >= 2 * n_features + 1 = {2 * m + 1}, "
            f"got {evals}"
        )
    n_permutations = evals // (2 * m + 1)
    # separate streams: the orderings do not depend on how the background is spent
    orderings, dealing = np.random.default_rng(task.seed).spawn(2)
    reference = task.weighted
    if task.summary == "split":  # each permutation gets its own share of the rows
        shares = split_rows(len(reference.rows), n_permutations, dealing)
        draws = reference.rows[shares]
        weights = np.full(draws.shape, 1.0 / draws.shape[1])
    else:
        draws = np.tile(reference.rows, (n_permutations, 1))
        weights = np.tile(reference.weights, (n_permutations, 1))
    f, _ = row_function(task)
    with _progress(task, "permutation") as bar:
        return permutation_shapley(
            f, task.matrix, task.background_matrix, draws, weights, rng=orderings, progress=bar
        )


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
    inputs = parts.tensor(task.frame, torch.float64)
    reference = task.weighted
    background = parts.tensor(task.background.iloc[reference.rows], torch.float64)
    # DeepLIFT-SHAP averages per-reference attributions with equal weights: a weighted
    # background is explained one reference at a time and averaged with its weights
    uniform = bool(np.allclose(reference.weights, reference.weights[0]))
    groups = [background] if uniform else [background[r : r + 1] for r in range(len(background))]
    shares = [1.0] if uniform else list(reference.weights)
    values = np.zeros(inputs.shape, dtype=np.float64)
    base = 0.0
    for rows, share in zip(groups, shares):
        explainer = shap.DeepExplainer(head, rows)
        raw = explainer.shap_values(inputs, check_additivity=False)
        values += share * np.asarray(raw, dtype=np.float64).reshape(inputs.shape)
        base += share * float(np.ravel(explainer.expected_value)[0])
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
    reference = task.weighted
    background = parts.tensor(task.background.iloc[reference.rows], torch.float32)
    inputs = parts.tensor(task.frame, torch.float32)
    samples = task.max_evals if task.max_evals is not None else DEFAULT_GRADIENT_SAMPLES
    uniform = bool(np.allclose(reference.weights, reference.weights[0]))
    values = expected_gradients(
        head, background, inputs, samples=samples, seed=task.seed, progress=task.progress,
        weights=None if uniform else reference.weights,
    )  # fmt: skip
    with torch.no_grad():
        outputs = head(background).double().reshape(-1).cpu().numpy()
    base = float(outputs @ reference.weights)
    return parts.per_column(values, task.codec.names), np.full(len(task.frame), base)
