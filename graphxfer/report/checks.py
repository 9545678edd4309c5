"""Checks of a model on the records it is reported on: calibration and shift from the source.

Both read the reported records (and, for calibration, their outcomes) without differential
privacy: their results are not covered by the model's epsilon. The report shows them in its
section on private records; ``graphxfer demo`` prints the same lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ECE_LIMIT",
    "MEAN_GAP_LIMIT",
    "MISSING_GAP_LIMIT",
    "OUTSIDE_LIMIT",
    "calibration_check",
    "shift_check",
    "source_marginals",
]

ECE_LIMIT = 0.1
"""Predictions are called miscalibrated above this expected calibration error ..."""
MEAN_GAP_LIMIT = 0.1
"""... or when the mean prediction and the outcome rate differ by more than this."""
MISSING_GAP_LIMIT = 0.3
"""A column is flagged when its share missing differs from the source's by more than this ..."""
OUTSIDE_LIMIT = 0.2
"""... or when more than this share of its observed values falls outside the source's
1st-99th percentile range (numeric) or outside the source's categories (categorical)."""
_MIN_OBSERVED = 5
"""The range check needs at least this many observed values."""
_SMALL_COHORT = 100


def calibration_check(y: Any, p: Any) -> dict[str, Any]:
    """Expected calibration error, mean prediction and outcome rate, with a verdict.

    Predictions are *miscalibrated* when the expected calibration error (10 equal-width
    bins, as in :func:`graphxfer.evaluate.metrics.expected_calibration_error`) exceeds
    :data:`ECE_LIMIT` or ``|mean prediction - outcome rate|`` exceeds :data:`MEAN_GAP_LIMIT`.

    Returns
    -------
    dict
        ``n``, ``ece``, ``brier``, ``mean_prediction``, ``outcome_rate``, ``miscalibrated``,
        ``reasons`` (the limits exceeded, in words), ``line`` (one line for a console) and
        ``warning`` (a plain-language warning, or ``None``).
    """
    from graphxfer.evaluate.metrics import brier_score, expected_calibration_error

    y = np.asarray(y, dtype=np.int64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    ece = expected_calibration_error(y, p)
    mean, rate = float(p.mean()), float(y.mean())
    reasons = []
    if ece > ECE_LIMIT:
        reasons.append(f"expected calibration error {ece:.3f} > {ECE_LIMIT:g}")
    if abs(mean - rate) > MEAN_GAP_LIMIT:
        reasons.append(
            f"mean prediction {mean:.3f} vs outcome rate {rate:.3f}, a gap above {MEAN_GAP_LIMIT:g}"
        )
    n = len(y)
    verdict = "MISCALIBRATED (" + "; ".join(reasons) + ")" if reasons else "within the limits"
    line = (
        f"Calibration on {n:,} records: ECE {ece:.3f}, mean prediction {mean:.3f} vs outcome "
        f"rate {rate:.3f}: {verdict}"
    )
    warning = None
    if reasons:
        side = "too high" if mean > rate else "too low"
        warning = (
            f"The predicted probabilities do not match what happened on these {n:,} records "
            f"({'; '.join(reasons)}; limits: ECE {ECE_LIMIT:g}, gap {MEAN_GAP_LIMIT:g}). "
            f"On average they are {side}. Read them as a ranking of the records rather than as "
            "risks, and do not act on the risk bands, until the model is recalibrated on "
            "records of this site."
        )
        if n < _SMALL_COHORT:
            warning += f" With {n:,} records, part of the gap can be chance."
    return {
        "n": n,
        "ece": ece,
        "brier": brier_score(y, p),
        "mean_prediction": mean,
        "outcome_rate": rate,
        "miscalibrated": bool(reasons),
        "reasons": reasons,
        "line": line,
        "warning": warning,
    }


def source_marginals(model: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The source cohort's name and per-column marginals that the model's encoder records
    (share missing, quantiles or category frequencies); ``(None, None)`` without them."""
    summary = getattr(getattr(model, "encoder_", None), "source_summary", None)
    if not isinstance(summary, Mapping) or not isinstance(summary.get("marginals"), Mapping):
        return None, None
    return summary.get("name"), dict(summary["marginals"])


def shift_check(model: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """Columns recorded differently on ``frame`` than at the model's source.

    Source facts come from the marginals the encoder records (:func:`source_marginals`);
    target facts from ``frame`` (the reported records in the model's columns). A column is
    flagged when its share missing differs by more than :data:`MISSING_GAP_LIMIT`, or when
    more than :data:`OUTSIDE_LIMIT` of its observed values (at least 5) lie outside the source's
    1st-99th percentile range (numeric) or are categories the source never recorded.

    Returns
    -------
    dict
        ``available`` (False when the model records no source marginals), ``source`` (its
        name), ``rows`` (one dict per compared column: ``column``, ``source_missing``,
        ``missing``, ``outside`` (share of observed values out of the source's range or
        categories, or None), ``source_range`` (text), ``reasons``), ``flagged`` (column ->
        why, in words) and ``not_compared`` (columns the source does not describe).
    """
    name, marginals = source_marginals(model)
    if marginals is None:
        return {
            "available": False,
            "source": None,
            "rows": [],
            "flagged": {},
            "not_compared": [],
            "line": "Shift from the source: not available (the model records no source "
            "distributions)",
        }
    rows: list[dict[str, Any]] = []
    flagged: dict[str, str] = {}
    not_compared: list[str] = []
    for column in frame.columns:
        m = marginals.get(str(column))
        if not isinstance(m, Mapping):
            not_compared.append(str(column))
            continue
        values = frame[column]
        observed = values.dropna()
        missing = float(values.isna().mean()) if len(values) else float("nan")
        source_missing = float(m.get("missing", 0.0))
        outside, source_range = _outside(m, observed)
        reasons = []
        if abs(missing - source_missing) > MISSING_GAP_LIMIT:
            reasons.append(
                f"missing for {missing:.0%} of these records vs {source_missing:.0%} at the source"
            )
        if outside is not None and outside > OUTSIDE_LIMIT:
            what = (
                f"outside the source's 1st-99th percentile range ({source_range})"
                if m.get("kind") == "numeric"
                else f"categories the source never recorded (it has {source_range})"
            )
            reasons.append(f"{outside:.0%} of the observed values are {what}")
        rows.append(
            {
                "column": str(column),
                "source_missing": source_missing,
                "missing": missing,
                "outside": outside,
                "source_range": source_range,
                "reasons": reasons,
            }
        )
        if reasons:
            flagged[str(column)] = "; ".join(reasons)
    if flagged:
        line = (
            f"Shift from the source: {len(flagged)} of {len(rows)} columns flagged as possible "
            "site artefacts: " + "; ".join(f"{c} ({why})" for c, why in flagged.items())
        )
    else:
        line = f"Shift from the source: no column flagged ({len(rows)} compared)"
    return {
        "available": True,
        "source": name,
        "rows": rows,
        "flagged": flagged,
        "not_compared": not_compared,
        "line": line,
    }


def _outside(marginal: Mapping[str, Any], observed: pd.Series) -> tuple[float | None, str]:
    """Share of ``observed`` outside the source's range or categories, and that range."""
    kind = marginal.get("kind")
    if kind == "numeric":
        q = np.asarray(marginal.get("quantiles") or [], dtype=np.float64)
        if q.size < 3:
            return None, "not recorded"
        grid = np.linspace(0.0, 1.0, q.size)
        low, high = np.interp([0.01, 0.99], grid, q)
        text = f"{low:.4g} to {high:.4g}"
        if len(observed) < _MIN_OBSERVED:
            return None, text
        x = pd.to_numeric(observed, errors="coerce").to_numpy(dtype=np.float64)
        return float(np.mean((x < low) | (x > high))), text
    frequencies = marginal.get("frequencies") or {}
    known = {str(k) for k in frequencies}
    text = ", ".join(sorted(known)) if len(known) <= 8 else f"{len(known)} categories"
    if kind == "binary" or not known or len(observed) < _MIN_OBSERVED:
        return None, text
    labels = observed.astype(str)
    return float((~labels.isin(known)).mean()), text
