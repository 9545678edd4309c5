"""Classification metrics and confidence intervals used by evaluations and model cards."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from graphxfer.exceptions import GraphxferError

__all__ = [
    "METRICS",
    "bootstrap_ci",
    "brier_score",
    "expected_calibration_error",
    "mean_ci",
    "score_all",
    "stratified_resamples",
]


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(np.int64).ravel()
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2:
        p = p[:, 1]
    if y.shape != p.shape:
        raise GraphxferError(f"{len(y)} labels but {len(p)} predictions")
    if not np.isfinite(p).all():
        raise GraphxferError("predicted probabilities hold NaN or inf")
    return y, p


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between the outcome and the predicted probability."""
    y, p = _check(y, p)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error over ``n_bins`` equal-width probability bins.

    The weighted mean, over bins, of ``|mean outcome - mean predicted probability|``.
    """
    y, p = _check(y, p)
    bins = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y, p = _check(y, p)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def _auprc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    y, p = _check(y, p)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(average_precision_score(y, p))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": _auroc,
    "auprc": _auprc,
    "brier": brier_score,
    "ece": expected_calibration_error,
}
"""Metric name -> ``f(y_true, p_positive)``. AUROC/AUPRC are NaN when one class is absent."""


def score_all(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one set of predictions."""
    return {name: fn(y, p) for name, fn in METRICS.items()}


def mean_ci(values: np.ndarray | pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of repeated measurements (NaNs dropped)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size == 1:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def bootstrap_ci(
    y: np.ndarray,
    p: np.ndarray,
    metric: str = "auroc",
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    random_state: int | None = None,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap interval of ``metric`` on one test set."""
    y, p = _check(y, p)
    fn = METRICS[metric]
    rng = np.random.default_rng(random_state)
    point = fn(y, p)
    stats_ = []
    n = len(y)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        value = fn(y[idx], p[idx])
        if np.isfinite(value):
            stats_.append(value)
    if not stats_:
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(stats_, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)


def stratified_resamples(
    y: np.ndarray,
    units: Mapping[str, np.ndarray],
    *,
    n_boot: int = 200,
    random_state: int | np.random.Generator | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Bootstrap resamples of the records of each unit, stratified by outcome.

    Each resample draws, within every unit (a site, a fold, or all records), as many positive
    and as many negative records as the unit has, with replacement; score two models on the
    same resample for a paired comparison.

    Parameters
    ----------
    y : array of 0/1
    units : dict of str to array of int
        The record positions of each unit.
    n_boot : int, default=200
    random_state : int, Generator or None

    Yields
    ------
    dict of str to array of int
        The resampled positions of each unit.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 1])
    >>> draw = next(stratified_resamples(y, {"all": np.arange(5)}, random_state=0))
    >>> int(y[draw["all"]].sum())
    3
    """
    y = np.asarray(y)
    rng = np.random.default_rng(random_state)
    strata = {name: (rows[y[rows] == 1], rows[y[rows] == 0]) for name, rows in units.items()}
    for _ in range(n_boot):
        yield {
            name: np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
            for name, (pos, neg) in strata.items()
        }
