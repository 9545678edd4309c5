"""The privacy ledger: every differentially private release, and what they add up to.

Each DP run (a DP-SGD fine-tuning phase, a DP quantile, ...) appends one
:class:`~privacy.ledger_entry.LedgerEntry`. The ledger composes the entries that touched the
same data (the same ``data_id``) with :func:`~privacy.composition.compose`: DP-SGD entries
tightly through one Opacus accountant, every other entry by basic composition.
:meth:`PrivacyLedger.total_spent` says which of the two was used.

A ledger persists per data set (:meth:`PrivacyLedger.save` / :meth:`PrivacyLedger.load`, JSON
written atomically by :mod:`privacy.ledger_file`), so that the budget composes across runs,
sessions and fitted models.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy.composition import LEDGER_ACCOUNTANTS, BudgetSpent, compose
from privacy.exceptions import BudgetExceededError, LedgerFormatError, PrivacyConfigError
from privacy.ledger_entry import DP_SGD_MECHANISMS, LedgerEntry
from privacy.ledger_file import ledger_document, parse_ledger, read_ledger, write_ledger

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DP_SGD_MECHANISMS",
    "LEDGER_ACCOUNTANTS",
    "BudgetSpent",
    "LedgerEntry",
    "PrivacyLedger",
    "compose",
]


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
        return ledger_document(self._entries, accountant=self.accountant, delta=self.delta)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyLedger:
        """Inverse of :meth:`to_dict`; a malformed ledger raises :class:`LedgerFormatError`."""
        entries, accountant, delta = parse_ledger(data)
        try:
            return cls(entries, accountant=accountant, delta=delta)
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
        written = write_ledger(path, self.to_dict())
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
        data = read_ledger(file)
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
