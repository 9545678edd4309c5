"""Composition of ledger entries into one (epsilon, delta) guarantee.

* DP-SGD entries (Poisson-subsampled Gaussian mechanism) are composed tightly by feeding
  every ``(noise_multiplier, sample_rate, steps)`` into one Opacus accountant (PRV or RDP) and
  asking it for epsilon at the ledger delta;
* every other entry (for instance the pure-epsilon exponential mechanism of
  :func:`~privacy.dp_bounds`) is added by basic composition (sum of epsilons, sum of deltas).

:class:`BudgetSpent` says which of the two was used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from privacy.exceptions import PrivacyConfigError
from privacy.ledger_entry import LedgerEntry

__all__ = ["LEDGER_ACCOUNTANTS", "BudgetSpent", "compose"]

#: Accountants able to compose heterogeneous histories (GDP keeps only the last one).
LEDGER_ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp")


@dataclass(frozen=True)
class BudgetSpent:
    """Total privacy spent by a set of ledger entries.

    Attributes
    ----------
    epsilon, delta : float
        The composed guarantee.
    method : str
        How the entries were composed (which accountant, which entries by basic composition).
    data_id : str or None
        The data the total refers to; ``None`` means all entries of the ledger, composed as if
        they touched the same persons (conservative).
    n_entries : int
        Number of entries composed.
    """

    epsilon: float
    delta: float
    method: str
    data_id: str | None
    n_entries: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary of all fields."""
        return asdict(self)


def _accountant_epsilon(entries: Sequence[LedgerEntry], accountant: str, delta: float) -> float:
    from privacy.accounting import compute_epsilon

    history = [(e.noise_multiplier, e.sample_rate, e.steps) for e in entries]
    return compute_epsilon(history, delta=delta, accountant=accountant)  # type: ignore[arg-type]


def compose(
    entries: Sequence[LedgerEntry],
    *,
    accountant: str = "prv",
    delta: float | None = None,
    data_id: str | None = None,
) -> BudgetSpent:
    """Compose ledger entries into one (epsilon, delta) guarantee.

    DP-SGD entries are composed by the Opacus ``accountant`` at ``delta`` (default: the
    largest delta among them); when basic composition of those entries is at least as tight
    (their delta sum fits in ``delta``) the smaller epsilon is kept. Every other entry is added
    by basic composition.

    Parameters
    ----------
    entries : sequence of LedgerEntry
    accountant : {"prv", "rdp"}, default="prv"
    delta : float or None, default=None
        Delta at which the DP-SGD entries are composed.
    data_id : str or None, default=None
        Label copied into the result.

    Returns
    -------
    BudgetSpent

    Examples
    --------
    >>> e = LedgerEntry(mechanism="exponential-quantile", epsilon=0.5, delta=0.0,
    ...                 data_id="d", purpose="quantile-bounds:age", n_records=500)
    >>> compose([e, e]).epsilon
    1.0
    """
    if accountant not in LEDGER_ACCOUNTANTS:
        raise PrivacyConfigError(
            f"accountant must be one of {LEDGER_ACCOUNTANTS} to compose a ledger, got "
            f"{accountant!r}; the GDP accountant cannot compose runs with different noise "
            "multipliers or sample rates."
        )
    entries = list(entries)
    dp_sgd = [e for e in entries if e.accountable]
    basic = [e for e in entries if not e.accountable]
    eps_basic = math.fsum(e.epsilon for e in basic)
    delta_basic = math.fsum(e.delta for e in basic)
    parts: list[str] = []
    eps_sgd = 0.0
    delta_sgd = 0.0
    if dp_sgd:
        delta_sgd = float(delta) if delta is not None else max(e.delta for e in dp_sgd)
        if delta_sgd <= 0:
            raise PrivacyConfigError(
                "DP-SGD entries can only be composed at delta > 0; pass the ledger a delta "
                "such as delta=1e-6."
            )
        used = accountant
        try:
            eps_sgd = _accountant_epsilon(dp_sgd, accountant, delta_sgd)
        except (ValueError, RuntimeError, OverflowError, FloatingPointError) as exc:
            if accountant == "rdp":
                raise
            used = f"rdp (prv failed: {exc})"
            eps_sgd = _accountant_epsilon(dp_sgd, "rdp", delta_sgd)
        sum_eps = math.fsum(e.epsilon for e in dp_sgd)
        sum_delta = math.fsum(e.delta for e in dp_sgd)
        if sum_delta <= delta_sgd and sum_eps < eps_sgd:
            eps_sgd = sum_eps
            parts.append(f"basic composition of {len(dp_sgd)} DP-SGD entries (tighter)")
        else:
            parts.append(f"{used} accountant over {len(dp_sgd)} DP-SGD entries")
    if basic:
        parts.append(f"basic composition of {len(basic)} other entries")
    return BudgetSpent(
        epsilon=eps_sgd + eps_basic,
        delta=delta_sgd + delta_basic,
        method=" + ".join(parts) if parts else "no entries",
        data_id=data_id,
        n_entries=len(entries),
    )
