"""The privacy ledger's file format: a versioned JSON document, written atomically.

:meth:`PrivacyLedger.save <privacy.PrivacyLedger.save>` and
:meth:`PrivacyLedger.load <privacy.PrivacyLedger.load>` go through these functions, so that
a ledger persists per data set and its budget composes across runs, sessions and fitted
models.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from privacy.exceptions import LedgerFormatError
from privacy.ledger_entry import LedgerEntry

__all__ = [
    "LEDGER_FORMAT",
    "LEDGER_VERSION",
    "LedgerLock",
    "LedgerWaitWarning",
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


class LedgerWaitWarning(UserWarning):
    """A fit waits for a ledger file that another fit (or process) holds."""


class LedgerLock:
    """An exclusive lock on a ledger file, held from reading the ledger to writing it back.

    Two fits that charge the same ledger file at the same time would otherwise both read the
    budget spent so far, both pass a ``total_budget`` check that together they exceed, and
    the second to write would drop the first one's entries. The lock serialises them: the
    second fit waits (with a :class:`LedgerWaitWarning`), then reads what the first wrote.

    It is an advisory operating-system lock (``flock`` on POSIX, ``msvcrt.locking`` on
    Windows) on a companion file ``<ledger>.lock``, which is left in place; the operating
    system releases it when the holder ends, also when it crashes. Every process that writes
    the ledger must take it; :class:`graphxfer.TransferClassifier` does.

    Parameters
    ----------
    path : str or path-like
        The ledger file (it need not exist yet).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from privacy import PrivacyLedger
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.json"
    >>> with LedgerLock(path):
    ...     ledger = PrivacyLedger.load(path) if path.exists() else PrivacyLedger()
    ...     _ = ledger.save(path)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def lock_path(self) -> Path:
        """The companion file that carries the lock."""
        return self.path.with_name(self.path.name + ".lock")

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> LedgerLock:
        """Take the lock, waiting for another holder to release it."""
        if self._fd is not None:
            return self
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)  # as ledger.save does
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _try_lock(fd):
                warnings.warn(
                    f"privacy ledger {str(self.path)!r} is being charged by another fit; "
                    "waiting for it to finish",
                    LedgerWaitWarning,
                    stacklevel=2,
                )
                _lock(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (nothing happens when it is not held)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _unlock(fd)
            os.close(fd)

    def __enter__(self) -> LedgerLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _lock(fd: int) -> None:
        while not _try_lock(fd):  # LK_LOCK gives up after 10 s; wait as long as it takes
            import time

            time.sleep(0.2)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
