"""Private selection: the exponential mechanism over a few candidates.

:func:`exponential_mechanism` picks one of ``k`` candidates with probability

    P(i) proportional to prior_i * exp(epsilon * u_i / (c * sensitivity)),

where ``u_i`` is a utility computed from the private data whose value changes by at most
``sensitivity`` when one record is added or removed, ``prior`` is a data-independent base
measure (public knowledge, e.g. how often each candidate won in simulations on public data),
and ``c = 2`` in general or ``c = 1`` when every utility moves in the same direction when a
record is added (McSherry and Talwar 2007; Dwork and Roth 2014, section 3.4). The choice is
``epsilon``-DP (pure, ``delta = 0``). The draw comes from the operating system's CSPRNG, so it
cannot be replayed from a seed.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import numpy as np

from privacy.exceptions import PrivacyConfigError

__all__ = ["exponential_mechanism", "selection_probabilities"]


def selection_probabilities(
    utilities: Sequence[float],
    *,
    epsilon: float,
    sensitivity: float,
    monotone: bool = False,
    prior: Sequence[float] | None = None,
) -> np.ndarray:
    """The probabilities with which :func:`exponential_mechanism` picks each candidate.

    Parameters
    ----------
    utilities : sequence of float
        One utility per candidate (higher is better).
    epsilon : float
        Privacy parameter of the selection (> 0).
    sensitivity : float
        Largest change of any utility when one record is added or removed (> 0).
    monotone : bool, default=False
        True when adding a record never moves two utilities in opposite directions (e.g.
        sums of per-record losses); the exponent then needs no factor 2.
    prior : sequence of float, optional
        Data-independent base measure (non-negative, not all zero); default uniform.

    Returns
    -------
    ndarray of shape (k,)
    """
    u = np.asarray(utilities, dtype=float)
    if u.ndim != 1 or len(u) == 0 or not np.all(np.isfinite(u)):
        raise PrivacyConfigError(f"utilities must be a non-empty list of finite numbers, got {u}.")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise PrivacyConfigError(f"epsilon must be a finite number > 0, got {epsilon!r}.")
    if not (math.isfinite(sensitivity) and sensitivity > 0):
        raise PrivacyConfigError(f"sensitivity must be a finite number > 0, got {sensitivity!r}.")
    if prior is None:
        base = np.ones_like(u)
    else:
        base = np.asarray(prior, dtype=float)
        if base.shape != u.shape or np.any(base < 0) or not np.any(base > 0):
            raise PrivacyConfigError(
                f"prior must hold one non-negative weight per candidate, not all zero; got {prior}."
            )
    c = 1.0 if monotone else 2.0
    with np.errstate(divide="ignore"):
        logits = np.log(base) + epsilon * u / (c * sensitivity)
    logits -= np.max(logits)
    w = np.exp(logits)
    return np.asarray(w / w.sum())


def exponential_mechanism(
    utilities: Sequence[float],
    *,
    epsilon: float,
    sensitivity: float,
    monotone: bool = False,
    prior: Sequence[float] | None = None,
) -> int:
    """Pick a candidate with the exponential mechanism; ``epsilon``-DP.

    Parameters are those of :func:`selection_probabilities`.

    Returns
    -------
    int
        Index of the chosen candidate.

    Examples
    --------
    >>> exponential_mechanism([0.0, 100.0], epsilon=1.0, sensitivity=1.0)
    1
    """
    p = selection_probabilities(
        utilities, epsilon=epsilon, sensitivity=sensitivity, monotone=monotone, prior=prior
    )
    draw = secrets.SystemRandom().random()
    index = int(np.searchsorted(np.cumsum(p), draw, side="right"))
    return min(index, len(p) - 1)
