"""One differentially private release, as recorded in the privacy ledger."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from numbers import Integral, Real
from typing import Any

from privacy.exceptions import LedgerFormatError

__all__ = ["DP_SGD_MECHANISMS", "LedgerEntry"]

#: Mechanisms that are Poisson-subsampled Gaussian mechanisms and can be composed by an
#: Opacus accountant from ``(noise_multiplier, sample_rate, steps)``.
DP_SGD_MECHANISMS: frozenset[str] = frozenset({"dp-sgd", "dp-sgd-person"})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _bad(name: str, value: Any, requirement: str) -> LedgerFormatError:
    return LedgerFormatError(f"LedgerEntry.{name} {requirement}, got {value!r}.")


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One differentially private release.

    Parameters
    ----------
    mechanism : str
        ``"dp-sgd"`` (record-level DP-SGD), ``"dp-sgd-person"`` (person-level DP-SGD: all rows
        of a person sampled and clipped together), ``"exponential-quantile"``, or any other
        name (composed by basic composition).
    epsilon, delta : float
        The guarantee of this release alone.
    data_id : str
        Label of the data the release touched (never a hash of the records, which would be
        computed from them); entries with the same ``data_id`` are composed together.
    purpose : str
        What the release was for, e.g. ``"fine-tune:linear-probe"`` or ``"quantile-bounds:age"``.
    n_records : int
        Number of persons in the data.
    noise_multiplier, sample_rate, steps : float, float, int or None
        Parameters of a subsampled Gaussian mechanism (required for DP-SGD mechanisms).
    accountant : str or None
        Accountant that computed ``epsilon``.
    max_grad_norm : float or None
        Clipping bound of DP-SGD.
    unit : {"record", "person"}, default="record"
        The privacy unit. ``"person"`` means rows were grouped by person before sampling.
    timestamp : str
        ISO 8601 time of the release (UTC), filled in automatically.
    """

    mechanism: str
    epsilon: float
    delta: float
    data_id: str
    purpose: str
    n_records: int
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    accountant: str | None = None
    max_grad_norm: float | None = None
    unit: str = "record"
    timestamp: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if not isinstance(self.mechanism, str) or not self.mechanism:
            raise _bad("mechanism", self.mechanism, "must be a non-empty string")
        for name in ("data_id", "purpose", "timestamp"):
            if not isinstance(getattr(self, name), str):
                raise _bad(name, getattr(self, name), "must be a string")
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, Real) or not eps >= 0:
            raise _bad("epsilon", eps, "must be a number >= 0")
        if not math.isfinite(eps):
            raise _bad("epsilon", eps, "must be finite")
        dlt = self.delta
        if isinstance(dlt, bool) or not isinstance(dlt, Real) or not 0 <= dlt < 1:
            raise _bad("delta", dlt, "must be a number in [0, 1)")
        if isinstance(self.n_records, bool) or not isinstance(self.n_records, Integral):
            raise _bad("n_records", self.n_records, "must be an integer")
        if self.unit not in ("record", "person"):
            raise _bad("unit", self.unit, "must be 'record' or 'person'")
        if self.mechanism in DP_SGD_MECHANISMS:
            sigma, q, steps = self.noise_multiplier, self.sample_rate, self.steps
            if sigma is None or not sigma > 0:
                raise _bad("noise_multiplier", sigma, f"must be > 0 for {self.mechanism!r}")
            if q is None or not 0 < q <= 1:
                raise _bad("sample_rate", q, f"must be in (0, 1] for {self.mechanism!r}")
            if steps is None or isinstance(steps, bool) or not isinstance(steps, Integral):
                raise _bad("steps", steps, f"must be an integer for {self.mechanism!r}")
            if steps < 0:
                raise _bad("steps", steps, "must be >= 0")
        object.__setattr__(self, "epsilon", float(eps))
        object.__setattr__(self, "delta", float(dlt))
        object.__setattr__(self, "n_records", int(self.n_records))
        for name in ("noise_multiplier", "sample_rate", "max_grad_norm"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))
        if self.steps is not None:
            object.__setattr__(self, "steps", int(self.steps))

    @property
    def accountable(self) -> bool:
        """Whether an Opacus accountant can compose this entry (a DP-SGD mechanism)."""
        return self.mechanism in DP_SGD_MECHANISMS and bool(self.steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary of all fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Inverse of :meth:`to_dict`; unknown or missing keys are an error."""
        if not isinstance(data, Mapping):
            raise LedgerFormatError(
                f"a ledger entry must be a mapping, got {type(data).__name__}; "
                "pass the output of LedgerEntry.to_dict()."
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LedgerFormatError(
                f"ledger entry has unknown key(s) {unknown}; valid keys are {sorted(names)}."
            )
        required = {"mechanism", "epsilon", "delta", "data_id", "purpose", "n_records"}
        missing = sorted(required - set(data))
        if missing:
            raise LedgerFormatError(
                f"ledger entry lacks key(s) {missing}; a ledger entry must record at least "
                f"{sorted(required)}."
            )
        return cls(**dict(data))
