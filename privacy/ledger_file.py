"""The privacy ledger's file format: a versioned JSON document, written atomically.

:meth:`PrivacyLedger.save <privacy.PrivacyLedger.save>` and
:meth:`PrivacyLedger.load <privacy.PrivacyLedger.load>` go through these functions, so that
a ledger persists per data set and its budget composes across runs, sessions and fitted
models.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from privacy.exceptions import LedgerFormatError
from privacy.ledger_entry import LedgerEntry

__all__ = [
    "LEDGER_FORMAT",
    "LEDGER_VERSION",
    "ledger_document",
    "parse_ledger",
    "read_ledger",
    "write_ledger",
]

#: Value of the ``format`` key of every ledger document.
LEDGER_FORMAT = "privacy.PrivacyLedger"
#: Version of the document layout this package writes and reads.
LEDGER_VERSION = 1


def ledger_document(
    entries: Sequence[LedgerEntry], *, accountant: str, delta: float | None
) -> dict[str, Any]:
    """The JSON-serializable document of a ledger (format name, version, settings, entries)."""
    return {
        "format": LEDGER_FORMAT,
        "version": LEDGER_VERSION,
        "accountant": accountant,
        "delta": delta,
        "entries": [e.to_dict() for e in entries],
    }


def parse_ledger(data: Mapping[str, Any]) -> tuple[list[LedgerEntry], Any, Any]:
    """Check a ledger document and read its ``(entries, accountant, delta)``.

    The settings are returned as found (``accountant`` defaults to ``"prv"``); the ledger
    validates them when it is built from them.

    Raises
    ------
    LedgerFormatError
        The document is not a ledger, has another version, or holds a malformed entry.
    """
    if not isinstance(data, Mapping) or data.get("format") != LEDGER_FORMAT:
        raise LedgerFormatError(
            f"not a privacy ledger: expected a mapping with format={LEDGER_FORMAT!r}; pass the "
            "output of PrivacyLedger.to_dict()."
        )
    if data.get("version") != LEDGER_VERSION:
        raise LedgerFormatError(
            f"ledger version {data.get('version')!r} is not supported (expected "
            f"{LEDGER_VERSION}); upgrade the package that reads it."
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
    return entries, data.get("accountant", "prv"), data.get("delta")


def write_ledger(path: str | os.PathLike[str], document: Mapping[str, Any]) -> Path:
    """Write ``document`` as JSON to ``path``, atomically (a temporary file, then a rename)."""
    from privacy._utils import atomic_write_text  # numpy: loaded on first use

    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def read_ledger(path: str | os.PathLike[str]) -> Any:
    """The JSON document stored in the ledger file ``path``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    LedgerFormatError
        When the file is not valid JSON.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"privacy ledger file {str(file)!r} does not exist; a new ledger is started with "
            "PrivacyLedger() and written with ledger.save(path)."
        )
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerFormatError(
            f"privacy ledger file {str(file)!r} is not valid JSON ({exc})."
        ) from exc
