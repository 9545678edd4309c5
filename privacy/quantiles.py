"""Differentially private quantiles and bounds of a numeric column.

Scaling bounds, clipping ranges and similar statistics of the *target* data must not be
computed in the clear (DESIGN §4.1). :func:`dp_bounds` estimates them with the exponential
mechanism for quantiles (Smith, 2011; also used by OpenDP and diffprivlib): the values are
clipped to coarse, *public* hints ``[lower_hint, upper_hint]`` and sorted, which cuts the range
into ``n + 1`` intervals; interval ``i`` is chosen with probability proportional to
``length_i * exp(-epsilon * |i - q n| / 2)`` and the output is drawn uniformly inside it. The
rank utility ``-|i - q n|`` changes by at most 1 when one person is added or removed, so each
quantile is ``epsilon``-DP (pure, ``delta = 0``); several quantiles split the budget evenly.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from privacy._utils import RandomState, check_random_state
from privacy.exceptions import InputDataError, PrivacyConfigError
from privacy.ledger import LedgerEntry, PrivacyLedger

__all__ = ["DPBounds", "dp_bounds", "dp_quantiles"]


def _check_inputs(
    values: Any, epsilon: float, lower_hint: float, upper_hint: float, quantiles: Sequence[float]
) -> np.ndarray:
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not epsilon > 0:
        raise PrivacyConfigError(f"epsilon must be > 0, got {epsilon!r}; e.g. epsilon=0.5.")
    if not math.isfinite(epsilon):
        raise PrivacyConfigError(f"epsilon must be finite, got {epsilon!r}.")
    for name, hint in (("lower_hint", lower_hint), ("upper_hint", upper_hint)):
        if isinstance(hint, bool) or not isinstance(hint, int | float) or not math.isfinite(hint):
            raise PrivacyConfigError(
                f"{name} must be a finite number, got {hint!r}; use a coarse public bound "
                "(from the schema, the literature or the source cohort), never one computed "
                "from the private values."
            )
    if not lower_hint < upper_hint:
        raise PrivacyConfigError(
            f"lower_hint={lower_hint} must be < upper_hint={upper_hint}; swap them or widen "
            "the range."
        )
    if len(quantiles) == 0:
        raise PrivacyConfigError("quantiles is empty; pass e.g. quantiles=(0.01, 0.99).")
    for q in quantiles:
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 1:
            raise PrivacyConfigError(f"every quantile must be in [0, 1], got {q!r}.")
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputDataError(
            f"values must be numeric; could not convert them to floats ({exc})."
        ) from exc
    return arr


def _exponential_quantile(
    sorted_values: np.ndarray,
    q: float,
    epsilon: float,
    lower: float,
    upper: float,
    rng: np.random.Generator,
) -> float:
    n = len(sorted_values)
    edges = np.concatenate([[lower], sorted_values, [upper]])
    lengths = np.diff(edges)
    with np.errstate(divide="ignore"):
        log_w = np.log(lengths) - 0.5 * epsilon * np.abs(np.arange(n + 1) - q * n)
    # Gumbel-max: argmax(log w + Gumbel) samples proportionally to w, without overflow.
    i = int(np.argmax(log_w + rng.gumbel(size=n + 1)))
    return float(rng.uniform(edges[i], edges[i + 1]))


def dp_quantiles(
    values: Any,
    quantiles: Sequence[float],
    epsilon: float,
    *,
    lower_hint: float,
    upper_hint: float,
    random_state: RandomState = None,
) -> np.ndarray:
    """Epsilon-DP estimates of several quantiles (the budget is split evenly).

    Parameters
    ----------
    values : array-like of shape (n,)
        One value per person (reduce repeated rows per person first). NaN values are
        dropped (whether a value is missing is a property of the same person, so this keeps
        the guarantee); values outside the hints are clipped to them.
    quantiles : sequence of float in [0, 1]
    epsilon : float
        Total epsilon of the release.
    lower_hint, upper_hint : float
        Coarse *public* range of the column.
    random_state : int, numpy Generator or None
        Validated only. The mechanism draws from the operating system's CSPRNG: a draw
        seeded from a stored value could be replayed, which would undo the guarantee.

    Returns
    -------
    numpy.ndarray of shape (len(quantiles),)
    """
    arr = _check_inputs(values, epsilon, lower_hint, upper_hint, quantiles)
    if np.isinf(arr).any():
        raise InputDataError(
            "values hold infinite entries; replace them (e.g. by the hints) or drop them."
        )
    arr = np.sort(np.clip(arr[~np.isnan(arr)], lower_hint, upper_hint))
    check_random_state(random_state)
    rng = np.random.default_rng(secrets.randbits(128))
    eps_each = float(epsilon) / len(quantiles)
    return np.array(
        [
            _exponential_quantile(
                arr, float(q), eps_each, float(lower_hint), float(upper_hint), rng
            )
            for q in quantiles
        ]
    )


@dataclass(frozen=True)
class DPBounds:
    """Differentially private bounds of a column and the ledger entry that pays for them.

    Attributes
    ----------
    lower, upper : float
    quantiles : tuple of float
    entry : LedgerEntry
        Pure-epsilon entry (``mechanism="exponential-quantile"``, ``delta=0``).
    """

    lower: float
    upper: float
    quantiles: tuple[float, float]
    entry: LedgerEntry

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lower, upper)``."""
        return (self.lower, self.upper)


def dp_bounds(
    values: Any,
    epsilon: float,
    *,
    lower_hint: float,
    upper_hint: float,
    quantiles: tuple[float, float] = (0.01, 0.99),
    random_state: RandomState = None,
    data_id: str = "target",
    purpose: str | None = None,
    column: str | None = None,
    ledger: PrivacyLedger | None = None,
    total_budget: float | None = None,
) -> DPBounds:
    """Epsilon-DP lower and upper bounds of a numeric column, with their ledger entry.

    Parameters
    ----------
    values : array-like of shape (n,)
        One value per person; see :func:`dp_quantiles`.
    epsilon : float
        Total epsilon (split over the two quantiles).
    lower_hint, upper_hint : float
        Coarse *public* range, e.g. ``0`` and ``120`` for an age in years.
    quantiles : (float, float), default=(0.01, 0.99)
    random_state : int, numpy Generator or None
        Validated only (see :func:`dp_quantiles`: the draw is never seeded).
    data_id : str, default="target"
        Data label for the ledger entry (use the same as for the DP fine-tuning).
    purpose : str, optional
        Defaults to ``"quantile-bounds:<column>"``.
    column : str, optional
        Column name, used in the default purpose.
    ledger : PrivacyLedger, optional
        When given, the entry is appended to it (after the ``total_budget`` check).
    total_budget : float, optional
        Refuse the release if it would push the total on ``data_id`` above this.

    Returns
    -------
    DPBounds

    Examples
    --------
    >>> import numpy as np
    >>> ages = np.random.default_rng(0).normal(60, 10, size=2000)
    >>> b = dp_bounds(ages, 4.0, lower_hint=0, upper_hint=120, column="age")
    >>> 20 < b.lower < 50 < 70 < b.upper < 100  # the draw is never seeded: ranges, not values
    True
    >>> b.entry.mechanism, b.entry.delta
    ('exponential-quantile', 0.0)
    """
    if len(quantiles) != 2 or not quantiles[0] <= quantiles[1]:
        raise PrivacyConfigError(
            f"quantiles must be two increasing levels such as (0.01, 0.99), got {quantiles!r}."
        )
    arr = _check_inputs(values, epsilon, lower_hint, upper_hint, quantiles)
    entry = LedgerEntry(
        mechanism="exponential-quantile",
        epsilon=float(epsilon),
        delta=0.0,
        data_id=data_id,
        purpose=purpose or f"quantile-bounds:{column or 'value'}",
        # the number of rows (public, as for DP-SGD), not of non-missing values (private)
        n_records=len(arr),
    )
    if ledger is not None and total_budget is not None:
        ledger.check_budget(total_budget=total_budget, data_id=data_id, planned=[entry])
    lo, hi = dp_quantiles(
        arr,
        quantiles,
        epsilon,
        lower_hint=lower_hint,
        upper_hint=upper_hint,
        random_state=random_state,
    )
    if ledger is not None:
        ledger.append(entry)
    return DPBounds(
        lower=float(min(lo, hi)),
        upper=float(max(lo, hi)),
        quantiles=(float(quantiles[0]), float(quantiles[1])),
        entry=entry,
    )
