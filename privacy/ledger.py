"""The privacy ledger: every differentially private release, and what they add up to.

Each DP run (a DP-SGD fine-tuning phase, a DP quantile, ...) appends one :class:`LedgerEntry`.
The ledger composes the entries that touched the same data (the same ``data_id``):

* DP-SGD entries (Poisson-subsampled Gaussian mechanism) are composed tightly by feeding
  every ``(noise_multiplier, sample_rate, steps)`` into one Opacus accountant (PRV or RDP) and
  asking it for epsilon at the ledger delta;
* every other entry (for instance the pure-epsilon exponential mechanism of
  :func:`~privacy.dp_bounds`) is added by basic composition (sum of epsilons, sum of deltas).

:meth:`PrivacyLedger.total_spent` says which of the two was used.

A ledger persists per data set (:meth:`PrivacyLedger.save` / :meth:`PrivacyLedger.load`, JSON
written atomically), so that the budget composes across runs, sessions and fitted models.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy.exceptions import BudgetExceededError, LedgerFormatError, PrivacyConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DP_SGD_MECHANISMS",
    "BudgetSpent",
    "LedgerEntry",
    "PrivacyLedger",
    "compose",
]

#: Mechanisms that are Poisson-subsampled Gaussian mechanisms and can be composed by an
#: Opacus accountant from ``(noise_multiplier, sample_rate, steps)``.
DP_SGD_MECHANISMS: frozenset[str] = frozenset({"dp-sgd", "dp-sgd-person"})
#: Accountants able to compose heterogeneous histories (GDP keeps only the last one).
LEDGER_ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp")
_FORMAT = "privacy.PrivacyLedger"
_VERSION = 1


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
        Label (or fingerprint) of the data the release touched; entries with the same
        ``data_id`` are composed together.
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


class PrivacyLedger:
    """Append-only record of differentially private releases and their composed total.

    Parameters
    ----------
    entries : iterable of LedgerEntry, default=()
        Entries to start from.
    accountant : {"prv", "rdp"}, default="prv"
        Accountant that composes DP-SGD entries.
    delta : float or None, default=None
        Delta at which totals are reported; ``None`` uses the largest delta of the composed
        DP-SGD entries.

    Attributes
    ----------
    path : pathlib.Path or None
        The file this ledger was loaded from or last saved to (named in budget refusals).

    Examples
    --------
    >>> ledger = PrivacyLedger()
    >>> _ = ledger.append(LedgerEntry(mechanism="exponential-quantile", epsilon=0.2,
    ...     delta=0.0, data_id="site-A", purpose="quantile-bounds:age", n_records=800))
    >>> ledger.total_spent("site-A").epsilon
    0.2
    >>> ledger.check_budget(0.5, 0.6, data_id="site-A")
    Traceback (most recent call last):
    ...
    privacy.exceptions.BudgetExceededError: ...
    """

    def __init__(
        self,
        entries: Iterable[LedgerEntry] = (),
        *,
        accountant: str = "prv",
        delta: float | None = None,
    ) -> None:
        if accountant not in LEDGER_ACCOUNTANTS:
            raise PrivacyConfigError(
                f"accountant must be one of {LEDGER_ACCOUNTANTS}, got {accountant!r}; the GDP "
                "accountant cannot compose runs with different noise multipliers."
            )
        if delta is not None and not 0 < delta < 1:
            raise PrivacyConfigError(
                f"delta must be in (0, 1) or None, got {delta!r}; pass e.g. delta=1e-6."
            )
        self.accountant = accountant
        self.delta = delta
        self.path: Path | None = None
        self._entries: list[LedgerEntry] = []
        for entry in entries:
            self.append(entry)

    # -- container -------------------------------------------------------------------------
    def append(self, entry: LedgerEntry) -> LedgerEntry:
        """Record one release; returns it."""
        if not isinstance(entry, LedgerEntry):
            raise LedgerFormatError(
                f"PrivacyLedger.append expects a LedgerEntry, got {type(entry).__name__}; "
                "build one with LedgerEntry(...) or LedgerEntry.from_dict(...)."
            )
        self._entries.append(entry)
        return entry

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        """All entries, oldest first."""
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LedgerEntry]:
        return iter(self._entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivacyLedger):
            return NotImplemented
        return (
            self._entries == other._entries
            and self.accountant == other.accountant
            and self.delta == other.delta
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"PrivacyLedger(<{len(self)} entries>, accountant={self.accountant!r}, "
            f"delta={self.delta!r})"
        )

    @property
    def data_ids(self) -> list[str]:
        """Distinct ``data_id`` values, in order of first appearance."""
        return list(dict.fromkeys(e.data_id for e in self._entries))

    # -- accounting ------------------------------------------------------------------------
    def _select(self, data_id: str | None) -> list[LedgerEntry]:
        if data_id is None:
            return list(self._entries)
        return [e for e in self._entries if e.data_id == data_id]

    def total_spent(self, data_id: str | None = None) -> BudgetSpent:
        """Composed (epsilon, delta) of the entries on ``data_id``.

        Parameters
        ----------
        data_id : str or None, default=None
            ``None`` composes every entry as if all touched the same persons (an upper bound
            when the data sets are in fact disjoint).

        Returns
        -------
        BudgetSpent
        """
        return compose(
            self._select(data_id), accountant=self.accountant, delta=self.delta, data_id=data_id
        )

    def spent_by_data(self) -> dict[str, BudgetSpent]:
        """:meth:`total_spent` for every ``data_id``."""
        return {d: self.total_spent(d) for d in self.data_ids}

    def check_budget(
        self,
        extra_epsilon: float = 0.0,
        total_budget: float | None = None,
        *,
        data_id: str | None = None,
        planned: Sequence[LedgerEntry] = (),
    ) -> BudgetSpent:
        """Refuse a run before it starts if it would exceed ``total_budget``.

        The projected total composes the recorded entries on ``data_id`` with the ``planned``
        entries (tightly, when they are DP-SGD entries whose noise multiplier is already
        known) and adds ``extra_epsilon`` by basic composition.

        Parameters
        ----------
        extra_epsilon : float, default=0.0
            Epsilon of a planned release not described by ``planned``.
        total_budget : float or None
            Largest total epsilon allowed on ``data_id``. ``None`` checks nothing.
        data_id : str or None, default=None
        planned : sequence of LedgerEntry, default=()

        Returns
        -------
        BudgetSpent
            The projected total, when it fits.

        Raises
        ------
        BudgetExceededError
        """
        if isinstance(extra_epsilon, bool) or not extra_epsilon >= 0:
            raise PrivacyConfigError(f"extra_epsilon must be a number >= 0, got {extra_epsilon!r}.")
        spent = self.total_spent(data_id)
        projected = compose(
            [*self._select(data_id), *planned],
            accountant=self.accountant,
            delta=self.delta,
            data_id=data_id,
        )
        total = BudgetSpent(
            epsilon=projected.epsilon + float(extra_epsilon),
            delta=projected.delta,
            method=projected.method
            + (" + basic composition of the extra epsilon" if extra_epsilon else ""),
            data_id=data_id,
            n_entries=projected.n_entries,
        )
        if total_budget is None:
            return total
        if total.epsilon > total_budget * (1 + 1e-9):
            where = "all data" if data_id is None else f"data_id={data_id!r}"
            source = "" if self.path is None else f" (ledger file {str(self.path)!r})"
            raise BudgetExceededError(
                f"total_budget={total_budget:g} on {where} would be exceeded: "
                f"{spent.n_entries} earlier release(s){source} spent epsilon="
                f"{spent.epsilon:.4g}{self._describe(data_id)}, and this run would bring the "
                f"total to epsilon={total.epsilon:.4g} (delta={total.delta:.2g}; "
                f"{total.method}). Nothing was run. Lower this run's epsilon (at most "
                f"{max(total_budget - spent.epsilon, 0.0):.4g} remains under basic "
                "composition), use fewer runs on this data, or raise total_budget only if the "
                "data-use agreement allows it."
            )
        return total

    def _describe(self, data_id: str | None, limit: int = 8) -> str:
        """``" [entries: #0 purpose (epsilon=.., time); ...]"`` for the entries on ``data_id``."""
        listed = [(i, e) for i, e in enumerate(self._entries) if data_id in (None, e.data_id)]
        if not listed:
            return ""
        parts = [
            f"#{i} {e.purpose} (epsilon={e.epsilon:.4g}, {e.timestamp})" for i, e in listed[:limit]
        ]
        if len(listed) > limit:
            parts.append(f"{len(listed) - limit} more")
        return " [entries: " + "; ".join(parts) + "]"

    # -- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary (format name, version, settings, entries)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "accountant": self.accountant,
            "delta": self.delta,
            "entries": [e.to_dict() for e in self._entries],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyLedger:
        """Inverse of :meth:`to_dict`; a malformed ledger raises :class:`LedgerFormatError`."""
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise LedgerFormatError(
                f"not a privacy ledger: expected a mapping with format={_FORMAT!r}; pass the "
                "output of PrivacyLedger.to_dict()."
            )
        if data.get("version") != _VERSION:
            raise LedgerFormatError(
                f"ledger version {data.get('version')!r} is not supported (expected "
                f"{_VERSION}); upgrade the package that reads it."
            )
        raw_entries = data.get("entries")
        if not isinstance(raw_entries, list):
            raise LedgerFormatError("ledger key 'entries' must be a list of entry mappings.")
        entries = []
        for i, raw in enumerate(raw_entries):
            try:
                entries.append(LedgerEntry.from_dict(raw))
            except (LedgerFormatError, TypeError) as exc:
                raise LedgerFormatError(f"ledger entry {i}: {exc}") from exc
        try:
            return cls(
                entries,
                accountant=data.get("accountant", "prv"),
                delta=data.get("delta"),
            )
        except PrivacyConfigError as exc:
            raise LedgerFormatError(f"ledger settings: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ledger as JSON to ``path``, atomically (a temporary file, then a rename).

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        pathlib.Path
            The file written.
        """
        from privacy._utils import atomic_write_text  # numpy: loaded on first use

        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        written = atomic_write_text(path, text)
        self.path = written
        return written

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrivacyLedger:
        """Read a ledger written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            When ``path`` does not exist.
        LedgerFormatError
            When the file is not a valid ledger.
        """
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(
                f"privacy ledger file {str(file)!r} does not exist; a new ledger is started with "
                "PrivacyLedger() and written with ledger.save(path)."
            )
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LedgerFormatError(
                f"privacy ledger file {str(file)!r} is not valid JSON ({exc})."
            ) from exc
        try:
            ledger = cls.from_dict(data)
        except LedgerFormatError as exc:
            raise LedgerFormatError(f"privacy ledger file {str(file)!r}: {exc}") from exc
        ledger.path = file
        return ledger

    def to_frame(self) -> pd.DataFrame:
        """One row per entry, as a :class:`pandas.DataFrame`."""
        import pandas as pd

        columns = [f.name for f in fields(LedgerEntry)]
        return pd.DataFrame([e.to_dict() for e in self._entries], columns=columns)

    def __str__(self) -> str:
        header = (
            "#",
            "time (UTC)",
            "data",
            "purpose",
            "mechanism",
            "unit",
            "eps",
            "delta",
            "sigma",
            "q",
            "steps",
            "acct",
            "n",
        )
        rows = [header]
        for i, e in enumerate(self._entries):
            rows.append(
                (
                    str(i),
                    e.timestamp[:19],
                    e.data_id,
                    e.purpose,
                    e.mechanism,
                    e.unit,
                    f"{e.epsilon:.4g}",
                    f"{e.delta:.2g}",
                    "-" if e.noise_multiplier is None else f"{e.noise_multiplier:.4g}",
                    "-" if e.sample_rate is None else f"{e.sample_rate:.4g}",
                    "-" if e.steps is None else str(e.steps),
                    e.accountant or "-",
                    str(e.n_records),
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(header))]

        def fmt(row: Sequence[str]) -> str:
            return "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()

        lines = [f"PrivacyLedger ({len(self)} entries, accountant={self.accountant})"]
        lines.append(fmt(header))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(fmt(r) for r in rows[1:])
        for data_id in self.data_ids:
            spent = self.total_spent(data_id)
            lines.append(
                f"total on {data_id!r}: epsilon={spent.epsilon:.4g}, delta={spent.delta:.2g} "
                f"({spent.method})"
            )
        return "\n".join(lines)
