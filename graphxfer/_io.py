"""Atomic file writes and spreadsheet-safe CSV: a reader never sees a half-written file, an
interrupted write leaves the previous file intact, and no CSV cell runs as a formula."""

from __future__ import annotations

import csv
import ctypes
import errno
import functools
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FORMULA_PREFIXES",
    "atomic_replace_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_mode",
    "escape_csv_cell",
    "exchange_paths",
    "make_parent",
    "safe_csv_frame",
    "write_csv_atomic",
]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a text cell as a formula (OWASP CSV injection)."""

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def default_mode(directory: bool = False) -> int:
    """Permissions a plain ``open`` / ``mkdir`` would give under the current umask
    (temporary files and folders are created owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def make_parent(path: str | os.PathLike[str]) -> None:
    """Create the folder of ``path`` (and the folders above it) when missing.

    Raises
    ------
    NotADirectoryError
        A file stands where one of those folders should be; the error names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise NotADirectoryError(
            errno.ENOTDIR, "cannot write here: a folder on this path is a file", os.fspath(path)
        ) from exc


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", os.fspath(path))
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        # name the file asked for, not the temporary file or a folder above it
        raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename == tmp:
            raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from exc
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ------------------------------------------------------------------ folders
@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """libc's ``renameat2`` (Linux, glibc 2.28+), or None where it is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _rename_flags(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``: True when done, False where the system or the file
    system does not support ``flags``; other failures raise :class:`OSError`."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(src), None, os.fspath(dst))


def exchange_paths(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Swap the files or folders at ``a`` and ``b`` in one atomic step.

    Uses ``renameat2(..., RENAME_EXCHANGE)``. Returns False, changing nothing, where the
    operating system or the file system cannot exchange (anything but Linux ≥ 3.15 with
    glibc ≥ 2.28 on a local file system such as ext4, xfs, btrfs or tmpfs).
    """
    return _rename_flags(Path(a), Path(b), _RENAME_EXCHANGE)


def atomic_replace_dir(
    build: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    check_old: Callable[[Path], None] | None = None,
) -> None:
    """Move the finished folder ``build`` to ``path``, replacing an old folder atomically.

    Where the system can (see :func:`exchange_paths`), the two folders are exchanged in one
    step, so ``path`` holds the complete old content until the instant it holds the complete
    new content; the old content, now at ``build``, is then deleted. Elsewhere the old folder
    is renamed aside, the new one renamed in, and only then is the old one deleted: ``path``
    never holds a mixture, but a reader may find it missing between the two renames.

    Parameters
    ----------
    build, path : path-like
        The finished new folder, and where it goes.
    check_old : callable, optional
        Called with the location of the old content once it is out of ``path`` and before it
        is deleted; an exception from it puts both folders back where they were and is
        raised. A caller that checked ``path`` beforehand passes the same check here, so that
        a folder another process put at ``path`` in between is never deleted unchecked.
    """
    build, path = Path(build), Path(path)
    if not os.path.lexists(path):
        try:
            if _rename_flags(build, path, _RENAME_NOREPLACE):
                return
        except FileExistsError:
            pass  # created meanwhile: replace it below
        else:
            os.replace(build, path)
            return
    if path.is_symlink() or not path.is_dir():
        raise FileExistsError(f"{str(path)!r} exists and is not a folder")
    if exchange_paths(build, path):
        if check_old is not None:
            try:
                check_old(build)
            except BaseException:
                _swap_back(build, path)
                raise
        shutil.rmtree(build, ignore_errors=True)
        return
    old = path.with_name(f".{path.name}.old-{secrets.token_hex(8)}.tmp")
    os.replace(path, old)
    try:
        if check_old is not None:
            check_old(old)
        os.replace(build, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _swap_back(build: Path, path: Path) -> None:
    """Undo an exchange whose old content (now at ``build``) must not be deleted: exchange
    again, or, should that fail, move it to a name of its own beside ``path``, so that the
    caller's cleanup of ``build`` can never reach it."""
    try:
        if exchange_paths(build, path):
            return
    except OSError:
        pass
    os.replace(build, path.with_name(f".{path.name}.kept-{secrets.token_hex(8)}"))


# ------------------------------------------------------------------ CSV
def escape_csv_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed
    with a single quote; numbers (negative ones included) and everything else are returned
    unchanged.

    Examples
    --------
    >>> escape_csv_cell('=HYPERLINK("http://x")'), escape_csv_cell(-1.5), escape_csv_cell("a")
    ('\\'=HYPERLINK("http://x")', -1.5, 'a')
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names are escaped for spreadsheets.

    Columns of numbers, booleans and dates are kept as they are; in text, categorical and
    mixed (object) columns every string goes through :func:`escape_csv_cell`.
    """
    import pandas as pd

    out = frame.copy()
    out.columns = pd.Index([escape_csv_cell(c) for c in out.columns])
    for j in range(out.shape[1]):
        column = out.iloc[:, j]
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype(object)
        elif not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
            continue
        out.isetitem(j, column.map(escape_csv_cell))
    return out


def write_csv_atomic(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write ``frame`` (without its index) as a spreadsheet-safe CSV, atomically.

    Text cells are escaped with :func:`safe_csv_frame` and quoted; numbers stay unquoted
    numbers.
    """
    text = safe_csv_frame(frame).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)
    atomic_write_text(path, text)
